"""Paging: the page plan (limits, offsets, when to stop) and the Walk over a query (keyset by id, offset
otherwise). No I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaError, CoupaValidationError
from airflow_provider_coupa_ihr.client.paging import MATCHING_HINT, MAX_MATCHING_RECORDS, Pager, Walk
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


# ------------------------------------------------------------------------------------------------------ Walk ends
# A server (or a proxy before it) that ignores the paging parameters must end the walk with a CoupaError naming
# the cause, at the first page that shows it: else the walk loops forever or skips records silently.
def take_all(walk: Walk, pages: tuple[Any, ...]) -> None:
    for answered in pages:
        assert walk.next_operation() is not None
        walk.take(answered)


def refusal(walk: Walk, *pages: Any) -> str:
    with pytest.raises(CoupaError) as refused:
        take_all(walk, pages)
    assert not isinstance(refused.value, CoupaValidationError)
    assert refused.value.path == "/api/integration_history_records"
    return str(refused.value)


def test_a_key_walk_whose_next_page_does_not_advance_ends() -> None:
    text = refusal(Walk(RECORDS_PATH), page(1, 50), page(1, 50))
    assert "did not advance" in text
    assert "starts at id 1, not after the last id seen (50)" in text
    assert "id[gt]" in text


def test_a_descending_key_walk_whose_next_page_does_not_advance_ends() -> None:
    text = refusal(Walk(RECORDS_PATH, direction="desc"), page(100, 50, step=-1), page(100, 50, step=-1))
    assert "not before the last id seen (51)" in text
    assert "id[lt]" in text


def test_a_key_walk_from_an_id_filter_must_start_past_it() -> None:
    assert "did not advance" in refusal(Walk(RECORDS_PATH, {"id[gt]": 500}), page(1, 50))


@pytest.mark.parametrize(
    ("direction", "answered", "fragment"),
    [
        ("asc", [{"id": 1}] * 50, "ids came back repeated: id 1 after id 1"),
        ("asc", page(100, 50, step=-1), "ids came back out of order: id 99 after id 100"),
        ("asc", [*page(1, 25), *page(10, 25)], "out of order: id 10 after id 25"),
        ("desc", page(1, 50), "out of order: id 2 after id 1 in a walk ordered by id descending"),
    ],
)
def test_ids_repeated_or_out_of_order_end_the_walk(direction: str, answered: Any, fragment: str) -> None:
    assert fragment in refusal(Walk(RECORDS_PATH, direction=direction), answered)


def test_a_short_last_page_is_checked_too() -> None:
    assert "out of order" in refusal(Walk(RECORDS_PATH), page(1, 50), [{"id": 60}, {"id": 55}])


def test_an_offset_walk_whose_server_ignores_offset_ends_at_the_repeated_page() -> None:
    text = refusal(Walk(RECORDS_PATH, order_by="document_id"), page(1, 50), page(51, 50), page(51, 50))
    assert "the page at offset 100 is the page before it again" in text
    assert "ignores the offset" in text


def test_an_offset_walk_compares_whole_records_when_they_carry_no_id() -> None:
    same = [{"document_id": i} for i in range(50)]
    walk = Walk(RECORDS_PATH, order_by="document_id", fields=["document_id"])
    assert "ignores the offset" in refusal(walk, same, same)


def test_an_offset_walk_lets_pages_overlap_and_a_short_page_end_it() -> None:
    walk = Walk(RECORDS_PATH, order_by="updated_at")
    walk.take(page(1, 50))
    walk.take([*page(40, 10), *page(60, 40)])  # records moved between requests: overlap is not a repeat
    assert walk.take(page(1, 3)) == page(1, 3)
    assert walk.done


@pytest.mark.parametrize(
    ("answered", "fragment"),
    [
        ({"id": 1}, "is not a page of records"),
        ("<html>", "is not a page of records"),
        ([1, 2], "not a record"),
        ([{"status": "x"}], "with no id"),
        ([{"id": "seven"}], "not a Coupa id"),
        ([{"id": 2**63}], "not a Coupa id"),
        ([{"id": 0}], "not a Coupa id"),
        ([{"id": True}], "not a Coupa id"),
    ],
)
def test_a_malformed_page_is_a_coupa_error_not_a_type_error(answered: Any, fragment: str) -> None:
    with pytest.raises(CoupaError) as refused:
        Walk(RECORDS_PATH).take(answered)
    assert fragment in str(refused.value)


def test_ids_as_digit_text_are_read_as_ids() -> None:
    walk = Walk(RECORDS_PATH)
    walk.take([{"id": str(i)} for i in range(1, 51)])
    assert walk.last_id == 50


def test_a_walk_refusing_beyond_a_count_fetches_one_more_and_ends_with_the_hint() -> None:
    walk = Walk(RECORDS_PATH)
    walk.refuse_beyond(120, hint="Nothing was changed.")
    walk.take(page(1, 50))
    walk.take(page(51, 50))
    op = walk.next_operation()
    assert op is not None
    assert ("limit", "21") in op.params  # 120 and one more, to tell
    with pytest.raises(CoupaError) as refused:
        walk.take(page(101, 21))
    assert "more than 120 records match" in str(refused.value)
    assert "Nothing was changed." in str(refused.value)


def test_a_walk_refusing_beyond_a_count_returns_that_many() -> None:
    walk = Walk(RECORDS_PATH)
    walk.refuse_beyond(MAX_MATCHING_RECORDS)
    assert len(walk.take(page(1, 50))) + len(walk.take(page(51, 7))) == 57
    assert walk.done
    assert "10,000" in MATCHING_HINT
    assert "max_records" in MATCHING_HINT


@pytest.mark.parametrize("filters", ["status=Error", '{"status": "Error"}', 42, ["status"]])
def test_filters_that_are_not_a_mapping_are_refused_before_anything_else(filters: Any) -> None:
    assert any("must be a mapping" in p for p in problems_of(Walk, RECORDS_PATH, filters))
