"""Wrap part of a DAG (usually all of it) in one Coupa integration run: ``coupa_integration_run(...)``.

::

    with DAG(...):
        with coupa_integration_run(integration="ERP-SUPPLIERS") as run:
            export = export_suppliers()
            CoupaCreateRecordOperator(task_id="log", document_type="Supplier", document_id=..., status="Success")
            # integration_run=run.run_id is filled in for you

Why this shape: Airflow's setup and teardown tasks are made for "acquire, work, release". The ``start`` task
(a setup) creates the run in Coupa and marks it running; the ``finish`` task (a teardown) runs once everything
in the group is done, **also when tasks failed**, and finishes the run as ``successful`` or ``failed``. Airflow
then gives the lifecycle for free what hand-wired trigger rules do not:

- the teardown is left out when Airflow decides the DAG run's state, so the DAG run fails exactly when work
  failed (a finishing task that succeeds does not turn a failed run green);
- clearing a failed task re-runs its setup and teardown, so a re-run starts a new Coupa run and finishes it;
- ``group >> next_task`` waits for the work, not for the bookkeeping.

How ``finish`` knows whether anything failed: it asks Airflow for the states of the group's tasks in this DAG
run. On Airflow 3 tasks have no database access, so it uses the Task SDK's ``RuntimeTaskInstance.
get_task_states`` (served by the API server); on Airflow 2 it reads the DAG run's task instances from the
database. A DAG-level callback would be the other natural shape, but on Airflow 3 DAG callbacks run in the DAG
processor, away from the task that knows the run id, and they are not retried; two trigger-rule finishing tasks
(``CoupaFinishIntegrationRunOperator`` with ``all_success`` and ``one_failed``) work on both lines too, but
leave a skipped task behind and decide the DAG run's state through whichever of them is a leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from airflow_provider_coupa_ihr.operators.runs import (
    CoupaFinishIntegrationRunOperator,
    CoupaStartIntegrationRunOperator,
)

__all__ = [
    "CoupaFinishIntegrationRunAfterTasksOperator",
    "CoupaIntegrationRun",
    "coupa_integration_run",
    "enclosing_run_id",
    "enclosing_run_start",
    "failed_task_ids",
]

_FAILED = frozenset({"failed", "upstream_failed"})


def failed_task_ids(context: Any, task_ids: Iterable[str]) -> list[str]:
    """Which of ``task_ids`` failed (or could not run because an upstream failed) in this task's DAG run.

    Mapped tasks count per map index (``task_3`` on Airflow 3, ``task[3]`` on Airflow 2).
    """
    wanted = set(task_ids)
    if not wanted:
        return []
    ti = context["ti"]
    if hasattr(type(ti), "get_task_states"):  # Airflow 3: the Task SDK asks the API server
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=sorted(wanted), run_ids=[ti.run_id])
        found: dict[str, Any] = states.get(ti.run_id, {})
        return sorted(key for key, state in found.items() if _text(state) in _FAILED)
    dag_run = context["dag_run"]  # Airflow 2: tasks may read the metadata database
    return sorted(
        t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]"
        for t in dag_run.get_task_instances()
        if t.task_id in wanted and _text(t.state) in _FAILED
    )


def _text(state: Any) -> str:
    return str(getattr(state, "value", state) or "")


class CoupaFinishIntegrationRunAfterTasksOperator(CoupaFinishIntegrationRunOperator):
    """Finish an integration run as ``fail`` when any of ``watched_task_ids`` failed, else as ``success``.

    The teardown of :func:`coupa_integration_run`; usable on its own as a teardown (or with trigger rule
    ``all_done``) after tasks you name. Safe to retry, like its parent.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id", "run_id", "records_processed")

    def __init__(self, *, run_id: int | str, watched_task_ids: Sequence[str], **kwargs: Any) -> None:
        super().__init__(run_id=run_id, outcome="success", **kwargs)
        self.watched_task_ids = list(watched_task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        failed = failed_task_ids(context, self.watched_task_ids)
        self.outcome = "fail" if failed else "success"
        if failed:
            self.log.info("Finishing the Coupa run as failed: %s did not succeed", ", ".join(failed[:20]))
        return super().execute(context)


class CoupaIntegrationRun:
    """A task group whose tasks run inside one Coupa integration run (see :func:`coupa_integration_run`).

    Attributes: ``group`` (the ``TaskGroup``), ``start`` and ``finish`` (the setup and teardown tasks, made
    on entering and leaving the ``with`` block) and ``run_id`` (a template rendering to the run's id).
    """

    def __init__(
        self,
        integration: str,
        *,
        group_id: str = "coupa_run",
        coupa_conn_id: str = "coupa_default",
        total_records: int | str | None = None,
        records_processed: int | str | None = None,
        fail_dag_run_if_finish_fails: bool = False,
        attach_records: bool = True,
        prefix_group_id: bool = True,
        tooltip: str = "",
    ) -> None:
        from airflow.providers.common.compat.sdk import TaskGroup

        self.integration = integration
        self.coupa_conn_id = coupa_conn_id
        self.total_records = total_records
        self.records_processed = records_processed
        self.fail_dag_run_if_finish_fails = fail_dag_run_if_finish_fails
        self.attach_records = attach_records
        self.group = TaskGroup(
            group_id=group_id,
            prefix_group_id=prefix_group_id,
            tooltip=tooltip or f"Inside one Coupa integration run of {integration}",
        )
        self._names = ("start", "finish") if prefix_group_id else (f"{group_id}_start", f"{group_id}_finish")
        self.start: CoupaStartIntegrationRunOperator | None = None
        self.finish: CoupaFinishIntegrationRunAfterTasksOperator | None = None

    @property
    def start_task_id(self) -> str:
        return str(self.group.child_id(self._names[0]))

    @property
    def run_id(self) -> str:
        """A template rendering to the Coupa run's id, for ``integration_run=`` of operators and notifiers."""
        return "{{ ti.xcom_pull(task_ids='" + self.start_task_id + "')['id'] }}"

    def __enter__(self) -> CoupaIntegrationRun:
        self.group.__enter__()
        self.start = CoupaStartIntegrationRunOperator(
            task_id=self._names[0],
            integration=self.integration,
            total_records=self.total_records,
            coupa_conn_id=self.coupa_conn_id,
        )
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._wire()
        finally:
            self.group.__exit__(exc_type, exc, tb)

    def _wire(self) -> None:
        assert self.start is not None
        work = [t for t in self.group if t is not self.start]
        ids = {t.task_id for t in work}
        self.finish = CoupaFinishIntegrationRunAfterTasksOperator(
            task_id=self._names[1],
            run_id=self.run_id,
            watched_task_ids=sorted(ids),
            records_processed=self.records_processed,
            coupa_conn_id=self.coupa_conn_id,
        )
        self.finish.as_teardown(setups=self.start, on_failure_fail_dagrun=self.fail_dag_run_if_finish_fails)
        for task in work:
            if not (set(task.upstream_task_ids) & ids):
                self.start >> task
            if not (set(task.downstream_task_ids) & ids):
                task >> self.finish
            if self.attach_records:
                _attach(task, self.run_id)

    # A run used in a dependency stands for its group: ``extract >> run >> publish``. Airflow's dependency
    # code duck-types its operands (``update_relative``, ``roots``, ``leaves``), so delegating these suffices.
    @property
    def roots(self) -> list[Any]:
        return list(self.group.roots)

    @property
    def leaves(self) -> list[Any]:
        return list(self.group.leaves)

    def update_relative(self, other: Any, upstream: bool = True, edge_modifier: Any = None) -> None:
        """What Airflow calls on the right-hand side of ``task >> run`` (and in ``set_downstream``)."""
        self.group.update_relative(other, upstream, edge_modifier=edge_modifier)

    def __rshift__(self, other: Any) -> Any:
        return self.group >> other

    def __lshift__(self, other: Any) -> Any:
        return self.group << other

    def __rrshift__(self, other: Any) -> Any:
        other >> self.group
        return self

    def __rlshift__(self, other: Any) -> Any:
        other << self.group
        return self


def coupa_integration_run(integration: str, **kwargs: Any) -> CoupaIntegrationRun:
    """Run the tasks of a ``with`` block inside one Coupa integration run of ``integration`` (its code).

    ``start`` creates the run and marks it running before any task of the block; ``finish`` finishes it as
    ``successful`` when every task in the block succeeded (or was skipped) and as ``failed`` otherwise, and
    runs even when tasks failed. Coupa record operators in the block that name no ``integration_run`` get
    ``run.run_id`` (turn off with ``attach_records=False``), and so do ``CoupaNotifier`` callbacks and the
    Coupa listener for tasks in the block. Options: ``group_id`` (``coupa_run``), ``coupa_conn_id``,
    ``total_records``, ``records_processed`` (templated), ``fail_dag_run_if_finish_fails`` (default False:
    like any teardown, a failed finish leaves the DAG run's state to the work), ``prefix_group_id``, ``tooltip``.
    If ``start`` fails (Coupa unreachable after its retries), the block's tasks do not run.
    """
    return CoupaIntegrationRun(integration, **kwargs)


def _attach(task: Any, run_ref: str) -> None:
    """Point a Coupa record operator (plain or mapped) that names no run at ``run_ref``."""
    from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator
    from airflow_provider_coupa_ihr.operators.records import CoupaCreateRecordOperator

    partial = getattr(task, "partial_kwargs", None)
    cls = getattr(task, "operator_class", None) if partial is not None else type(task)
    if not isinstance(cls, type):
        return
    if issubclass(cls, CoupaCreateRecordOperator):
        if partial is None:
            if task.integration_run is None:
                task.integration_run = run_ref
            return
        expanded = getattr(getattr(task, "expand_input", None), "value", None)
        if partial.get("integration_run") is None and not (
            isinstance(expanded, dict) and "integration_run" in expanded
        ):
            partial["integration_run"] = run_ref
    elif (
        issubclass(cls, CoupaBulkCreateRecordsOperator)
        and partial is None
        and task.defaults.get("integration_run") is None
    ):
        task.defaults["integration_run"] = run_ref


def enclosing_run_start(task: Any) -> str | None:
    """The task id of the run-starting setup task of the innermost integration-run group around ``task``."""
    group = getattr(task, "task_group", None)
    while group is not None:
        for child in getattr(group, "children", {}).values():
            if (
                isinstance(child, CoupaStartIntegrationRunOperator)
                and getattr(child, "is_setup", False)
                and child.task_id != getattr(task, "task_id", None)
            ):
                return str(child.task_id)
        group = getattr(group, "parent_group", None)
    return None


def enclosing_run_id(ti: Any) -> int | None:
    """The Coupa run id of the integration-run group around ``ti``'s task, from its start task's XCom."""
    start = enclosing_run_start(getattr(ti, "task", None))
    if start is None:
        return None
    pushed = ti.xcom_pull(task_ids=start)
    if isinstance(pushed, dict) and pushed.get("id") is not None:
        from airflow_provider_coupa_ihr.client.values import parse_id

        return parse_id(pushed["id"], f"the run id {start} pushed")
    return None
