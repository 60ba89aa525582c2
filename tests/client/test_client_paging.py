"""Paging: the page plan (limits, offsets, when to stop) and the Walk over a query (keyset by id, offset
otherwise). No I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.paging import Pager, Walk
from airflow_provider_coupa_ihr.client.query import PAGE_SIZE
from airflow_provider_coupa_ihr.client.records import ERRORS_PATH, INTEGRATIONS_PATH, RECORDS_PATH, RUNS_PATH


def _refused(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(CoupaValidationError) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.status is None
    return info.value.problems


def problems_of(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(CoupaValidationError) as caught:
        call(*args, **kwargs)
    return caught.value.problems


# ------------------------------------------------------------------------------------------------------ Pager
def test_pager_walks_full_pages_until_a_short_one() -> None:
    pager = Pager()
    assert pager.params() == [("limit", "50"), ("offset", "0")]
    assert pager.next_offset(50) == 50
    assert pager.params() == [("limit", "50"), ("offset", "50")]
    assert pager.next_offset(50) == 100
    assert pager.next_offset(7) is None
    assert pager.done
    assert pager.received == 107
    assert pager.pages == 3
    assert pager.offset == 107
    assert repr(pager) == "Pager(offset=107, received=107, pages=3, max_records=None, done=True)"


def test_pager_empty_first_page_ends_the_walk() -> None:
    pager = Pager()
    assert pager.next_offset(0) is None
    assert pager.done
    assert pager.received == 0


def test_pager_full_last_page_costs_one_empty_request() -> None:
    pager = Pager(page_size=2)
    assert pager.next_offset(2) == 2
    assert pager.next_offset(0) is None


def test_pager_caps_at_max_records_and_asks_only_for_what_is_left() -> None:
    pager = Pager(max_records=120)
    assert pager.next_offset(50) == 50
    assert pager.next_offset(50) == 100
    assert pager.limit == 20
    assert pager.params() == [("limit", "20"), ("offset", "100")]
    assert pager.next_offset(20) is None
    assert pager.received == 120


def test_pager_max_records_smaller_than_a_page() -> None:
    pager = Pager(max_records=3)
    assert pager.params() == [("limit", "3"), ("offset", "0")]
    assert pager.next_offset(3) is None


def test_pager_zero_max_records_is_done_before_starting() -> None:
    pager = Pager(max_records=0)
    assert pager.done
    assert pager.limit == 0
    with pytest.raises(RuntimeError, match="the walk is over"):
        pager.params()


def test_pager_take_trims_pages_a_server_overfilled() -> None:
    pager = Pager(max_records=3)
    assert pager.take(["a", "b", "c", "d", "e"]) == ["a", "b", "c"]
    assert pager.done
    assert pager.received == 3
    assert pager.take(["f"]) == []
    assert pager.next_offset(5) is None


def test_pager_take_drives_a_whole_walk() -> None:
    rows = list(range(123))
    pager = Pager(page_size=PAGE_SIZE)
    seen: list[int] = []
    requests = 0
    while not pager.done:
        params = dict(pager.params())
        start, limit = int(params["offset"]), int(params["limit"])
        seen += pager.take(rows[start : start + limit])
        requests += 1
    assert seen == rows
    assert requests == 3


def test_pager_can_resume_from_an_offset() -> None:
    pager = Pager(offset=100, page_size=10)
    assert pager.params() == [("limit", "10"), ("offset", "100")]
    assert pager.next_offset(10) == 110


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"page_size": 0}, "page_size: must be a whole number from 1 to 50, got 0"),
        ({"page_size": 51}, "page_size: must be a whole number from 1 to 50"),
        ({"max_records": -1}, "max_records: must be a whole number from 0, got -1"),
        ({"offset": -5}, "offset: must be a whole number from 0, got -5"),
    ],
)
def test_pager_refuses_nonsense(kwargs: dict[str, Any], fragment: str) -> None:
    (problem,) = _refused(Pager, **kwargs)
    assert fragment in problem


@pytest.mark.parametrize("page_len", [-1, True, 2.0])
def test_pager_refuses_impossible_page_lengths(page_len: Any) -> None:
    with pytest.raises(ValueError, match="page_len must be a whole number from 0"):
        Pager().next_offset(page_len)


# ------------------------------------------------------------------------------------------------ Walk
def page(first: int, count: int, step: int = 1) -> list[dict[str, Any]]:
    return [{"id": first + i * step} for i in range(count)]


def test_walk_pages_by_key_from_offset_zero() -> None:
    walk = Walk(RECORDS_PATH, {"status": "Error"})
    first = walk.next_operation()
    assert first is not None
    assert first.params == (("status", "Error"), ("order_by", "id"), ("dir", "asc"), ("limit", "50"), ("offset", "0"))
    assert len(walk.take(page(1, 50))) == 50
    second = walk.next_operation()
    assert second is not None
    assert ("id[gt]", "50") in second.params
    assert ("offset", "0") in second.params
    assert walk.take(page(51, 3)) == page(51, 3)
    assert walk.done
    assert walk.next_operation() is None


def test_walk_descending_by_key_uses_id_lt() -> None:
    walk = Walk(RECORDS_PATH, direction="desc")
    walk.take(page(100, 50, step=-1))
    op = walk.next_operation()
    assert op is not None
    assert ("id[lt]", "51") in op.params
    assert ("dir", "desc") in op.params


@pytest.mark.parametrize("direction", ["DESC", " desc "])
def test_walk_reads_the_direction_as_coupa_does(direction: str) -> None:
    walk = Walk(RECORDS_PATH, direction=direction)
    walk.take(page(100, 50, step=-1))
    op = walk.next_operation()
    assert op is not None
    assert ("dir", "desc") in op.params
    assert ("id[lt]", "51") in op.params


def test_walk_starts_after_an_id_gt_filter() -> None:
    walk = Walk(RECORDS_PATH, {"id[gt]": 500, "id[lt]": 900})
    op = walk.next_operation()
    assert op is not None
    assert ("id[gt]", "500") in op.params
    assert ("id[lt]", "900") in op.params  # an upper bound stays a plain filter
    assert [k for k, _ in op.params].count("id[gt]") == 1


def test_walk_keeps_id_in_a_trimmed_payload() -> None:
    walk = Walk(RECORDS_PATH, fields=["status"])
    op = walk.next_operation()
    assert op is not None
    assert json.loads(dict(op.params)["fields"]) == ["id", "status"]


def test_walk_by_another_order_pages_by_offset() -> None:
    walk = Walk(RECORDS_PATH, order_by="updated_at", direction="desc")
    op = walk.next_operation()
    assert op is not None
    assert ("order_by", "updated_at") in op.params
    walk.take(page(1, 50))
    op = walk.next_operation()
    assert op is not None
    assert ("offset", "50") in op.params
    assert not any(k.startswith("id[") for k, _ in op.params)


def test_walk_asks_only_for_what_max_records_leaves() -> None:
    walk = Walk(RECORDS_PATH, max_records=60)
    walk.take(page(1, 50))
    op = walk.next_operation()
    assert op is not None
    assert ("limit", "10") in op.params
    walk.take(page(51, 10))
    assert walk.done
    assert Walk(RECORDS_PATH, max_records=0).next_operation() is None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"filters": {"status[like]": "x"}}, "unknown operator [like]"),
        ({"filters": {"stauts": "x"}}, "did you mean status"),
        ({"fields": ["nope"]}, "unknown field nope"),
        ({"order_by": "nope"}, "order_by: unknown field nope"),
        ({"direction": "sideways"}, "direction: must be asc or desc"),
        ({"max_records": -1}, "max_records: must be a whole number from 0"),
        ({"filters": {"id[gt]": "x"}}, "id[gt] must be a Coupa id"),
    ],
)
def test_walk_validates_everything_up_front(kwargs: dict[str, Any], fragment: str) -> None:
    problems = problems_of(Walk, RECORDS_PATH, **kwargs)
    assert any(fragment in p for p in problems), problems


def test_walk_works_for_every_resource() -> None:
    for path in (RECORDS_PATH, ERRORS_PATH, RUNS_PATH, INTEGRATIONS_PATH):
        op = Walk(path).next_operation()
        assert op is not None
        assert op.path == path
