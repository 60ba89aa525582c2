"""Operators for Coupa integration runs: open a run at the start of a pipeline, close it at the end.

Records and integration errors written in between reference the run (``integration_run=<run id>``), so Coupa
shows one run per pipeline execution with its records attached.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_provider_coupa_ihr.operators.base import CoupaBaseOperator, coupa_errors

__all__ = ["CoupaFinishIntegrationRunOperator", "CoupaStartIntegrationRunOperator", "run_summary"]


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The plain-JSON XCom of an integration run."""
    integration = run.get("integration") or {}
    return {
        "id": run.get("id"),
        "status": run.get("status"),
        "integration": integration.get("code") if isinstance(integration, dict) else None,
        "total_records": run.get("total_records"),
        "records_processed": run.get("records_processed"),
        "start_time": run.get("start_time"),
        "end_time": run.get("end_time"),
    }


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
        with coupa_errors():
            client = self.client
            self.push_link(context, None)
            run = client.create_run(self.integration)
            run = client.run_transition(run["id"], "run", total_records=self.total_records)
        self.log.info("Coupa integration run %s of %s is %s", run["id"], self.integration, run["status"])
        return run_summary(run)


class CoupaFinishIntegrationRunOperator(CoupaBaseOperator):
    """Close an integration run as ``success`` or ``fail`` (with the records processed, if known).

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
        from airflow_provider_coupa_ihr.client.records import RUN_ACTIONS

        with coupa_errors():
            if self.outcome not in ("success", "fail", "finish"):
                raise CoupaValidationError([f"outcome must be success, fail or finish, got {self.outcome!r}"])
            client = self.client
            self.push_link(context, None)
            current = client.get_run(int(self.run_id))
            if current.get("status") == RUN_ACTIONS[self.outcome]:
                run = current
            else:
                run = client.run_transition(current["id"], self.outcome, records_processed=self.records_processed)
        self.log.info("Coupa integration run %s is %s", run["id"], run["status"])
        return run_summary(run)
