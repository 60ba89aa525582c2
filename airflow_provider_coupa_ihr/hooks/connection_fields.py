"""The ``coupa`` connection: its form fields, and how a stored connection becomes a :class:`ClientConfig`.

One list of fields feeds both forms Airflow knows: the declarative ``conn-fields`` that Airflow 3.2+ reads from
the provider info without importing the hook, and the WTForms widgets that 2.11 to 3.1 ask the hook for.
Nothing here imports Airflow, so provider discovery stays cheap and the parsing is tested as plain Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.config import ClientConfig
    from airflow_provider_coupa_ihr.client.shared_limiter import RedisSettings

__all__ = [
    "CONN_FIELDS",
    "CONN_TYPE",
    "UI_BEHAVIOUR",
    "config_from_connection",
    "conn_fields_info",
    "parse_extra",
    "read_extra",
]

CONN_TYPE = "coupa"


@dataclass(frozen=True)
class ConnField:
    name: str
    label: str
    kind: Literal["string", "number", "integer", "boolean"]
    description: str
    default: Any = None
    secret: bool = False


CONN_FIELDS: tuple[ConnField, ...] = (
    ConnField(
        "scopes",
        "OAuth scopes",
        "string",
        "Space-separated. Reads need core.integration.read, writes core.integration.write.",
        "core.integration.read core.integration.write",
    ),
    # No default in the form: Airflow 3 hides the value of any extra whose name contains "token" (or "proxy"),
    # so a default here reached Airflow 3.3's add form as "***" and was saved as the token path. Empty means
    # the client's default.
    ConnField(
        "token_path",
        "Token path",
        "string",
        "Path of Coupa's OAuth2 token endpoint on the instance. Empty: /oauth2/token (Coupa's Swagger names "
        "/oauth2/access_tokens).",
    ),
    ConnField(
        "api_key",
        "Legacy API key",
        "string",
        "X-COUPA-API-KEY for instances older than R35, instead of OAuth. Leave empty to use OAuth.",
        secret=True,
    ),
    ConnField("connect_timeout", "Connect timeout (s)", "number", "Seconds to wait for a connection.", 10),
    ConnField("read_timeout", "Read timeout (s)", "number", "Seconds to wait for an answer.", 60),
    ConnField(
        "rate_limit",
        "Rate limit (requests/s)",
        "number",
        "Requests per second per worker process; Coupa allows 25. 0 turns the client's limiter off.",
        25,
    ),
    ConnField("burst", "Burst", "integer", "Requests allowed at once before the rate limit applies (Coupa: 20).", 20),
    ConnField(
        "rate_limit_redis_conn_id",
        "Shared budget: Redis connection",
        "string",
        "Id of a redis connection: every worker, triggerer and host using this Coupa connection then shares one "
        "budget of rate_limit/burst kept there (needs the [redis] extra). Empty: each process has its own.",
    ),
    ConnField(
        "rate_limit_budget",
        "Shared budget name",
        "string",
        "Share the budget under this name, e.g. with other integrations of the same Coupa instance. Empty: the "
        "instance's own budget.",
    ),
    ConnField(
        "rate_limit_fallback",
        "Fallback rate (requests/s)",
        "number",
        "This process's rate while the shared budget's Redis cannot be reached. Empty: a quarter of rate_limit "
        "(the static division for a 3-slot pool and one triggerer).",
    ),
    ConnField("max_attempts", "Attempts per call", "integer", "Tries per call on 429, 5xx and timeouts.", 6),
    ConnField(
        "verify",
        "Verify TLS",
        "string",
        "true, false, or the path of a CA bundle file (for TLS-inspecting proxies).",
        "true",
    ),
    ConnField("proxy", "HTTPS proxy", "string", "Proxy URL such as http://proxy.example.com:3128, if one is needed."),
    ConnField(
        "extra_document_types",
        "Extra document types",
        "string",
        "Comma-separated document types newer than Coupa R39 to accept on purpose.",
    ),
)

#: How the standard fields show for a ``coupa`` connection (Airflow's ui-field-behaviour).
UI_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["port", "schema"],
    "relabeling": {"host": "Coupa instance URL", "login": "OAuth client ID", "password": "OAuth client secret"},
    "placeholders": {
        "host": "https://acme.coupahost.com",
        "login": "OAuth2 client identifier from Coupa",
        "password": "OAuth2 client secret",
        "extra": '{"scopes": "core.integration.read core.integration.write"}',
    },
}


def conn_fields_info() -> dict[str, Any]:
    """``conn-fields`` for the provider info (Airflow 3.2+ renders these without importing the hook)."""
    out: dict[str, Any] = {}
    for f in CONN_FIELDS:
        schema: dict[str, Any] = {"type": [f.kind, "null"]}
        if f.default is not None:
            schema["default"] = f.default
        if f.secret:
            schema["format"] = "password"
        out[f.name] = {"label": f.label, "description": f.description, "schema": schema}
    return out


def read_extra(extra: Mapping[str, Any], name: str) -> Any:
    """An extra by its bare name, or as the older forms store it (``extra__coupa__<name>``); blanks are absent."""
    for key in (name, f"extra__{CONN_TYPE}__{name}"):
        value = extra.get(key)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    return None


def parse_extra(conn_id: str, raw: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    """A connection's extra as a mapping, from the raw JSON text Airflow stores (or a mapping already parsed).

    Parsed here rather than through ``extra_dejson``, which masks synchronously and can deadlock inside a
    triggerer's event loop. Blank means no extras.
    """
    from airflow_provider_coupa_ihr.client.errors import CoupaConfigError

    if raw is None:
        return {}
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise CoupaConfigError(f"Coupa connection {conn_id!r}: extra is not valid JSON") from None
    if not isinstance(value, Mapping):
        raise CoupaConfigError(f"Coupa connection {conn_id!r}: extra must be a JSON object, got {type(value).__name__}")
    return value


def config_from_connection(
    *,
    conn_id: str,
    host: str | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any] | str | None,
    port: int | None = None,
    schema: str | None = None,
    redis: RedisSettings | None = None,
) -> ClientConfig:
    """Read a connection's parts into a checked :class:`ClientConfig`; every problem names the field to fix.

    ``redis`` is where the Redis connection named by ``rate_limit_redis_conn_id`` points (the hook reads it).
    """
    from airflow_provider_coupa_ihr.client.config import ClientConfig
    from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
    from airflow_provider_coupa_ihr.client.retry import RetryPolicy
    from airflow_provider_coupa_ihr.client.values import quoted

    secret_names = {f.name for f in CONN_FIELDS if f.secret}

    def bad(field: str, message: str) -> CoupaConfigError:
        return CoupaConfigError(f"Coupa connection {conn_id!r}: {field} {message}")

    extra = parse_extra(conn_id, extra)
    known = {f.name for f in CONN_FIELDS} | {f"extra__{CONN_TYPE}__{f.name}" for f in CONN_FIELDS}
    unknown = sorted(k for k in extra if k not in known)
    if unknown:
        raise bad("extra", f"has unknown key(s) {quoted(unknown)}; known: {', '.join(f.name for f in CONN_FIELDS)}")

    def number(name: str, *, whole: bool = False, allow_zero: bool = False) -> Any:
        value = read_extra(extra, name)
        if value is None:
            return None
        try:
            parsed = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError, OverflowError):
            raise bad(name, f"must be a number, got {quoted(value)}") from None
        too_small = parsed < 0 or (parsed == 0 and not allow_zero)
        if not math.isfinite(parsed) or too_small or (whole and parsed != int(parsed)):
            kind = "whole number" if whole else "number"
            raise bad(name, f"must be a positive {kind}, got {quoted(value)}")
        return int(parsed) if whole else parsed

    def text(name: str) -> str | None:
        value = read_extra(extra, name)
        if value is not None and not isinstance(value, str):
            # A secret's value is never quoted, not even when it is a number typed without quotes in the JSON.
            shown = "(its value is not shown: it is a secret)" if name in secret_names else quoted(value)
            raise bad(name, f"must be text, got {type(value).__name__} {shown}")
        return value.strip() if isinstance(value, str) else None

    kwargs: dict[str, Any] = {}
    if port:
        raise bad("port", "is not used: put the full instance URL (with any port) in host")
    if schema:
        raise bad("schema", "is not used: put the full instance URL in host")
    scopes = read_extra(extra, "scopes")
    if scopes is not None:
        if isinstance(scopes, str):
            scopes = scopes.replace(",", " ").split()
        if not isinstance(scopes, (list, tuple)) or not scopes or not all(isinstance(s, str) for s in scopes):
            raise bad("scopes", f"must be space-separated scope names, got {quoted(scopes)}")
        kwargs["scopes"] = tuple(scopes)
    for name in ("token_path", "api_key"):
        if (value := text(name)) is not None:
            kwargs[name] = value
    for name in ("connect_timeout", "read_timeout"):
        if (value := number(name)) is not None:
            kwargs[name] = value
    rate = number("rate_limit", allow_zero=True)
    if rate is not None:
        kwargs["rate_limit"] = rate or None
    if (burst := number("burst", whole=True)) is not None:
        kwargs["burst"] = burst
    if (redis_conn_id := text("rate_limit_redis_conn_id")) is not None:
        from airflow_provider_coupa_ihr.client.shared_limiter import SharedBudget

        if redis is None:
            raise bad("rate_limit_redis_conn_id", f"names {quoted(redis_conn_id)}, which was not read")
        kwargs["shared_budget"] = SharedBudget(
            redis, name=text("rate_limit_budget"), fallback_rate=number("rate_limit_fallback")
        )
    if (attempts := number("max_attempts", whole=True)) is not None:
        kwargs["retry"] = RetryPolicy(max_attempts=attempts)
    verify = read_extra(extra, "verify")
    if verify is not None:
        if isinstance(verify, str) and verify.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            verify = verify.strip().lower() in ("true", "yes", "1")
        if not isinstance(verify, (bool, str)):
            raise bad("verify", f"must be true, false or a CA bundle path, got {quoted(verify)}")
        kwargs["verify"] = verify
    if (proxy := text("proxy")) is not None:
        if "://" not in proxy:
            # Not quoted: a proxy written without its scheme may still carry its user and password.
            raise bad("proxy", "must be a URL such as http://proxy:3128 (the value given has no scheme)")
        kwargs["proxies"] = {"https": proxy, "http": proxy}
    types = read_extra(extra, "extra_document_types")
    if types is not None:
        if isinstance(types, str):
            types = [t.strip() for t in types.split(",") if t.strip()]
        if not isinstance(types, (list, tuple)) or not all(isinstance(t, str) for t in types):
            raise bad("extra_document_types", f"must be a comma-separated list of names, got {quoted(types)}")
        kwargs["extra_document_types"] = tuple(types)
    try:
        return ClientConfig(base_url=host or "", client_id=login or None, client_secret=password or None, **kwargs)
    except CoupaConfigError as exc:
        detail = exc.messages[0] if exc.messages else str(exc)
        raise CoupaConfigError(f"Coupa connection {conn_id!r}: {detail}") from None


def redis_settings(
    *, conn_id: str, host: str | None, port: int | None, login: str | None, password: str | None, extra: Any
) -> RedisSettings:
    """A ``redis`` connection (host, port, login, password; extras ``db``, ``ssl``, ``ssl_cert_reqs``,
    ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, as Airflow's Redis provider reads them) as
    :class:`~airflow_provider_coupa_ihr.client.shared_limiter.RedisSettings` for the shared rate budget."""
    from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
    from airflow_provider_coupa_ihr.client.shared_limiter import RedisSettings

    values = parse_extra(conn_id, extra)
    ssl = values.get("ssl", False)
    if isinstance(ssl, str):
        ssl = ssl.strip().lower() in ("true", "yes", "1")
    try:
        return RedisSettings(
            host=host or "127.0.0.1",
            port=int(port or 6379),
            db=int(values.get("db") or 0),
            username=login or None,
            password=password or None,
            ssl=bool(ssl),
            ssl_cert_reqs=str(values.get("ssl_cert_reqs") or "required"),
            ssl_ca_certs=values.get("ssl_ca_certs"),
            ssl_certfile=values.get("ssl_certfile"),
            ssl_keyfile=values.get("ssl_keyfile"),
        )
    except (TypeError, ValueError) as exc:
        raise CoupaConfigError(f"Redis connection {conn_id!r}: {type(exc).__name__} in its settings") from None
