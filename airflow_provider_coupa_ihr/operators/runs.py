"""Operators for Coupa integration runs: start a run at the start of a pipeline, finish it at the end.

Records and integration errors written in between reference the run (``integration_run=<run id>``), so Coupa
shows one run per pipeline execution with its records attached.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_provider_coupa_ihr.operators.base import CoupaBaseOperator

__all__ = ["CoupaFinishIntegrationRunOperator", "CoupaStartIntegrationRunOperator"]


class CoupaStartIntegrationRunOperator(CoupaBaseOperator):
    """Create an integration run for ``integration`` (its code) and mark it running.

    Returns (XCom) the run as plain JSON; downstream tasks reference it with
    ``integration_run="{{ ti.xcom_pull(task_ids='start_run')['id'] }}"`` or ``start.output["id"]``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id", "integration", "total_records")

    def __init__(self, *, integration: str, total_records: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.integration = integration
        self.total_records = total_records

    def execute(self, context: Any) -> dict[str, Any]:
        with self.calling_coupa() as hook:
            self.push_link(context, None)
            run = _summary(hook.start_run(self.integration, total_records=self.total_records))
        self.log.info("Coupa integration run %s of %s is %s", run["id"], self.integration, run["status"])
        return run


class CoupaFinishIntegrationRunOperator(CoupaBaseOperator):
    """Finish an integration run as ``success`` or ``fail`` (with the records processed, if known).

    Safe to retry: a run already in the wanted state is left as it is.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id", "run_id", "outcome", "records_processed")

    def __init__(
        self,
        *,
        run_id: int | str,
        outcome: str = "success",
        records_processed: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.outcome = outcome
        self.records_processed = records_processed

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
        from airflow_provider_coupa_ihr.client.values import quoted

        with self.calling_coupa() as hook:
            if self.outcome not in ("success", "fail", "finish"):
                raise CoupaValidationError([f"outcome must be success, fail or finish, got {quoted(self.outcome)}"])
            self.push_link(context, None)
            if self.outcome == "fail":
                answer = hook.fail_run(self.run_id, records_processed=self.records_processed)
            else:
                answer = hook.finish_run(self.run_id, records_processed=self.records_processed, action=self.outcome)
            run = _summary(answer)
        self.log.info("Coupa integration run %s is %s", run["id"], run["status"])
        return run


def _summary(run: Any) -> dict[str, Any]:
    """The run's plain-JSON XCom (:func:`~airflow_provider_coupa_ihr.client.summaries.run_summary`); an answer
    that is not a run (no object, or no id) raises :class:`~airflow_provider_coupa_ihr.client.errors.CoupaError`,
    which ``calling_coupa`` turns into Airflow's vocabulary."""
    from airflow_provider_coupa_ihr.client.answers import record_id
    from airflow_provider_coupa_ihr.client.summaries import run_summary

    summary = run_summary(run)
    record_id(run)
    return summary
