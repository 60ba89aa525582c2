"""The plain values the client reads: whole numbers, Coupa ids, datetimes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.values import (
    MAX_ID,
    MAX_QUOTED_CHARS,
    finite_number,
    is_unicode,
    parse_id,
    parse_ids,
    quoted,
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


# ------------------------------------------------------------------------------------------------ hostile values
@pytest.mark.parametrize("text", ["²", "①", "٣", "\uff17", "1_000", "0x10", "1e3", "9" * 5000, "+" + "9" * 4301])
def test_digits_python_would_read_are_not_whole_numbers_coupa_reads(text: str) -> None:
    """``str.isdigit`` says yes to ``"²"`` and ``"①"``; Rails' ``\\d`` (ASCII) and ``int()``'s digit limit say no."""
    assert whole_number(text, text=True) is None
    with pytest.raises(CoupaValidationError):
        parse_id(text, "record_id")
    with pytest.raises(CoupaValidationError):
        parse_ids([text])


def test_finite_number_of_an_int_past_a_float_is_none_not_an_overflow() -> None:
    assert finite_number(10**400) is None


@pytest.mark.parametrize("value", ["", "  ", ",", " , ;", "[,]", "''", "[' ', ',']"])
def test_ids_rendered_to_blank_text_are_refused(value: str) -> None:
    with pytest.raises(CoupaValidationError) as refused:
        parse_ids(value)
    assert "holds no id" in str(refused.value)
    assert "pass an empty list, [], to mean no ids on purpose" in str(refused.value)


@pytest.mark.parametrize("value", [[], (), set(), "[]", "()", " [ ] "])
def test_an_explicit_empty_list_still_means_no_ids(value: Any) -> None:
    assert parse_ids(value) == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("['7', '8']", (7, 8)), ('["7", "8"]', (7, 8)), ("'7'", (7,)), ("('7', 8, '7')", (7, 8))],
)
def test_quoted_items_of_a_rendered_list_are_read(value: str, expected: tuple[int, ...]) -> None:
    assert parse_ids(value) == expected


def test_a_bad_item_is_named_without_its_quotes() -> None:
    with pytest.raises(CoupaValidationError) as refused:
        parse_ids("[17, 'x']")
    assert refused.value.problems == ["record_ids: 'x' is not a Coupa record id (a whole number from 1)"]


def test_quoted_cuts_a_long_value_and_says_how_long_it_was() -> None:
    assert quoted("short") == "'short'"
    text = quoted("x" * 10_000)
    assert text.startswith("'" + "x" * 10)
    assert text.endswith("(10000 characters)")
    assert len(text) < MAX_QUOTED_CHARS + 40
    assert len(quoted(list(range(10_000)))) < MAX_QUOTED_CHARS + 80
    assert quoted(10**5000) == "a whole number of about 5000 digits"  # repr() itself would raise


def test_quoted_survives_a_repr_that_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    assert quoted(Hostile()) == "<Hostile>"


@pytest.mark.parametrize("value", [10_000 * "y", "9" * 5000, list(range(5000))])
def test_every_id_error_quotes_a_couple_of_hundred_characters_at_most(value: Any) -> None:
    for call in (lambda: parse_id(value, "record_id"), lambda: parse_ids([value]), lambda: parse_ids(value)):
        with pytest.raises(CoupaValidationError) as refused:
            call()
        assert len(str(refused.value)) < 600


def test_is_unicode() -> None:
    assert is_unicode("é①")
    assert not is_unicode("a\ud800b")
