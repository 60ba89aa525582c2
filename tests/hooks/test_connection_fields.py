"""The ``coupa`` connection as plain Python: its form fields, and how a stored connection becomes a ClientConfig
(every problem named with the field to fix, extras read bare or ``extra__coupa__``-prefixed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
from airflow_provider_coupa_ihr.client.retry import RetryPolicy
from airflow_provider_coupa_ihr.hooks.connection_fields import (
    CONN_FIELDS,
    CONN_TYPE,
    UI_BEHAVIOUR,
    config_from_connection,
    conn_fields_info,
    read_extra,
)

HOST = "https://acme.coupahost.com"
SECRET = "conn-fields-secret-42"


def build(extra: Any = None, **parts: Any) -> Any:
    kwargs: dict[str, Any] = {"conn_id": "coupa_test", "host": HOST, "login": "cid", "password": SECRET, "extra": extra}
    kwargs.update(parts)
    return config_from_connection(**kwargs)


def refusal(extra: Any = None, **parts: Any) -> str:
    with pytest.raises(CoupaConfigError) as caught:
        build(extra, **parts)
    text = str(caught.value)
    assert "'coupa_test'" in text  # every message names the connection
    assert SECRET not in text
    return text


# ------------------------------------------------------------------------------------------------ the basics
def test_a_plain_connection() -> None:
    config = build()
    assert config.base_url == HOST
    assert (config.client_id, config.client_secret) == ("cid", SECRET)
    assert config.retry == RetryPolicy()
    assert config.rate_limit == 25


@pytest.mark.parametrize("extra", [None, "", "  ", {}, "{}"])
def test_no_extra_at_all(extra: Any) -> None:
    assert build(extra).scopes == ("core.integration.read", "core.integration.write")


def test_host_without_a_scheme_is_https() -> None:
    assert build(host="acme.coupahost.com").base_url == HOST


@pytest.mark.parametrize(
    ("parts", "fragment"),
    [
        ({"login": None, "password": None}, "credentials are missing"),
        ({"password": ""}, "credentials are missing"),
        ({"login": ""}, "credentials are missing"),
        ({"host": None}, "instance URL (connection host) is empty"),
        ({"host": "http://acme.coupahost.com"}, "https only"),
        ({"port": 443}, "port is not used: put the full instance URL (with any port) in host"),
        ({"schema": "https"}, "schema is not used"),
    ],
)
def test_connection_parts_refused(parts: dict[str, Any], fragment: str) -> None:
    assert fragment in refusal(**parts)


@pytest.mark.parametrize("host", ["http://127.0.0.1:8765", "http://localhost:8765", "https://10.1.2.3"])
def test_loopback_http_and_any_https_are_fine(host: str) -> None:
    assert build(host=host).base_url == host


def test_an_api_key_connection_needs_no_login() -> None:
    config = build({"api_key": "k" * 40}, login=None, password=None)
    assert config.uses_api_key
    assert config.api_key == "k" * 40


# ------------------------------------------------------------------------------------------------ extras
EVERY_EXTRA: dict[str, Any] = {
    "scopes": "core.integration.read",
    "token_path": "/oauth2/access_tokens",
    "connect_timeout": "5",
    "read_timeout": 30,
    "rate_limit": "10.5",
    "burst": "4",
    "max_attempts": 3,
    "verify": "false",
    "proxy": "http://proxy.example.com:3128",
    "extra_document_types": "Payables::New, Other::Thing",
}


def _check_every_extra(config: Any) -> None:
    assert config.scopes == ("core.integration.read",)
    assert config.token_url == HOST + "/oauth2/access_tokens"
    assert (config.connect_timeout, config.read_timeout) == (5.0, 30.0)
    assert (config.rate_limit, config.burst) == (10.5, 4)
    assert config.retry.max_attempts == 3
    assert config.verify is False
    assert dict(config.proxies) == {"https": "http://proxy.example.com:3128", "http": "http://proxy.example.com:3128"}
    assert config.extra_document_types == ("Payables::New", "Other::Thing")


def test_every_extra_read_bare() -> None:
    _check_every_extra(build(EVERY_EXTRA))


def test_every_extra_read_prefixed() -> None:
    _check_every_extra(build({f"extra__{CONN_TYPE}__{k}": v for k, v in EVERY_EXTRA.items()}))


def test_every_extra_from_a_json_string() -> None:
    _check_every_extra(build(json.dumps(EVERY_EXTRA)))


def test_the_bare_name_wins_and_blanks_count_as_absent() -> None:
    extra = {"read_timeout": 7, "extra__coupa__read_timeout": 9, "extra__coupa__connect_timeout": "", "api_key": ""}
    config = build(extra)
    assert config.read_timeout == 7
    assert config.connect_timeout == 10.0
    assert not config.uses_api_key
    assert read_extra({"extra__coupa__scopes": "  "}, "scopes") is None
    assert read_extra({"extra__coupa__scopes": "a"}, "scopes") == "a"


@pytest.mark.parametrize("value", [["core.integration.read"], "core.integration.read,core.integration.write"])
def test_scopes_as_a_list_or_comma_separated(value: Any) -> None:
    assert build({"scopes": value}).scopes[0] == "core.integration.read"


def test_rate_limit_zero_turns_the_limiter_off() -> None:
    assert build({"rate_limit": 0}).rate_limit is None
    assert build({"rate_limit": "0"}).rate_limit is None


@pytest.mark.parametrize(
    ("raw", "verify"), [("true", True), ("False", False), ("no", False), ("1", True), (True, True)]
)
def test_verify_words(raw: Any, verify: bool) -> None:
    assert build({"verify": raw}).verify is verify


def test_verify_takes_a_ca_bundle_path(tmp_path: Path) -> None:
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert build({"verify": str(bundle)}).verify == str(bundle)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("{not json", "extra is not valid JSON"),
        ("[1, 2]", "extra must be a JSON object, got list"),
        ({"read_timeout": "soon"}, "read_timeout must be a number, got 'soon'"),
        ({"connect_timeout": "0"}, "connect_timeout must be a positive number, got '0'"),
        ({"connect_timeout": -3}, "connect_timeout must be a positive number"),
        ({"read_timeout": "nan"}, "read_timeout must be a positive number"),
        ({"read_timeout": True}, "read_timeout must be a positive number"),
        ({"rate_limit": "fast"}, "rate_limit must be a number"),
        ({"rate_limit": -1}, "rate_limit must be a positive number"),
        ({"burst": 2.5}, "burst must be a positive whole number"),
        ({"burst": 0}, "burst must be a positive whole number"),
        ({"max_attempts": "three"}, "max_attempts must be a number"),
        ({"max_attempts": 0}, "max_attempts must be a positive whole number"),
        ({"verify": 5}, "verify must be true, false or a CA bundle path, got 5"),
        ({"verify": "ture"}, "no CA bundle at 'ture'"),
        ({"proxy": "proxy:3128"}, "proxy must be a URL such as http://proxy:3128"),
        ({"proxy": 3128}, "proxy must be text"),
        ({"token_path": "oauth2/token"}, "token_path must start with '/'"),
        ({"token_path": 7}, "token_path must be text"),
        ({"scopes": 5}, "scopes must be space-separated scope names"),
        ({"scopes": ["a", 1]}, "scopes must be space-separated scope names"),
        ({"extra_document_types": 5}, "extra_document_types must be a comma-separated list"),
        ({"timeout": 5}, "extra has unknown key(s) ['timeout']; known: scopes, token_path, api_key"),
        ({"extra__coupa__scope": "x"}, "unknown key(s) ['extra__coupa__scope']"),
        ({"api_key": 12345}, "api_key must be text"),
    ],
)
def test_bad_extras_are_refused_with_the_field_to_fix(extra: Any, fragment: str) -> None:
    assert fragment in refusal(extra)


def test_a_malformed_extra_does_not_echo_it() -> None:
    text = refusal('{"api_key": "' + "s" * 40 + '",')
    assert "s" * 40 not in text


# ------------------------------------------------------------------------------------------------ the form
def test_conn_fields_describe_every_extra() -> None:
    info = conn_fields_info()
    assert list(info) == [f.name for f in CONN_FIELDS]
    assert info["api_key"]["schema"]["format"] == "password"
    assert all("format" not in v["schema"] for k, v in info.items() if k != "api_key")
    assert info["connect_timeout"]["schema"] == {"type": ["number", "null"], "default": 10}
    assert info["burst"]["schema"]["type"] == ["integer", "null"]
    assert all(v["label"] and v["description"] for v in info.values())


def test_conn_field_defaults_are_what_the_client_uses() -> None:
    defaults = {f.name: f.default for f in CONN_FIELDS if f.default is not None}
    assert build(defaults) == build()


def test_ui_behaviour_hides_port_and_schema_and_relabels_the_credentials() -> None:
    assert UI_BEHAVIOUR["hidden-fields"] == ["port", "schema"]
    assert UI_BEHAVIOUR["relabeling"]["login"] == "OAuth client ID"
    assert UI_BEHAVIOUR["relabeling"]["password"] == "OAuth client secret"
    placeholder_extra = json.loads(UI_BEHAVIOUR["placeholders"]["extra"])
    assert build(placeholder_extra).scopes == ("core.integration.read", "core.integration.write")


# ------------------------------------------------------------------------------------------------ hostile extras
@pytest.mark.parametrize("api_key", [123456789012345678, 1234.5678, ["k3y-in-a-list"], {"k": "k3y-in-a-dict"}])
def test_an_api_key_of_the_wrong_type_is_refused_without_its_value(api_key: Any) -> None:
    text = refusal({"api_key": api_key})
    assert "api_key must be text" in text
    for shown in ("123456789012345678", "1234.5678", "k3y-in-a-list", "k3y-in-a-dict"):
        assert shown not in text


@pytest.mark.parametrize("proxy", ["user:pr0xy-pass@proxy:3128", "pr0xy-pass"])
def test_a_proxy_without_its_scheme_is_refused_without_its_value(proxy: str) -> None:
    text = refusal({"proxy": proxy})
    assert "proxy must be a URL such as http://proxy:3128" in text
    assert "pr0xy-pass" not in text


@pytest.mark.parametrize(("name", "value"), [("read_timeout", 10**400), ("burst", 10**400), ("rate_limit", "9" * 5000)])
def test_numbers_past_a_float_are_refused_as_config_errors(name: str, value: Any) -> None:
    text = refusal({name: value})
    assert name in text
    assert len(text) < 800


@pytest.mark.parametrize(
    ("extra", "attribute", "expected"),
    [
        (
            {"scopes": "core.integration.read core.integration.write"},
            "scopes",
            ("core.integration.read", "core.integration.write"),
        ),
        (
            {"scopes": "core.integration.read,core.integration.write"},
            "scopes",
            ("core.integration.read", "core.integration.write"),
        ),
        ({"extra_document_types": "NewDoc,Other::Doc"}, "extra_document_types", ("NewDoc", "Other::Doc")),
        ({"extra_document_types": " NewDoc , Other::Doc "}, "extra_document_types", ("NewDoc", "Other::Doc")),
    ],
)
def test_list_extras_given_as_text_are_read_as_people_mean_them(
    extra: dict[str, Any], attribute: str, expected: tuple[str, ...]
) -> None:
    assert getattr(build(extra), attribute) == expected


def test_a_huge_bad_extra_is_quoted_a_couple_of_hundred_characters_at_most() -> None:
    for extra in ({"verify": ["x" * 100_000]}, {"scopes": [7] * 100_000}, {"read_timeout": "y" * 100_000}):
        assert len(refusal(extra)) < 800
