"""ClientConfig: every setting checked when the config is built, before any request; nothing secret in its repr."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.config import DEFAULT_SCOPES, ClientConfig, is_loopback_host
from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
from airflow_provider_coupa_ihr.client.retry import RetryPolicy

SECRET = "config-client-secret-1234"
API_KEY = "a" * 40


def oauth(base_url: str = "https://acme.coupahost.com", **kw: Any) -> ClientConfig:
    return ClientConfig(base_url, client_id="cid", client_secret=SECRET, **kw)


# ------------------------------------------------------------------------------------------------ credentials
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"client_id": "cid"}, {"client_secret": SECRET}, {"client_id": "", "client_secret": SECRET}],
    ids=["nothing", "id only", "secret only", "empty id"],
)
def test_missing_credentials_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(CoupaConfigError, match="credentials are missing"):
        ClientConfig("https://acme.coupahost.com", **kwargs)


def test_an_api_key_alone_is_enough() -> None:
    config = ClientConfig("https://acme.coupahost.com", api_key=API_KEY)
    assert config.uses_api_key
    assert config.secrets() == (API_KEY,)


def test_an_empty_api_key_is_refused() -> None:
    with pytest.raises(CoupaConfigError, match="api_key is empty"):
        ClientConfig("https://acme.coupahost.com", api_key="  ")


def test_a_config_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="credentials"):
        ClientConfig("https://acme.coupahost.com")


# ------------------------------------------------------------------------------------------------ the instance URL
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://acme.coupahost.com", "https://acme.coupahost.com"),
        ("https://acme.coupahost.com/", "https://acme.coupahost.com"),
        ("https://acme.coupahost.com/api", "https://acme.coupahost.com"),
        ("https://acme.coupahost.com/api/", "https://acme.coupahost.com"),
        ("  acme.coupacloud.com  ", "https://acme.coupacloud.com"),
        ("https://acme.coupahost.com:8443", "https://acme.coupahost.com:8443"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765/", "http://localhost:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
        ("http://emulator.localhost", "http://emulator.localhost"),
    ],
)
def test_base_urls_are_normalised(raw: str, expected: str) -> None:
    config = oauth(raw)
    assert config.base_url == expected
    assert config.api_url == expected + "/api"
    assert config.token_url == expected + "/oauth2/token"


@pytest.mark.parametrize("host", ["acme.coupahost.com", "10.0.0.5", "192.168.1.10", "example.com"])
def test_plain_http_to_a_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(CoupaConfigError, match="https only") as caught:
        oauth(f"http://{host}")
    assert host in str(caught.value)


def test_https_to_any_host_is_fine() -> None:
    assert oauth("https://10.0.0.5").host == "10.0.0.5"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("ftp://acme.coupahost.com", "must look like"),
        ("https://", "must look like"),
        ("https://user:pw@acme.coupahost.com", "not in the instance URL"),
        ("https://acme.coupahost.com/?x=1", "query or fragment"),
        ("https://acme.coupahost.com/#top", "query or fragment"),
    ],
)
def test_bad_base_urls_are_refused(raw: str, match: str) -> None:
    with pytest.raises(CoupaConfigError, match=match) as caught:
        oauth(raw)
    assert "user:pw" not in str(caught.value)


def test_a_non_string_base_url_is_refused() -> None:
    with pytest.raises(CoupaConfigError):
        oauth(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.localdomain", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("acme.coupahost.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


# ------------------------------------------------------------------------------------------------ other settings
def test_defaults() -> None:
    config = oauth()
    assert config.scopes == DEFAULT_SCOPES
    assert config.scope == "core.integration.read core.integration.write"
    assert config.token_path == "/oauth2/token"
    assert (config.connect_timeout, config.read_timeout) == (10.0, 60.0)
    assert (config.rate_limit, config.burst) == (25, 20)
    assert config.verify is True
    assert dict(config.proxies) == {}
    assert config.retry == RetryPolicy()
    assert config.extra_document_types == ()
    assert not config.uses_api_key
    assert config.secrets() == (SECRET,)


def test_the_token_path_is_configurable() -> None:
    assert oauth(token_path="/oauth2/access_tokens").token_url == "https://acme.coupahost.com/oauth2/access_tokens"
    with pytest.raises(CoupaConfigError, match="token_path must start with '/'"):
        oauth(token_path="oauth2/token")


@pytest.mark.parametrize("scopes", [(), ("",), ("a b",), (3,)])
def test_bad_scopes_are_refused(scopes: Any) -> None:
    with pytest.raises(CoupaConfigError, match="scopes"):
        oauth(scopes=scopes)


def test_scopes_become_a_tuple() -> None:
    assert oauth(scopes=["core.integration.read"]).scopes == ("core.integration.read",)


@pytest.mark.parametrize("name", ["connect_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "10", True, None])
def test_timeouts_must_be_positive_numbers(name: str, value: Any) -> None:
    with pytest.raises(CoupaConfigError, match=name):
        oauth(**{name: value})


@pytest.mark.parametrize("value", [0, -5, True, "25"])
def test_bad_rate_limits_are_refused(value: Any) -> None:
    with pytest.raises(CoupaConfigError, match="rate_limit"):
        oauth(rate_limit=value)


def test_rate_limit_none_turns_the_throttle_off() -> None:
    assert oauth(rate_limit=None).rate_limit is None


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "20"])
def test_bad_bursts_are_refused(value: Any) -> None:
    with pytest.raises(CoupaConfigError, match="burst"):
        oauth(burst=value)


@pytest.mark.parametrize("value", ["", 1, None, ["/ca.pem"]])
def test_bad_verify_values_are_refused(value: Any) -> None:
    with pytest.raises(CoupaConfigError, match="verify"):
        oauth(verify=value)


def test_verify_takes_a_ca_bundle_that_exists(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert oauth(verify=str(bundle)).verify == str(bundle)
    assert oauth(verify=str(tmp_path)).verify == str(tmp_path)  # a directory of certificates (capath)
    assert oauth(verify=False).verify is False


def test_verify_refuses_a_ca_bundle_that_does_not_exist(tmp_path: Path) -> None:
    # A typo such as "ture" would otherwise be taken for a file name and fail only at the first https request.
    with pytest.raises(CoupaConfigError, match="no CA bundle at"):
        oauth(verify=str(tmp_path / "missing.pem"))
    with pytest.raises(CoupaConfigError, match="no CA bundle at 'ture'"):
        oauth(verify="ture")


@pytest.mark.parametrize(
    "proxies",
    [{"ftp": "http://proxy:3128"}, {"https": "proxy:3128"}, {"https": 3128}],
)
def test_bad_proxies_are_refused(proxies: Any) -> None:
    with pytest.raises(CoupaConfigError, match="proxies"):
        oauth(proxies=proxies)


def test_proxies_are_frozen() -> None:
    config = oauth(proxies={"https": "http://proxy:3128"})
    with pytest.raises(TypeError):
        config.proxies["http"] = "http://other:1"  # type: ignore[index]


def test_extra_document_types_become_a_tuple() -> None:
    assert oauth(extra_document_types=["NewDoc"]).extra_document_types == ("NewDoc",)


def test_the_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        oauth().base_url = "https://other.coupahost.com"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ secrets
def test_repr_shows_no_secret() -> None:
    config = ClientConfig(
        "https://acme.coupahost.com",
        client_id="cid",
        client_secret=SECRET,
        api_key=API_KEY,
        proxies={"https": "http://proxyuser:proxy-pass-9876@proxy.example.com:3128"},
    )
    text = repr(config) + str(config)
    assert "cid" in text  # the client id is not a secret and helps debugging
    for secret in (SECRET, API_KEY, "proxy-pass-9876"):
        assert secret not in text


def test_proxy_credentials_count_as_secrets() -> None:
    config = oauth(proxies={"https": "http://proxyuser:proxy-pass-9876@proxy.example.com:3128"})
    assert set(config.secrets()) == {SECRET, "proxy-pass-9876"}
