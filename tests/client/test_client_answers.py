"""What a successful answer must look like: a page is a list of objects, a record has a Coupa id; anything else is a
CoupaError saying what came back, never a KeyError, TypeError or ValueError from deep inside a walk or a wait."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.answers import answer_record, not_a_record, page_records, record_id
from airflow_provider_coupa_ihr.client.errors import CoupaError
from airflow_provider_coupa_ihr.client.values import MAX_ID

WHERE = "GET /api/integration_history_records"


def test_a_page_is_a_list_of_records() -> None:
    page = [{"id": 1}, {"id": 2}]
    assert page_records(page, WHERE) is page
    assert page_records(None) == []
    assert page_records([]) == []


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"id": 1}, "is not a page of records (a JSON list): it is a JSON object"),
        ("oops", "it is a JSON str ('oops')"),
        (7, "it is a JSON int (7)"),
        ([{"id": 1}, "two"], "holds a JSON str ('two') at position 1 of the page, not a record"),
        ([[{"id": 1}]], "holds a JSON list at position 0"),
    ],
)
def test_anything_else_where_a_page_belongs_is_a_coupa_error(answer: Any, words: str) -> None:
    with pytest.raises(CoupaError) as caught:
        page_records(answer, WHERE)
    assert type(caught.value) is CoupaError
    assert words in str(caught.value)
    assert f"answer to {WHERE}" in str(caught.value)
    assert "proxy" in (caught.value.hint or "")


@pytest.mark.parametrize("value", [1, "7", MAX_ID, " 42 "])
def test_a_record_id_is_a_coupa_id(value: Any) -> None:
    assert record_id({"id": value}) == int(value)


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({}, "with no id"),
        ({"id": None}, "with no id"),
        ({"id": 0}, "the id 0, not a Coupa id"),
        ({"id": -4}, "the id -4"),
        ({"id": MAX_ID + 1}, f"the id {MAX_ID + 1}"),
        ({"id": "²"}, "the id '²'"),
        ({"id": "①"}, "the id '①'"),
        ({"id": "9" * 5000}, "5000 characters"),
        ({"id": 1.5}, "the id 1.5"),
        ({"id": True}, "the id True"),
        ({"id": [1]}, "the id [1]"),
        ("7", "holds a JSON str ('7') where a record belongs"),
        (None, "holds nothing where a record belongs"),
    ],
)
def test_a_record_without_a_coupa_id_is_a_coupa_error(record: Any, words: str) -> None:
    with pytest.raises(CoupaError) as caught:
        record_id(record, WHERE)
    assert words in str(caught.value)
    assert len(str(caught.value)) < 600


def test_one_record_answers() -> None:
    assert answer_record({"id": 3, "status": "x"}) == {"id": 3, "status": "x"}
    with pytest.raises(CoupaError, match=r"is not a record \(a JSON object\): it is a JSON list"):
        answer_record([{"id": 3}])
    with pytest.raises(CoupaError, match="with no id"):
        answer_record({"status": "x"})
    assert "it is nothing" in str(not_a_record(None))
