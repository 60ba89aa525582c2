"""Shared pieces of the reliability suite: fast retry settings, a client on the emulator, request-rate numbers."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.retry import RetryPolicy
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import CoupaEmulator

#: Retries that ride out a dense fault mix in seconds, not minutes: tiny backoff, many attempts, Retry-After
#: honoured up to a few seconds, no settling wait for new tokens.
FAST_RETRY = RetryPolicy(
    max_attempts=16, max_elapsed=60.0, backoff_base=0.01, backoff_cap=0.1, max_retry_after=5.0, token_settle=0.0
)


def fast_client(coupa: CoupaEmulator, **settings: Any) -> CoupaClient:
    """A CoupaClient on ``coupa`` with its own token cache, no client-side throttle and :data:`FAST_RETRY`."""
    settings = {"rate_limit": None, "retry": FAST_RETRY, **settings}
    if "api_key" not in settings:
        settings.setdefault("client_id", coupa.credentials.client_id)
        settings.setdefault("client_secret", coupa.credentials.client_secret)
    return CoupaClient(ClientConfig(coupa.url, **settings), token_cache=TokenCache())


def api_requests(coupa: CoupaEmulator) -> list[Any]:
    """Requests the emulator saw under ``/api`` (token and admin requests excluded)."""
    return [r for r in coupa.requests() if r.path.startswith("/api")]


def peak_per_window(timestamps: Iterable[float], window: float = 1.0) -> int:
    """The most requests inside any ``window``-second interval (sliding, not aligned to clock seconds)."""
    times = sorted(timestamps)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_second(timestamps: Iterable[float]) -> dict[int, int]:
    """Requests per whole clock second (epoch seconds -> count)."""
    return dict(sorted(collections.Counter(int(t) for t in timestamps).items()))
