"""The plain values the client reads: whole numbers, Coupa ids, datetimes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.values import (
    MAX_ID,
    finite_number,
    parse_id,
    parse_ids,
    render_datetime,
    render_epoch,
    whole_number,
)


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (7, {}, 7),
        (True, {}, None),
        (7.0, {}, None),
        ("7", {}, None),
        ("7", {"text": True}, 7),
        (" +7 ", {"text": True}, 7),
        ("-7", {"text": True}, -7),
        ("+-7", {"text": True}, None),
        ("", {"text": True}, None),
        ("7x", {"text": True}, None),
        (0, {"minimum": 1}, None),
        (51, {"maximum": 50}, None),
        ("9" * 5000, {"text": True, "maximum": MAX_ID}, None),  # past int()'s digit limit: not a number we keep
        ("9" * 5000, {"text": True}, None),
    ],
)
def test_whole_numbers(value: Any, kwargs: dict[str, Any], expected: int | None) -> None:
    assert whole_number(value, **kwargs) == expected


def test_finite_numbers() -> None:
    assert finite_number(2) == 2.0
    assert finite_number(2.5) == 2.5
    assert finite_number(float("inf")) is None
    assert finite_number(float("nan")) is None
    assert finite_number(True) is None
    assert finite_number("2") is None


def test_one_id_is_a_whole_number_from_one_up_to_a_bigint() -> None:
    assert parse_id("42", "record_id") == 42
    assert parse_id(MAX_ID, "record_id") == MAX_ID
    for bad in (0, -1, MAX_ID + 1, "x", None, True, 1.5):
        with pytest.raises(CoupaValidationError, match=r"record_id must be a Coupa id \(a whole number from 1\)"):
            parse_id(bad, "record_id")


def test_many_ids_name_every_bad_one_with_what_they_are() -> None:
    assert parse_ids("[7, 8, 7]") == (7, 8)
    with pytest.raises(CoupaValidationError) as refused:
        parse_ids(["x", MAX_ID + 1], "exclude")
    assert refused.value.problems == [
        "exclude: 'x' is not a Coupa record id (a whole number from 1)",
        f"exclude: {MAX_ID + 1} is not a Coupa record id (a whole number from 1)",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 1, 12, 0), "2026-01-01T12:00:00+00:00"),  # naive means UTC
        (datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-7))), "2026-01-01T12:00:00-07:00"),
        (date(2026, 1, 1), "2026-01-01"),
        (" 2024-03-25T18:38:00-07:00 ", "2024-03-25T18:38:00-07:00"),
        ("2024-03-25T18:38:00Z", "2024-03-25T18:38:00Z"),
        ("2024-03-25T18:38:00z", "2024-03-25T18:38:00z"),
        ("2024-03-25", "2024-03-25"),
        ("18:38", None),  # a time of day is not a moment
        ("2024-13-01", None),
        ("yesterday", None),
        ("", None),
        (1700000000, None),
        (None, None),
    ],
)
def test_datetimes_render_as_coupa_reads_them(value: Any, expected: str | None) -> None:
    assert render_datetime(value) == expected


def test_epoch_seconds_render_in_utc_to_the_second() -> None:
    assert render_epoch(1_767_225_600.9) == "2026-01-01T00:00:00+00:00"
