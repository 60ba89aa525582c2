"""Trouble on demand: the faults the emulator can put between a client and its records.

Everything here is decided from a seeded random generator, so a failing reliability test replays exactly when
run again with the same seed and the same order of requests. The rate limit is not here: the emulator uses the
client's own :class:`~airflow_provider_coupa_ihr.client.limiter.TokenBucket`, refusing where the client books.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from airflow_provider_coupa_ihr.client.values import finite_number, whole_number
from airflow_provider_coupa_ihr.testing.rendering import quoted

__all__ = ["Fault", "FaultKind", "FaultPlan", "Verdict", "retry_after_header"]

FaultKind = Literal["status", "drop_before", "drop_after", "latency", "storm"]
FAULT_KINDS: tuple[str, ...] = ("status", "drop_before", "drop_after", "latency", "storm")


@dataclass
class Fault:
    """One kind of trouble, applied to each matching API request with probability ``rate``.

    - ``status``: answer ``status`` (e.g. 500, 503) without acting.
    - ``storm``: answer 429, with ``Retry-After: retry_after`` when that is set (a 429 storm; pair with ``count``).
    - ``drop_before``: close the connection before acting: nothing changed, the client sees a dropped connection.
    - ``drop_after``: act (the record is stored), then close the connection without answering, so the client
      cannot tell whether its create landed.
    - ``latency``: wait ``seconds`` before acting (beyond a client's read timeout, the client gives up while the
      server still acts: another "did it land?" case).

    ``count`` bounds how many requests the fault hits (``None``: no bound); ``methods`` and ``path_contains``
    narrow the requests it applies to (e.g. only ``POST``, only ``/integration_history_records``).
    """

    kind: FaultKind
    rate: float = 1.0
    status: int = 503
    seconds: float = 0.0
    retry_after: float | str | None = None
    count: int | None = None
    methods: tuple[str, ...] | None = None
    path_contains: str | None = None

    def __post_init__(self) -> None:
        """Refuse settings the server could not act on later (a fault arrives over HTTP as plain JSON too)."""
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {quoted(self.kind)}; known: {', '.join(FAULT_KINDS)}")
        rate = finite_number(self.rate)
        if rate is None or not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be a number from 0 to 1, got {quoted(self.rate)}")
        if whole_number(self.status, minimum=100, maximum=599) is None:
            raise ValueError(f"fault status must be an HTTP status from 100 to 599, got {quoted(self.status)}")
        seconds = finite_number(self.seconds)
        if seconds is None or seconds < 0:
            raise ValueError(f"fault seconds must be a number from 0, got {quoted(self.seconds)}")
        if self.retry_after is not None and not isinstance(self.retry_after, str):
            retry_after = finite_number(self.retry_after)
            if retry_after is None or retry_after < 0:
                raise ValueError(f"fault retry_after must be seconds or an HTTP date, got {quoted(self.retry_after)}")
        if self.count is not None and whole_number(self.count, minimum=0) is None:
            raise ValueError(f"fault count must be a whole number from 0, got {quoted(self.count)}")
        if self.path_contains is not None and not isinstance(self.path_contains, str):
            raise ValueError(f"fault path_contains must be text, got {quoted(self.path_contains)}")
        if self.methods is not None:
            if isinstance(self.methods, str) or not all(isinstance(m, str) for m in self.methods):
                raise ValueError(f"fault methods must be a list of HTTP methods, got {quoted(self.methods)}")
            self.methods = tuple(m.upper() for m in self.methods)
        self.rate, self.seconds = rate, seconds

    def applies_to(self, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.path_contains is None or self.path_contains in path

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("methods"), list):
            values["methods"] = tuple(values["methods"])
        return cls(**values)


@dataclass(frozen=True)
class Verdict:
    """What the emulator does to one request: how long to stall, then answer, drop or act normally."""

    delay: float = 0.0
    status: int | None = None
    retry_after: float | str | None = None
    drop_before: bool = False
    drop_after: bool = False


@dataclass
class FaultPlan:
    """The faults in force. Thread-safe; change it while the emulator runs (from Python or over HTTP)."""

    seed: int = 0
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def replace(self, faults: Iterable[Fault]) -> None:
        with self._lock:
            self.faults = list(faults)

    def clear(self, *, seed: int | None = None) -> None:
        """Remove every fault; with ``seed``, also restart the random sequence (to replay a run)."""
        with self._lock:
            self.faults = []
            if seed is not None:
                self.seed = seed
                self._random = random.Random(seed)

    # Shorthands that read like the sentence a test wants to say.
    def error_rate(self, status: int, rate: float, **narrow: Any) -> Fault:
        return self.add(Fault("status", rate=rate, status=status, **narrow))

    def storm(self, count: int, *, retry_after: float | str | None = None, **narrow: Any) -> Fault:
        return self.add(Fault("storm", count=count, status=429, retry_after=retry_after, **narrow))

    def latency(self, seconds: float, rate: float = 1.0, **narrow: Any) -> Fault:
        return self.add(Fault("latency", rate=rate, seconds=seconds, **narrow))

    def drop(self, *, after_acting: bool, rate: float = 1.0, **narrow: Any) -> Fault:
        return self.add(Fault("drop_after" if after_acting else "drop_before", rate=rate, **narrow))

    def verdict(self, method: str, path: str) -> Verdict:
        """Decide the fate of one request. Each matching fault draws once, in order, from the seeded sequence."""
        delay = 0.0
        with self._lock:
            for fault in self.faults:
                if not fault.applies_to(method, path) or self._random.random() >= fault.rate:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                if fault.kind == "latency":
                    delay += fault.seconds
                    continue
                if fault.kind == "storm":
                    return Verdict(delay, status=429, retry_after=fault.retry_after)
                if fault.kind == "status":
                    return Verdict(delay, status=fault.status, retry_after=fault.retry_after)
                return Verdict(delay, drop_before=fault.kind == "drop_before", drop_after=fault.kind == "drop_after")
        return Verdict(delay)


def retry_after_header(value: float | str | None) -> str | None:
    """``Retry-After`` as HTTP sends it: whole seconds (rounded up, at least 1) or an HTTP-date string as given."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return str(max(1, math.ceil(value)))
