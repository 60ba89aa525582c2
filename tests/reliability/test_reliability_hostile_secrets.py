"""The client against echoing proxies: no secret in any encoding, whatever a hostile server sends back.

The client secret, API key and tokens appear in no exception text, ``repr``, traceback or log line, in any encoding
(raw, ``quote``, ``quote_plus``, JSON ``\\u`` escapes, base64, ``repr`` escapes), sync and async; each test reports
its secret hits per encoding in the run's "reliability" section. The servers are in :mod:`hostile_servers`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hostile_servers import HostileServer, echo_token_form

from airflow_provider_coupa_ihr.client import AsyncCoupaClient, ClientConfig, CoupaClient, CoupaError, RetryPolicy

HERE = Path(__file__).resolve().parent
#: A secret with every character that encodings treat specially.
SECRET = "Sec+ret/@=&%é-" + "x7Q"
API_KEY = "Key+with/@=&%é-" + "z9"
NO_RETRY = RetryPolicy(max_attempts=1)


def encodings(secret: str) -> dict[str, str]:
    """Every spelling of ``secret`` a leak could take."""
    return {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "quote_keep_slash": quote(secret),
        "json": json.dumps(secret)[1:-1],
        "json_ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "repr": repr(secret)[1:-1],
        "base64": base64.b64encode(secret.encode()).decode(),
        "basic": base64.b64encode(f"client-id:{secret}".encode()).decode(),
        "latin1_utf8": secret.encode().decode("latin-1"),
    }


def hits(text: str, secrets: Iterable[str]) -> dict[str, int]:
    """Encoding name -> occurrences of any secret in ``text`` spelt that way."""
    found: dict[str, int] = {}
    for secret in secrets:
        for name, spelt in encodings(secret).items():
            count = text.count(spelt)
            if count:
                found[name] = found.get(name, 0) + count
    return found


def describe(error: BaseException) -> str:
    """Every text an error shows: str, repr, args, the formatted traceback with its chain."""
    return "\n".join(
        [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    )


# ------------------------------------------------------------------------------------------------ secrets
@pytest.mark.parametrize("status", [400, 401, 500, 502])
@pytest.mark.parametrize("kind", ["text", "json", "html"])
def test_token_endpoint_echo_leaks_no_secret_sync_or_async(
    status: int, kind: str, caplog: pytest.LogCaptureFixture, reliability_report: Callable[[str], None]
) -> None:
    config_kw = {"client_id": "client-id", "client_secret": SECRET, "retry": RetryPolicy(max_attempts=2,
                 backoff_base=0.0, backoff_cap=0.0)}
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    with HostileServer(echo_token_form(status, kind)) as server:
        config = ClientConfig(server.url, rate_limit=None, **config_kw)
        with CoupaClient(config) as client, pytest.raises(CoupaError) as sync_error:
            client.token()
        texts.append(describe(sync_error.value))

        async def run_async() -> None:
            async with AsyncCoupaClient(config) as aclient:
                await aclient.get_record(1)

        with pytest.raises(CoupaError) as async_error:
            asyncio.run(run_async())
        texts.append(describe(async_error.value))
        assert server.requests, "the hostile server was never reached"
    texts.append(caplog.text)
    found = hits("\n".join(texts), [SECRET])
    reliability_report(f"token endpoint {status} echoing {kind}: secret hits per encoding {found or 0}")
    assert not found, f"the client secret leaked: {found}"
