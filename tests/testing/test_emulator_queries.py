"""Coupa's query language on ``GET /api/integration_history_records``: filters, operators, pages, order,
``fields=`` and ``return_object=``, over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from emulator_helpers import CODE, ERRORS, IHR, INTEGRATIONS, RUNS, Api, errors_of, ihr, seed_records

from airflow_provider_coupa_ihr.client.records import QUERY_OPERATORS
from airflow_provider_coupa_ihr.testing import CoupaEmulator

#: Five records with distinct values, so each operator picks out a known set of ids (1..5).
ROWS: list[dict[str, Any]] = [
    ihr(**{"document-type": "InvoiceHeader", "document-id": 10, "external-id": "INV-0010", "status": "Success"}),
    ihr(**{"document-type": "InvoiceHeader", "document-id": 20, "external-id": "INV-0020", "status": "Error"}),
    ihr(**{"document-type": "OrderHeader", "document-id": 30, "external-id": "PO-0030", "status": "Success"}),
    ihr(**{"document-type": "Asn::Header", "document-id": 40, "external-id": None, "status": "Error"}),
    ihr(
        **{
            "document-type": "Payables::Invoice",
            "document-id": 50,
            "external-id": "",
            "status": "Success",
            "integration": None,
        }
    ),
]


@pytest.fixture
def rows(coupa_emulator: CoupaEmulator) -> list[dict[str, Any]]:
    coupa_emulator.add_integration("OTHER")
    stored = seed_records(coupa_emulator, ROWS)
    coupa_emulator.state.update(coupa_emulator.state.records, 5, {"integration": {"code": "OTHER"}}, user=None)
    coupa_emulator.resolve(2)
    return stored


def _ids(api: Api, params: Any) -> list[int]:
    response = api.get(IHR, params=params)
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


# ------------------------------------------------------------------------------------------ filters
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"document-type": "InvoiceHeader"}, [1, 2]),
        ({"document_type": "InvoiceHeader"}, [1, 2]),
        ({"document-id": "30"}, [3]),
        ({"document_id": "30"}, [3]),
        ({"status": "Error"}, [2, 4]),
        ({"resolved": "true"}, [2]),
        ({"resolved": "false"}, [1, 3, 4, 5]),
        ({"document-type": "Asn::Header"}, [4]),
        ({"id": "3"}, [3]),
        ({"document-type": "InvoiceHeader", "status": "Error"}, [2]),  # conditions are ANDed
        ({"document-type": "ExpenseReport"}, []),
    ],
)
def test_equality(rows: Any, api: Api, params: dict[str, str], expected: list[int]) -> None:
    assert _ids(api, params) == expected


OPERATOR_CASES: list[tuple[str, str, list[int]]] = [
    ("external-id[contains]", "00", [1, 2, 3]),
    ("external-id[contains]", "inv", [1, 2]),  # case-insensitive, like Coupa's SQL LIKE
    ("external-id[starts_with]", "PO-", [3]),
    ("external-id[ends_with]", "20", [2]),
    ("document-type[starts_with]", "Payables::", [5]),
    ("document-id[gt]", "30", [4, 5]),
    ("document-id[lt]", "30", [1, 2]),
    ("document-id[gt_or_eq]", "30", [3, 4, 5]),
    ("document-id[lt_or_eq]", "30", [1, 2, 3]),
    ("document-id[not_eq]", "30", [1, 2, 4, 5]),
    ("status[not_eq]", "Success", [2, 4]),
    ("document-type[in]", "OrderHeader,Asn::Header", [3, 4]),
    ("document-id[in]", "10, 50", [1, 5]),
    ("document-type[not_in]", "InvoiceHeader,OrderHeader", [4, 5]),
    ("external-id[blank]", "true", [4, 5]),
    ("external-id[blank]", "false", [1, 2, 3]),
    ("document_id[gt_or_eq]", "40", [4, 5]),  # underscores in the name, and in the operator
    ("document-id[gt-or-eq]", "40", [4, 5]),
    ("updated-at[gt]", "2000-01-01T00:00:00Z", [1, 2, 3, 4, 5]),
    ("updated_at[lt]", "2000-01-01T00:00:00-07:00", []),
    ("created-at[lt_or_eq]", "2999-12-31", [1, 2, 3, 4, 5]),
]


@pytest.mark.parametrize(("key", "value", "expected"), OPERATOR_CASES)
def test_operators(rows: Any, api: Api, key: str, value: str, expected: list[int]) -> None:
    assert _ids(api, {key: value}) == expected


def test_every_operator_is_exercised() -> None:
    used = {key.split("[", 1)[1].rstrip("]").replace("-", "_") for key, _, _ in OPERATOR_CASES}
    assert set(QUERY_OPERATORS) <= used


def test_operators_combine_on_one_field(rows: Any, api: Api) -> None:
    assert _ids(api, {"document-id[gt]": "10", "document-id[lt]": "50"}) == [2, 3, 4]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"integration[code]": CODE}, [1, 2, 3, 4]),
        ({"integration[code]": "OTHER"}, [5]),
        ({"integration[code][not_eq]": CODE}, [5]),
        ({"integration[code][in]": f"{CODE},OTHER"}, [1, 2, 3, 4, 5]),
        ({"integration[end_system]": "ERP"}, [1, 2, 3, 4, 5]),
        ({"created-by[login]": "nobody"}, []),
    ],
)
def test_association_filters(rows: Any, api: Api, params: dict[str, str], expected: list[int]) -> None:
    assert _ids(api, params) == expected


# ------------------------------------------------------------------------------------------ bad queries
@pytest.mark.parametrize(
    "params",
    [
        {"external-id[like]": "x"},
        {"no-such-field": "x"},
        {"integration": "x"},
        {"integration[colour]": "x"},
        {"document-id": "ten"},
        {"document-id[in]": "1,x"},
        {"resolved": "maybe"},
        {"external-id[blank]": "yes"},
        {"created-at[contains]": "2024"},
        {"created-at[gt]": "yesterday"},
        {"document-id[gt][lt]": "1"},
        {"order_by": "colour"},
        {"dir": "sideways"},
        {"limit": "-1"},
        {"offset": "first"},
        {"fields": "id,status"},
        {"fields": '{"id": 1}'},
        {"fields": "[" * 1200 + "]" * 1200},  # past Python's recursion limit, within aiohttp's 8 KB request line
        {"fields": '[{"integration": ' + "[{" * 200 + '"a": []' + "}]" * 200 + "}]"},
        {"return_object": "everything"},
    ],
)
def test_bad_query_is_400(rows: Any, api: Api, params: dict[str, str]) -> None:
    response = api.get(IHR, params=params)
    assert response.status_code == 400, response.text
    assert errors_of(response, "base")


BIGINT = 2**63 - 1


@pytest.mark.parametrize(
    "params",
    [
        {"id": str(BIGINT + 1)},
        {"id[gt]": str(BIGINT + 1)},
        {"id[lt_or_eq]": str(-BIGINT - 2)},
        {"id[in]": f"1,{BIGINT + 1}"},
        {"id[not_in]": "9" * 40},
        {"document-id": "9" * 5000},  # past Python's int() digit limit too
        {"integration-run-id": str(BIGINT + 1)},
        {"integration[id]": str(BIGINT + 1)},
        {"document-id": "\u00b2"},  # a digit to str.isdigit(), not to int()
        {"offset": str(BIGINT + 1)},
        {"limit": "9" * 5000},
    ],
    ids=lambda p: f"{next(iter(p))}={next(iter(p.values()))[:24]}",
)
def test_numbers_beyond_a_bigint_are_400(rows: Any, api: Api, params: dict[str, str]) -> None:
    response = api.get(IHR, params=params)
    assert response.status_code == 400, response.text
    assert errors_of(response, "base")


def test_the_largest_bigint_is_a_valid_filter(rows: Any, api: Api) -> None:
    for params in ({"id": str(BIGINT)}, {"id[gt]": str(BIGINT)}, {"id[gt]": str(-BIGINT - 1)}):
        response = api.get(IHR, params=params)
        assert response.status_code == 200, (params, response.text)
    assert len(api.get(IHR, params={"id[gt]": str(-BIGINT - 1)}).json()) == len(rows)


# ------------------------------------------------------------------------------------------ pages
@pytest.fixture
def fifty_one(coupa_emulator: CoupaEmulator) -> list[dict[str, Any]]:
    return seed_records(coupa_emulator, [ihr(**{"document-id": 1000 + n}) for n in range(51)])


def test_51_records_page_as_50_then_1(fifty_one: Any, api: Api) -> None:
    first = _ids(api, {"order_by": "id", "offset": 0})
    assert first == list(range(1, 51))
    second = _ids(api, {"order_by": "id", "offset": 50})
    assert second == [51]
    assert _ids(api, {"order_by": "id", "offset": 51}) == []


def test_default_page_is_50_records(fifty_one: Any, api: Api) -> None:
    assert len(_ids(api, {})) == 50


@pytest.mark.parametrize(("limit", "size"), [("51", 50), ("100", 50), ("50", 50), ("10", 10), ("1", 1)])
def test_limit_is_capped_at_50(fifty_one: Any, api: Api, limit: str, size: int) -> None:
    assert len(_ids(api, {"limit": limit})) == size


def test_offset_counts_records_skipped_from_0(fifty_one: Any, api: Api) -> None:
    assert _ids(api, {"limit": 3, "offset": 0}) == [1, 2, 3]
    # Starting at 1 skips the first record (a known trap in other Coupa clients).
    assert _ids(api, {"limit": 3, "offset": 1}) == [2, 3, 4]


def test_walking_pages_sees_each_record_once(fifty_one: Any, api: Api) -> None:
    seen: list[int] = []
    offset = 0
    while True:
        page = _ids(api, {"order_by": "id", "dir": "asc", "limit": 20, "offset": offset})
        seen.extend(page)
        if len(page) < 20:
            break
        offset += len(page)
    assert seen == list(range(1, 52))


# ------------------------------------------------------------------------------------------ order
def test_order_by_and_dir(rows: Any, api: Api) -> None:
    assert _ids(api, {"order_by": "document-id", "dir": "desc"}) == [5, 4, 3, 2, 1]
    assert _ids(api, {"order_by": "document_id", "dir": "asc"}) == [1, 2, 3, 4, 5]
    assert _ids(api, {"order_by": "external-id"}) == [4, 5, 1, 2, 3]  # nulls, then "", then text
    assert _ids(api, {"dir": "desc"}) == [5, 4, 3, 2, 1]  # id when no order_by
    assert _ids(api, {"order_by": "status", "dir": "asc"}) == [2, 4, 1, 3, 5]  # ties broken by id


def test_order_then_page(rows: Any, api: Api) -> None:
    assert _ids(api, {"order_by": "document-id", "dir": "desc", "limit": 2, "offset": 1}) == [4, 3]


# ------------------------------------------------------------------------------------------ payload shape
def test_fields_trims_the_payload_and_reaches_into_associations(rows: Any, api: Api) -> None:
    spec = json.dumps(["id", "status", {"integration": ["code"]}, {"created_by": ["login"]}])
    response = api.get(IHR, params={"fields": spec, "id": "1"})
    assert response.status_code == 200
    assert response.json() == [{"id": 1, "status": "Success", "integration": {"code": CODE}, "created-by": None}]


def test_fields_with_underscore_names(rows: Any, api: Api) -> None:
    spec = json.dumps(["document_type", "external_id"])
    assert api.get(IHR, params={"fields": spec, "id": "1"}).json() == [
        {"document-type": "InvoiceHeader", "external-id": "INV-0010"}
    ]


def test_fields_on_show(rows: Any, api: Api) -> None:
    response = api.get(f"{IHR}/3", params={"fields": '["id",{"integration":["code","name"]}]'})
    assert response.json() == {"id": 3, "integration": {"code": CODE, "name": CODE}}


def test_return_object_none_answers_200_without_a_body(rows: Any, api: Api) -> None:
    response = api.get(IHR, params={"return_object": "none"})
    assert response.status_code == 200
    assert response.content == b""


def test_return_object_shallow_keeps_associations_as_ids(rows: Any, api: Api) -> None:
    [record] = api.get(IHR, params={"return_object": "shallow", "id": "1"}).json()
    integration_id = api.get(INTEGRATIONS, params={"code": CODE}).json()[0]["id"]
    assert record["integration"] == {"id": integration_id}
    assert record["document-id"] == 10
    assert record["responses"] == []


def test_return_object_limited_drops_associations(rows: Any, api: Api) -> None:
    [record] = api.get(IHR, params={"return_object": "limited", "id": "1"}).json()
    assert "integration" not in record
    assert "responses" not in record
    assert record["id"] == 1
    assert record["external-id"] == "INV-0010"


# ------------------------------------------------------------------------------------------ other collections
def test_the_other_collections_take_queries(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.add_integration("OTHER")
    assert [i["code"] for i in api.get(INTEGRATIONS, params={"code": "OTHER"}).json()] == ["OTHER"]
    run = api.post(RUNS, json={"integration": {"code": "OTHER"}}).json()
    api.put(f"{RUNS}/{run['id']}/run")
    api.post(RUNS, json={"integration": {"code": CODE}})
    assert [r["id"] for r in api.get(RUNS, params={"status": "running"}).json()] == [run["id"]]
    assert [r["id"] for r in api.get(RUNS, params={"integration[code]": "OTHER"}).json()] == [run["id"]]
    api.post(ERRORS, json={"contact-alert-type": "Technical", "integration-run": {"id": run["id"]}})
    found = api.get(ERRORS, params={"integration-run[id]": str(run["id"])}).json()
    assert len(found) == 1
    assert api.get(ERRORS, params={"integration-run[id]": "999"}).json() == []
