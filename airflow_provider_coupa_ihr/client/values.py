"""How the client reads the plain values people hand it (whole numbers, Coupa ids, datetimes), and the clocks.

Every module that checks a count, parses a record id or renders a datetime for Coupa calls these, so a newcomer
who wants to change what counts as an id finds one function, and the sync client, the async client, the
operators and the emulator all agree on it.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from typing import Any

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "LOOKBACK_SECONDS",
    "MAX_ID",
    "MAX_QUOTED_CHARS",
    "finite_number",
    "is_unicode",
    "parse_id",
    "parse_ids",
    "quoted",
    "render_datetime",
    "render_epoch",
    "whole_number",
]

#: Coupa's ids are database bigints: anything larger cannot name a record, and would overflow on the way.
MAX_ID = 2**63 - 1

#: How far the Airflow worker's clock and Coupa's may disagree: every "since when" compared with a time Coupa
#: stamped (a retry looking for what an earlier try wrote, a wait returning what was resolved since it began)
#: starts this many seconds early. A record found a minute early is better than one lost.
CLOCK_SKEW_SECONDS = 60
#: How far back (seconds, on Coupa's clock) to look for a create whose answer was lost: generous, because the
#: two clocks may disagree; an identical record from earlier in the window would be taken for ours, which at
#: worst means one record where a blind re-send would have made two identical ones.
LOOKBACK_SECONDS = 600

#: An error message quotes at most this many characters of a bad value: enough to recognise it, and a 5 MB
#: string handed over by mistake cannot become a 5 MB exception (and log line, and e-mail).
MAX_QUOTED_CHARS = 200

_SPLIT = re.compile(r"[\s,;]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def quoted(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with the full length said.

    The one way a bad value is quoted (payloads, queries, ids, runs, settings), so no message can grow with
    its input. Strings are cut before ``repr``, so a huge one costs nothing to quote.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    if isinstance(value, int) and value.bit_length() > 3 * limit:  # repr would be long, or past int()'s limit
        return f"a whole number of about {int(value.bit_length() * math.log10(2))} digits"
    try:
        text = repr(value)
    except Exception:  # a repr that fails is no reason to lose the message it was quoted in
        return f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({type(value).__name__}, {len(text)} characters shown as text)"


def whole_number(
    value: Any, *, minimum: int | None = None, maximum: int | None = None, text: bool = False
) -> int | None:
    """``value`` as an int if it is a whole number within the bounds, else None. Never a bool.

    ``text=True`` also takes a string of one (``"7"``, ``" +7 "``), which is what Rails'
    ``numericality: {only_integer: true}`` accepts and what a rendered template hands over: ASCII digits only,
    as Ruby's ``\\d`` (so ``"²"``, ``"①"`` or a full-width seven are not numbers, though ``str.isdigit`` says they are).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif text and isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        try:
            number = int(value)
        except ValueError:  # past int()'s digit limit (4300): beyond any id or count Coupa keeps
            return None
    else:
        return None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        return None
    return number


def is_unicode(text: str) -> bool:
    """Whether ``text`` is Unicode that can go on the wire: no lone surrogate (``"\\ud800"``), which Python strings
    may hold, JSON can spell, and UTF-8 cannot encode (httpx and requests would raise ``UnicodeEncodeError``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def finite_number(value: Any) -> float | None:
    """``value`` as a float if it is a finite int or float (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past a float's range
        return None
    return number if math.isfinite(number) else None


def parse_id(value: Any, what: str) -> int:
    """One Coupa id (a whole number from 1 to :data:`MAX_ID`, as an int or numeric text); ``what`` names it in
    the error."""
    number = whole_number(value, minimum=1, maximum=MAX_ID, text=True)
    if number is None:
        from airflow_provider_coupa_ihr.client.errors import CoupaValidationError

        raise CoupaValidationError([f"{what} must be a Coupa id (a whole number from 1), got {quoted(value)}"])
    return number


def parse_ids(value: Any, what: str = "record_ids") -> tuple[int, ...]:
    """Record ids from what a DAG author (or a rendered template) hands over, in order, without repeats.

    Accepts an int, a list/tuple/set of ints or numeric strings, or text such as ``"7"``, ``"7, 8"``, ``"[7, 8]"``
    or ``"['7', '8']"`` (quotes around an item are dropped): a Jinja template renders a list pulled from XCom as
    that text unless the DAG renders native objects. An explicit empty list (``[]``, or the text ``"[]"``) means
    no ids; text with no id at all (``""``, ``","``) is refused, because that is a template that rendered to
    nothing, not a choice. Every bad item is named in one :class:`~.errors.CoupaValidationError`, before any
    request.
    """
    from airflow_provider_coupa_ihr.client.errors import CoupaValidationError

    if isinstance(value, bool):
        raise CoupaValidationError([f"{what}: expected record ids, got {value!r}"])
    items: list[Any]
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        inner = value.strip()
        bracketed = inner[:1] + inner[-1:] in ("[]", "()")
        inner = inner[1:-1] if bracketed else inner
        items = [t.strip("'\"") for t in _SPLIT.split(inner.strip()) if t.strip("'\"")]
        if not items and not (bracketed and not inner.strip()):
            raise CoupaValidationError(
                [
                    f"{what}: {quoted(value)} holds no id; a template that renders to blank text is refused "
                    "(pass an empty list, [], to mean no ids on purpose)"
                ]
            )
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, (set, frozenset)):
        items = sorted(value, key=str)
    else:
        raise CoupaValidationError([f"{what}: expected an id or a list of ids, got {quoted(value)}"])
    problems = [
        f"{what}: {quoted(item)} is not a Coupa record id (a whole number from 1)"
        for item in items
        if whole_number(item, minimum=1, maximum=MAX_ID, text=True) is None
    ]
    if problems:
        raise CoupaValidationError(problems)
    return tuple(dict.fromkeys(int(item) for item in items))


def render_datetime(value: Any) -> str | None:
    """A datetime as the ISO 8601 text Coupa reads, or None when ``value`` is not one (the caller says why).

    A *naive* datetime is taken as UTC, because Airflow's own datetimes are UTC and guessing the machine's
    local zone would shift windows by hours. A date stays a date. ISO 8601 text is checked (with pendulum, the
    same reading on every Python version) and passed on as written, so Coupa reads exactly what the user wrote.
    """
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        return text if _is_iso_datetime(text) else None
    return None


def render_epoch(epoch: float) -> str:
    """Epoch seconds as UTC ISO 8601 text to the second (``2026-01-01T00:00:00+00:00``), for lookback filters."""
    rendered = render_datetime(datetime.fromtimestamp(math.floor(epoch), tz=timezone.utc))
    assert rendered is not None
    return rendered


def _is_iso_datetime(text: str) -> bool:
    import pendulum

    if not text:
        return False
    if text[-1:] == "z":
        text = text[:-1] + "Z"
    try:
        parsed = pendulum.parse(text, exact=True)
    except (ValueError, TypeError, OverflowError):
        return False
    return isinstance(parsed, date)
