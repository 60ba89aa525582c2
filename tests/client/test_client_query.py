"""Query building: filters in Coupa's syntax, value rendering, fields=, order and limits."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.query import (
    build_index_params,
    fields_param,
    filter_params,
    order_params,
)
from airflow_provider_coupa_ihr.client.records import ERROR_FIELDS, INTEGRATION_FIELDS, RUN_FIELDS, Field

PACIFIC = timezone(timedelta(hours=-7))


def _refused(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(CoupaValidationError) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.status is None
    return info.value.problems


# ---------------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "Success"}, [("status", "Success")]),
        ({"document_type": "InvoiceHeader"}, [("document-type", "InvoiceHeader")]),
        ({"document-type": "InvoiceHeader"}, [("document-type", "InvoiceHeader")]),
        ({"id[in]": [1, 2, 3]}, [("id[in]", "1,2,3")]),
        ({"id[in]": (3, "4")}, [("id[in]", "3,4")]),
        ({"id[not_in]": {30, 4, 200}}, [("id[not_in]", "200,30,4")]),
        ({"id[in]": "1, 2,,3"}, [("id[in]", "1,2,3")]),
        ({"id[gt]": 10}, [("id[gt]", "10")]),
        ({"id": "42"}, [("id", "42")]),
        ({"document-id[lt_or_eq]": " 7 "}, [("document-id[lt_or_eq]", "7")]),
        ({"id[gt-or-eq]": 5}, [("id[gt_or_eq]", "5")]),
        ({"resolved": False}, [("resolved", "false")]),
        ({"resolved": "TRUE"}, [("resolved", "true")]),
        ({"resolved[not_eq]": True}, [("resolved[not_eq]", "true")]),
        ({"external-id[blank]": True}, [("external-id[blank]", "true")]),
        ({"external_id[blank]": "false"}, [("external-id[blank]", "false")]),
        ({"external-id[contains]": "INV-"}, [("external-id[contains]", "INV-")]),
        ({"external-id[starts_with]": 2024}, [("external-id[starts_with]", "2024")]),
        ({"status[ends_with]": "ess"}, [("status[ends_with]", "ess")]),
        ({"external-id": 12345}, [("external-id", "12345")]),
        ({"status[not_eq]": "Error"}, [("status[not_eq]", "Error")]),
        ({"status[in]": ["Success", "Error"]}, [("status[in]", "Success,Error")]),
        ({"integration[code]": "SAP"}, [("integration[code]", "SAP")]),
        ({"integration[id]": 7}, [("integration[id]", "7")]),
        ({"integration[code][in]": ["A", "B"]}, [("integration[code][in]", "A,B")]),
        ({"integration_run[id]": 9}, [("integration-run[id]", "9")]),
        ({"integration-run[status]": "running"}, [("integration-run[status]", "running")]),
        ({"created_by[login]": "jdoe"}, [("created-by[login]", "jdoe")]),
        ({"integration[end_system_type]": "erp"}, [("integration[end-system-type]", "erp")]),
        ({" status ": "x"}, [("status", "x")]),
        (None, []),
        ({}, []),
    ],
)
def test_filters_render_as_coupa_reads_them(filters: dict[str, Any] | None, expected: list[tuple[str, str]]) -> None:
    assert filter_params(filters) == expected


def test_filters_keep_the_callers_order() -> None:
    assert filter_params({"updated_at[lt]": "2024-02-01", "updated_at[gt]": "2024-01-01", "status": "Error"}) == [
        ("updated-at[lt]", "2024-02-01"),
        ("updated-at[gt]", "2024-01-01"),
        ("status", "Error"),
    ]


def test_aware_datetimes_keep_their_offset() -> None:
    since = datetime(2024, 3, 25, 18, 38, tzinfo=PACIFIC)
    assert filter_params({"updated_at[gt]": since}) == [("updated-at[gt]", "2024-03-25T18:38:00-07:00")]


def test_naive_datetimes_are_taken_as_utc() -> None:
    assert filter_params({"created-at[gt_or_eq]": datetime(2024, 1, 2, 3, 4, 5, 600)}) == [
        ("created-at[gt_or_eq]", "2024-01-02T03:04:05.000600+00:00")
    ]


def test_dates_and_iso_text_pass_for_datetime_fields() -> None:
    assert filter_params({"updated-at[gt]": date(2024, 1, 31)}) == [("updated-at[gt]", "2024-01-31")]
    assert filter_params({"updated-at[lt]": "2024-03-25T18:38:00Z"}) == [("updated-at[lt]", "2024-03-25T18:38:00Z")]
    assert filter_params({"updated-at[in]": [date(2024, 1, 1), "2024-01-02"]}) == [
        ("updated-at[in]", "2024-01-01,2024-01-02")
    ]


def test_pendulum_like_datetime_subclasses_work() -> None:
    class MyDateTime(datetime):
        pass

    value = MyDateTime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert filter_params({"updated-at[gt]": value}) == [("updated-at[gt]", "2024-05-06T07:08:09+00:00")]


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"documnet_type": "X"}, "documnet_type: unknown field documnet-type; did you mean document-type or"),
        ({"zzz": "X"}, "zzz: unknown field zzz; known fields: "),
        ({"integration_code": "SAP"}, "did you mean integration[code]"),
        ({"id[greater]": 1}, "unknown operator [greater]; Coupa's operators: [contains], [starts_with]"),
        ({"id[gt_eq]": 1}, "did you mean [gt_or_eq]?"),
        ({"id[gt][lt]": 1}, "too many [brackets]"),
        ({"id[": 1}, "not a Coupa filter"),
        ({"1id": 1}, "not a Coupa filter"),
        ({"limit": 10}, "limit: not a filter; pass it as limit="),
        ({"order-by": "id"}, "not a filter; pass it as order_by="),
        ({"dir": "asc"}, "not a filter; pass it as direction="),
        ({"fields": "[]"}, "pass it as fields="),
        ({"integration": "SAP"}, "integration is an association: filter on one of its fields, e.g. integration[id]"),
        ({"responses[response-code]": "E1"}, "responses is a list Coupa cannot filter on"),
        ({"integration[nope]": 1}, "unknown field nope of integration; known: "),
        ({"integration[cod]": 1}, "unknown field cod of integration; did you mean code"),
        ({"integration-run[integration]": 1}, "integration-run[integration] is not a plain value"),
        ({"updated-at[contains]": "2024"}, "[contains] works on text; updated-at is a datetime field"),
        ({"id[starts_with]": "1"}, "[starts_with] works on text; id is an integer field"),
        ({"resolved[ends_with]": "e"}, "resolved is a boolean field"),
        ({"status[contains]": ""}, "[contains] takes some text, got ''"),
        ({"status[contains]": True}, "[contains] takes some text"),
        ({"status[contains]": 1.5}, "[contains] takes some text"),
        ({"resolved[gt]": True}, "[gt] cannot compare true/false; resolved is a boolean field"),
        ({"id[in]": []}, "[in] needs at least one value"),
        ({"id[in]": " , "}, "[in] needs at least one value"),
        ({"id[not_in]": 5}, "[not_in] takes a list, tuple or set of values, got 5"),
        ({"id[in]": [1, None]}, "[in] takes plain values, got None"),
        ({"id[in]": [[1]]}, "[in] takes plain values"),
        ({"status[in]": ["a,b"]}, "[in] cannot carry 'a,b': Coupa splits the list on commas"),
        ({"id[in]": ["x"]}, "id takes a whole number, got 'x'"),
        ({"id": [1, 2]}, "takes one value, got a list; for several use id[in]"),
        ({"status": None}, "None is not a value; to find empty ones use status[blank]=True"),
        ({"status": "  "}, "an empty value matches nothing useful; to find empty ones use status[blank]=True"),
        ({"external-id[blank]": "yes"}, "[blank] takes True or False, got 'yes'"),
        ({"id": True}, "id takes a whole number, got True"),
        ({"id": 1.0}, "id takes a whole number"),
        ({"resolved": "maybe"}, "resolved takes True or False, got 'maybe'"),
        ({"status": False}, "status takes text, got False"),
        ({"status": datetime(2024, 1, 1)}, "status takes text"),
        ({"updated-at[gt]": "yesterday"}, "updated-at takes a datetime, a date or ISO 8601 text"),
        ({"updated-at[gt]": 1700000000}, "updated-at takes a datetime"),
    ],
)
def test_filters_coupa_would_refuse_are_refused_with_a_reason(filters: dict[str, Any], fragment: str) -> None:
    (problem,) = _refused(filter_params, filters)
    assert fragment in problem


def test_every_problem_is_reported_at_once() -> None:
    problems = _refused(filter_params, {"statu": "x", "id[in]": [], "resolved": "maybe"})
    assert len(problems) == 3
    assert problems[0].startswith("statu: unknown field statu; did you mean status")


def test_filters_must_be_a_mapping() -> None:
    (problem,) = _refused(filter_params, [("status", "x")])
    assert problem.startswith("filters: must be a mapping")


def test_known_fields_choose_the_resource() -> None:
    assert filter_params({"status": "running", "integration[code]": "X"}, RUN_FIELDS) == [
        ("status", "running"),
        ("integration[code]", "X"),
    ]
    assert filter_params({"integration-run[id]": 3}, ERROR_FIELDS) == [("integration-run[id]", "3")]
    (problem,) = _refused(filter_params, {"document-type": "X"}, RUN_FIELDS)
    assert "unknown field document-type" in problem
    assert filter_params({"direction": "to_coupa"}, INTEGRATION_FIELDS) == [("direction", "to_coupa")]


def test_associations_are_a_parameter_and_none_means_any_field() -> None:
    fields = {"flow": Field("flow", "object")}
    assert filter_params({"flow[name]": "nightly"}, fields, associations={"flow": None}) == [("flow[name]", "nightly")]
    (problem,) = _refused(filter_params, {"flow": "x"}, fields, associations={"flow": None})
    assert "flow is an association: filter on one of its fields, e.g. flow[id]" in problem
    (problem,) = _refused(filter_params, {"flow[x]": 1}, fields, associations={})
    assert "flow is an object Coupa cannot filter on" in problem


# ---------------------------------------------------------------------------------------------------- fields=
def test_fields_param_is_compact_dash_case_json() -> None:
    value = fields_param(["id", "status", "document_type", {"integration": ["code", "end_system"]}])
    assert value == '["id","status","document-type",{"integration":["code","end-system"]}]'
    assert json.loads(value)[3] == {"integration": ["code", "end-system"]}


def test_fields_param_recurses_and_checks_each_level() -> None:
    value = fields_param(
        ["id", {"responses": ["response_code"]}, {"integration-run": ["id", {"integration": ["code"]}]}]
    )
    assert value == '["id",{"responses":["response-code"]},{"integration-run":["id",{"integration":["code"]}]}]'


def test_fields_param_takes_any_name_inside_unlisted_associations() -> None:
    assert fields_param([{"created-by": ["fullname", "login"]}]) == '[{"created-by":["fullname","login"]}]'


def test_fields_param_without_known_fields_checks_only_the_shape() -> None:
    assert fields_param(["anything", {"else": ["x"]}], None) == '["anything",{"else":["x"]}]'


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ([], "fields: must name at least one field"),
        ("id", "fields: must be a list of field names, got 'id'"),
        ({"id"}, "must be a list of field names"),
        (["idd"], "fields: unknown field idd; did you mean id"),
        ([{"integration": []}], "fields of integration: must name at least one field"),
        ([{"integration": ["cod"]}], "fields of integration: unknown field cod; did you mean code"),
        ([{"integration": "code"}], "fields of integration: must be a list of field names"),
        ([{"status": ["x"]}], "status is a plain value; only associations take a field list"),
        ([{"nope": ["x"]}], "unknown field nope"),
        ([{"integration": ["code"], "status": []}], "with one key"),
        ([3], "items are names or {association: [names]} with one key, got 3"),
    ],
)
def test_fields_param_refuses_bad_shapes(fields: Any, fragment: str) -> None:
    problems = _refused(fields_param, fields)
    assert any(fragment in p for p in problems), problems


# ------------------------------------------------------------------------------------------------------ order
def test_order_params_use_column_names() -> None:
    assert order_params() == [("order_by", "id"), ("dir", "asc")]
    assert order_params("updated-at", " DESC ") == [("order_by", "updated_at"), ("dir", "desc")]
    assert order_params(None) == []


@pytest.mark.parametrize(
    ("order_by", "direction", "fragment"),
    [
        ("updated", "asc", "order_by: unknown field updated; did you mean updated-at?"),
        ("integration", "asc", "order_by: integration is not a plain value"),
        ("id", "up", "direction: must be asc or desc, got 'up'"),
        (None, 1, "direction: must be asc or desc, got 1"),
    ],
)
def test_order_params_refuse_unknown_columns_and_directions(order_by: Any, direction: Any, fragment: str) -> None:
    (problem,) = _refused(order_params, order_by, direction)
    assert fragment in problem


# -------------------------------------------------------------------------------------------- build_index_params
def test_index_params_default_to_a_stable_first_page() -> None:
    assert build_index_params() == [("order_by", "id"), ("dir", "asc"), ("limit", "50"), ("offset", "0")]


def test_index_params_put_everything_in_a_fixed_order() -> None:
    params = build_index_params(
        {"document-type": "InvoiceHeader", "integration[code]": "SAP"},
        fields=["id", {"integration": ["code"]}],
        order_by="updated_at",
        direction="desc",
        limit=10,
        offset=20,
        return_object="limited",
    )
    assert params == [
        ("document-type", "InvoiceHeader"),
        ("integration[code]", "SAP"),
        ("fields", '["id",{"integration":["code"]}]'),
        ("return_object", "limited"),
        ("order_by", "updated_at"),
        ("dir", "desc"),
        ("limit", "10"),
        ("offset", "20"),
    ]


def test_index_params_can_leave_paging_to_the_pager() -> None:
    assert build_index_params({"status": "Error"}, limit=None, offset=None, order_by=None) == [("status", "Error")]


def test_index_params_for_runs() -> None:
    assert build_index_params({"status": "failed"}, known_fields=RUN_FIELDS, fields=["id", "status"], limit=1) == [
        ("status", "failed"),
        ("fields", '["id","status"]'),
        ("order_by", "id"),
        ("dir", "asc"),
        ("limit", "1"),
        ("offset", "0"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"limit": 0}, "limit: must be a whole number from 1 to 50, got 0"),
        ({"limit": 51}, "limit: must be a whole number from 1 to 50, got 51"),
        ({"limit": True}, "limit: must be a whole number"),
        ({"limit": "10"}, "limit: must be a whole number"),
        ({"offset": -1}, "offset: must be a whole number from 0, got -1"),
        ({"offset": 1.0}, "offset: must be a whole number from 0"),
        ({"return_object": "full"}, "return_object: must be one of limited, shallow, none, got 'full'"),
        ({"direction": "sideways"}, "direction: must be asc or desc"),
        ({"order_by": "nope"}, "order_by: unknown field nope"),
        ({"fields": ["nope"]}, "fields: unknown field nope"),
    ],
)
def test_index_params_refuse_out_of_range_settings(kwargs: dict[str, Any], fragment: str) -> None:
    (problem,) = _refused(build_index_params, **kwargs)
    assert fragment in problem


def test_index_params_report_problems_from_every_part_together() -> None:
    problems = _refused(build_index_params, {"bogus": 1}, fields=[], limit=500, offset=-3, direction="x")
    assert len(problems) == 5


# ------------------------------------------------------------------------------------------------ bounds
MAX_ID = 2**63 - 1


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"id": 0}, "id takes a Coupa id (a whole number) from 1 to 9223372036854775807, got 0"),
        ({"id[in]": [7, 0]}, "got 0"),
        ({"id[not_eq]": -1}, "got -1"),
        ({"document_id": MAX_ID + 1}, f"got {MAX_ID + 1}"),
        ({"integration_run_id[in]": "7,0"}, "got '0'"),
        ({"integration[id]": 0}, "id takes a Coupa id"),
        ({"id[gt]": MAX_ID + 1}, f"id takes a whole number from {-(2**63)} to {MAX_ID}"),
        ({"document_revision[lt]": -(2**63) - 1}, "document-revision takes a whole number"),
        ({"id": "9" * 5000}, "id takes a whole number, got '9999"),
        ({"id": "²"}, "id takes a whole number, got '²'"),
        ({"id[in]": ["①"]}, "got '①'"),
        ({"status": "Err\ud800"}, "status takes text; this holds a lone surrogate"),
    ],
)
def test_integer_filters_stay_within_what_coupa_holds(filters: dict[str, Any], words: str) -> None:
    problems = _refused(filter_params, filters)
    assert any(words in p for p in problems), problems
    assert all(len(p) < 600 for p in problems)


def test_comparisons_may_start_below_the_first_id() -> None:
    assert filter_params({"id[gt]": 0, "document_id[gt_or_eq]": 0, "id[lt]": MAX_ID}) == [
        ("id[gt]", "0"),
        ("document-id[gt_or_eq]", "0"),
        ("id[lt]", str(MAX_ID)),
    ]
    assert filter_params({"id[in]": [1, MAX_ID]}) == [("id[in]", f"1,{MAX_ID}")]


@pytest.mark.parametrize(
    "call",
    [
        lambda: filter_params({"status[contains]": ["x" * 100_000]}),
        lambda: filter_params({"created_at[gt]": "y" * 100_000}),
        lambda: filter_params({"id[in]": ["z" * 100_000]}),
        lambda: build_index_params(direction="d" * 100_000),
        lambda: build_index_params(limit="9" * 100_000),
        lambda: fields_param(["a"] * 5 + [{"b": 1, "c": 2, "x" * 100_000: 3}]),
        lambda: filter_params("f" * 100_000),  # type: ignore[arg-type]
    ],
)
def test_a_bad_value_is_quoted_a_couple_of_hundred_characters_at_most(call: Any) -> None:
    with pytest.raises(CoupaValidationError) as refused:
        call()
    assert len(str(refused.value)) < 2000
