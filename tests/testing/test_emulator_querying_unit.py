"""``testing.querying`` without a server: parsing Coupa's query strings, matching, ordering, paging, projecting."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.records import RECORD_FIELDS, RUN_FIELDS
from airflow_provider_coupa_ihr.testing.querying import (
    MAX_LIMIT,
    Query,
    QueryError,
    apply_query,
    matching_ids,
    parse_query,
    project,
)

ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "document-type": "InvoiceHeader",
        "document-id": 5,
        "external-id": "A-1",
        "resolved": False,
        "updated-at": "2024-03-25T18:38:00-07:00",  # 2024-03-26T01:38Z
        "integration": {"code": "SAP", "id": 1},
    },
    {
        "id": 2,
        "document-type": "OrderHeader",
        "document-id": 7,
        "external-id": None,
        "resolved": True,
        "updated-at": "2024-03-26T00:00:00+00:00",
        "integration": {"code": "ORACLE", "id": 2},
    },
    {
        "id": 3,
        "document-type": "InvoiceHeader",
        "document-id": 9,
        "external-id": "b-2",
        "resolved": False,
        "updated-at": "2024-03-26T02:00:00Z",
        "integration": None,
    },
]


def q(*pairs: tuple[str, str]) -> Query:
    return parse_query(pairs, RECORD_FIELDS)


def ids(*pairs: tuple[str, str]) -> list[int]:
    return [int(r["id"]) for r in apply_query(ROWS, q(*pairs))]


def test_defaults() -> None:
    query = q()
    assert query == Query()
    assert (query.order_by, query.descending, query.limit, query.offset) == ("id", False, MAX_LIMIT, 0)
    assert MAX_LIMIT == 50


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((("document-type", "InvoiceHeader"),), [1, 3]),
        ((("document_type", "InvoiceHeader"), ("document-id", "9")), [3]),
        ((("resolved", "TRUE"),), [2]),
        ((("external-id[contains]", "B"),), [3]),
        ((("external-id[starts_with]", "a"),), [1]),
        ((("external-id[ends_with]", "-2"),), [3]),
        ((("external-id[blank]", "true"),), [2]),
        ((("external-id[not_eq]", "A-1"),), [2, 3]),
        ((("document-id[in]", "5,9"),), [1, 3]),
        ((("document-id[not_in]", "5,9"),), [2]),
        ((("document-id[gt]", "5"), ("document-id[lt]", "9")), [2]),
        ((("integration[code]", "SAP"),), [1]),
        ((("integration[code][not_eq]", "SAP"),), [2, 3]),  # a missing association is "not SAP"
        ((("integration[id][gt_or_eq]", "2"),), [2]),
    ],
)
def test_filters(pairs: tuple[tuple[str, str], ...], expected: list[int]) -> None:
    assert ids(*pairs) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-26T01:00:00Z", [1, 3]),  # offsets are compared as instants: 18:38-07:00 is after 01:00Z
        ("2024-03-26T01:38:00+00:00", [3]),
        ("2024-03-25T18:50:00-07:00", [3]),  # 01:50Z
        ("2024-03-26", [1, 3]),  # a date alone means midnight UTC
    ],
)
def test_datetimes_compare_as_instants(value: str, expected: list[int]) -> None:
    assert ids(("updated-at[gt]", value)) == expected


def test_datetime_equality_across_offsets() -> None:
    assert ids(("updated-at", "2024-03-26T01:38:00Z")) == [1]
    assert ids(("updated-at[lt_or_eq]", "2024-03-26T00:00:00Z")) == [2]
    assert ids(("updated-at[gt_or_eq]", "2024-03-26T02:00:00+00:00")) == [3]


def test_order_and_page() -> None:
    assert ids(("order_by", "document-id"), ("dir", "desc")) == [3, 2, 1]
    assert ids(("order_by", "external_id")) == [2, 1, 3]  # None first; "A-1" < "b-2"
    assert ids(("limit", "1"), ("offset", "1")) == [2]
    assert ids(("offset", "3")) == []
    assert matching_ids(ROWS, q(("dir", "desc"))) == [3, 2, 1]


@pytest.mark.parametrize(("limit", "expected"), [("0", MAX_LIMIT), ("1", 1), ("50", 50), ("51", 50), ("9999", 50)])
def test_limit(limit: str, expected: int) -> None:
    assert q(("limit", limit)).limit == expected


@pytest.mark.parametrize(
    "pair",
    [
        ("colour", "red"),
        ("external-id[matches]", "x"),
        ("external-id[contains", "x"),
        ("document-id", "1.5"),
        ("document-id[in]", "1,two"),
        ("resolved", "yes"),
        ("external-id[blank]", "maybe"),
        ("updated-at", "last tuesday"),
        ("updated-at[contains]", "2024"),
        ("document-id[starts_with]", "1"),
        ("integration", "SAP"),
        ("integration[colour]", "red"),
        ("integration[code][contains][gt]", "x"),
        ("order_by", "colour"),
        ("dir", "up"),
        ("limit", "ten"),
        ("offset", "-1"),
        ("fields", "[id]"),
        ("fields", '["id", 3]'),
        ("return_object", "full"),
    ],
)
def test_refused(pair: tuple[str, str]) -> None:
    with pytest.raises(QueryError):
        q(pair)


def test_control_params_take_dashes_too() -> None:
    query = q(("order-by", "document-id"), ("return-object", "shallow"))
    assert query.order_by == "document-id"
    assert query.return_object == "shallow"


def test_fields_param_and_project() -> None:
    query = q(("fields", '["id", "external_id", {"integration": ["code"]}]'))
    assert query.fields == ["id", "external_id", {"integration": ["code"]}]
    assert project(ROWS[0], query.fields) == {"id": 1, "external-id": "A-1", "integration": {"code": "SAP"}}
    assert project(ROWS, ["id"]) == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert project(ROWS[2], [{"integration": ["code"]}]) == {"integration": None}
    assert project(ROWS[0], None) is ROWS[0]
    assert project(ROWS[0], ["no-such"]) == {}


def test_runs_take_their_own_fields() -> None:
    parse_query([("status", "running"), ("integration[code]", "X")], RUN_FIELDS)
    with pytest.raises(QueryError):
        parse_query([("document-type", "InvoiceHeader")], RUN_FIELDS)
