"""Waits in one triggerer share one HTTP pool per Coupa instance (client.aio), so each wait costs almost nothing.

A fresh ``httpx.AsyncClient`` costs ~40 ms of CPU and ~0.8 MB (its TLS context): paid per wait, 500 waits would
hold 400 MB. These tests pin the sharing and its bookkeeping (the last user closes the pool).
"""

from __future__ import annotations

import asyncio

import httpx

from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
from airflow_provider_coupa_ihr.client.config import ClientConfig

CONFIG = ClientConfig("https://acme.coupahost.com", "client", "secret")


def test_clients_in_one_loop_share_one_pool_and_the_last_one_closes_it():
    async def scenario() -> None:
        first, second = AsyncCoupaClient(CONFIG), AsyncCoupaClient(CONFIG)
        assert first.http is second.http
        await first.aclose()
        await first.aclose()  # twice is harmless and does not count twice
        assert not second.http.is_closed
        await second.aclose()
        assert second.http.is_closed
        third = AsyncCoupaClient(CONFIG)  # a new user after the last one left gets a new pool
        assert third.http is not second.http
        assert not third.http.is_closed
        await third.aclose()

    asyncio.run(scenario())


def test_other_instances_clients_and_transport_settings_get_their_own_pool():
    async def scenario() -> None:
        base = AsyncCoupaClient(CONFIG)
        others = [
            AsyncCoupaClient(ClientConfig("https://other.coupahost.com", "client", "secret")),
            AsyncCoupaClient(ClientConfig("https://acme.coupahost.com", "another", "secret")),
            AsyncCoupaClient(ClientConfig("https://acme.coupahost.com", "client", "secret", read_timeout=5)),
        ]
        assert all(o.http is not base.http for o in others)
        for client in [base, *others]:
            await client.aclose()

    asyncio.run(scenario())


def test_each_event_loop_has_its_own_pool():
    async def make() -> AsyncCoupaClient:
        return AsyncCoupaClient(CONFIG)

    async def close(client: AsyncCoupaClient) -> None:
        await client.aclose()

    loop_a, loop_b = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        a, b = loop_a.run_until_complete(make()), loop_b.run_until_complete(make())
        assert a.http is not b.http
        loop_a.run_until_complete(close(a))
        loop_b.run_until_complete(close(b))
    finally:
        loop_a.close()
        loop_b.close()


def test_outside_a_loop_or_with_a_given_client_nothing_is_shared():
    private, other = AsyncCoupaClient(CONFIG), AsyncCoupaClient(CONFIG)
    assert private.http is not other.http
    asyncio.run(private.aclose())
    asyncio.run(other.aclose())
    assert private.http.is_closed

    given = httpx.AsyncClient()
    borrowed = AsyncCoupaClient(CONFIG, client=given)
    asyncio.run(borrowed.aclose())
    assert not given.is_closed  # the caller's client stays the caller's to close
    asyncio.run(given.aclose())
