"""coupa_integration_run's shape (setup, teardown, wiring, attached records) and how ``finish`` reads states."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator
from airflow_provider_coupa_ihr.operators.lifecycle import (
    CoupaFinishIntegrationRunAfterTasksOperator,
    coupa_integration_run,
    enclosing_run_id,
    enclosing_run_start,
    failed_task_ids,
)
from airflow_provider_coupa_ihr.operators.records import CoupaCreateAlertOperator, CoupaCreateRecordOperator
from airflow_provider_coupa_ihr.operators.runs import CoupaStartIntegrationRunOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _dag(dag_id: str = "lifecycle_shape") -> Any:
    return DAG(dag_id, schedule=None, start_date=START)


def _rule(t: Any) -> str:
    return str(getattr(t.trigger_rule, "value", t.trigger_rule))


def test_start_is_a_setup_before_the_work_and_finish_a_teardown_after_it() -> None:
    with _dag() as dag:
        before = CoupaCreateRecordOperator(task_id="before", document_type="Supplier", document_id=1)
        with coupa_integration_run(integration="ERP", total_records=2) as run:
            a = CoupaCreateRecordOperator(task_id="a", document_type="Supplier", document_id=1)
            b = CoupaCreateRecordOperator(task_id="b", document_type="Supplier", document_id=2)
            c = CoupaCreateRecordOperator(task_id="c", document_type="Supplier", document_id=3)
            a >> b
        after = CoupaCreateRecordOperator(task_id="after", document_type="Supplier", document_id=4)
        before >> run >> after
    start, finish = dag.get_task("coupa_run.start"), dag.get_task("coupa_run.finish")
    assert isinstance(start, CoupaStartIntegrationRunOperator)
    assert isinstance(finish, CoupaFinishIntegrationRunAfterTasksOperator)
    assert start.is_setup
    assert finish.is_teardown
    assert _rule(finish) == "all_done_setup_success"
    assert finish.on_failure_fail_dagrun is False
    assert (start.integration, start.total_records) == ("ERP", 2)
    # start precedes the group's roots; its leaves precede finish; finish watches every task of the work.
    assert a.upstream_task_ids >= {"coupa_run.start"}
    assert c.upstream_task_ids >= {"coupa_run.start"}
    assert b.upstream_task_ids == {"coupa_run.a"}
    assert finish.upstream_task_ids == {"coupa_run.start", "coupa_run.b", "coupa_run.c"}
    assert finish.watched_task_ids == ["coupa_run.a", "coupa_run.b", "coupa_run.c"]
    # Outside the group: "after" waits for the work, not for the bookkeeping.
    assert after.upstream_task_ids == {"coupa_run.b", "coupa_run.c"}
    assert "coupa_run.start" in before.downstream_task_ids
    assert run.run_id == "{{ ti.xcom_pull(task_ids='coupa_run.start')['id'] }}"
    assert run.start is start
    assert run.finish is finish
    # Airflow accepts the shape.
    dag.validate()


def test_record_operators_in_the_group_reference_the_run_unless_they_name_one() -> None:
    with _dag(), coupa_integration_run(integration="ERP", group_id="sync") as run:
        plain = CoupaCreateRecordOperator(task_id="plain", document_type="Supplier", document_id=1)
        alert = CoupaCreateAlertOperator(task_id="alert", document_type="Supplier", document_id=2)
        named = CoupaCreateRecordOperator(task_id="named", document_type="Supplier", document_id=3, integration_run=99)
        mapped = CoupaCreateRecordOperator.partial(task_id="mapped", document_type="Supplier").expand(
            document_id=[4, 5]
        )
        bulk = CoupaBulkCreateRecordsOperator(task_id="bulk", items=[{"document_id": 6}], defaults={})

        @task
        def other() -> None:
            """Not a Coupa operator: left alone."""

        other()
    ref = "{{ ti.xcom_pull(task_ids='sync.start')['id'] }}"
    assert run.run_id == ref
    assert plain.integration_run == ref
    assert alert.integration_run == ref
    assert named.integration_run == 99
    assert mapped.partial_kwargs["integration_run"] == ref
    assert bulk.defaults["integration_run"] == ref


def test_attaching_can_be_turned_off_and_ids_need_no_group_prefix() -> None:
    with (
        _dag() as dag,
        coupa_integration_run(
            integration="ERP", group_id="erp_run", prefix_group_id=False, attach_records=False
        ) as run,
    ):
        plain = CoupaCreateRecordOperator(task_id="plain", document_type="Supplier", document_id=1)
    assert plain.integration_run is None
    assert {t.task_id for t in dag.tasks} == {"erp_run_start", "erp_run_finish", "plain"}
    assert run.run_id == "{{ ti.xcom_pull(task_ids='erp_run_start')['id'] }}"


def test_an_empty_group_still_opens_and_closes_a_run() -> None:
    with _dag(), coupa_integration_run(integration="ERP") as run:
        pass
    assert run.finish is not None
    assert run.finish.upstream_task_ids == {"coupa_run.start"}
    assert run.finish.watched_task_ids == []


def test_an_error_inside_the_block_is_not_hidden_by_wiring() -> None:
    with pytest.raises(ZeroDivisionError), _dag(), coupa_integration_run(integration="ERP") as run:
        1 / 0  # noqa: B018
    assert run.finish is None


def test_tasks_find_the_run_of_their_enclosing_group() -> None:
    with _dag():
        outside = CoupaCreateRecordOperator(task_id="outside", document_type="Supplier", document_id=1)
        with coupa_integration_run(integration="ERP") as run:
            inside = CoupaCreateRecordOperator(task_id="inside", document_type="Supplier", document_id=1)
    assert enclosing_run_start(inside) == "coupa_run.start"
    assert enclosing_run_start(outside) is None
    assert enclosing_run_start(run.start) is None  # the start task cannot reference its own run
    assert enclosing_run_start(None) is None

    pulled: list[str] = []

    def xcom_pull(task_ids: str) -> Any:
        pulled.append(task_ids)
        return {"id": 12, "status": "running"}

    assert enclosing_run_id(SimpleNamespace(task=inside, xcom_pull=xcom_pull)) == 12
    assert pulled == ["coupa_run.start"]
    assert enclosing_run_id(SimpleNamespace(task=outside, xcom_pull=xcom_pull)) is None


# ------------------------------------------------------------------------------------------------ failed_task_ids
class _Airflow3TI:
    """The part of Airflow 3's RuntimeTaskInstance that ``finish`` uses."""

    dag_id = "d"
    run_id = "r"
    asked: dict[str, Any] = {}

    @staticmethod
    def get_task_states(**kwargs: Any) -> dict[str, Any]:
        _Airflow3TI.asked = kwargs
        return {"r": {"a": "success", "b_0": "failed", "b_1": "success", "c": "upstream_failed", "d": "skipped"}}


def test_failed_tasks_on_airflow_3_come_from_the_task_sdk() -> None:
    assert failed_task_ids({"ti": _Airflow3TI()}, ["a", "b", "c", "d"]) == ["b_0", "c"]
    assert _Airflow3TI.asked == {"dag_id": "d", "task_ids": ["a", "b", "c", "d"], "run_ids": ["r"]}
    assert failed_task_ids({"ti": _Airflow3TI()}, []) == []


def test_failed_tasks_on_airflow_2_come_from_the_dag_run() -> None:
    tis = [
        SimpleNamespace(task_id="a", map_index=-1, state="success"),
        SimpleNamespace(task_id="b", map_index=1, state="failed"),
        SimpleNamespace(task_id="c", map_index=-1, state="upstream_failed"),
        SimpleNamespace(task_id="other", map_index=-1, state="failed"),
    ]
    context = {
        "ti": SimpleNamespace(dag_id="d", run_id="r"),
        "dag_run": SimpleNamespace(get_task_instances=lambda: tis),
    }
    assert failed_task_ids(context, ["a", "b", "c"]) == ["b[1]", "c"]
