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


# ------------------------------------------------------------------------------------------------ hostile values
@pytest.mark.parametrize(
    "name",
    [
        "connect_timeout",
        "read_timeout",
        "burst",
        "verify",
        "token_path",
        "scopes",
        "proxies",
        "retry",
        "extra_document_types",
        "max_response_bytes",
    ],
)
def test_none_for_a_setting_is_a_config_error_not_a_type_error(name: str) -> None:
    with pytest.raises(CoupaConfigError, match=name):
        oauth(**{name: None})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("core.integration.read core.integration.write", ("core.integration.read", "core.integration.write")),
        ("core.integration.read,core.integration.write", ("core.integration.read", "core.integration.write")),
        (" core.integration.read ", ("core.integration.read",)),
    ],
)
def test_scopes_given_as_text_are_split_as_people_mean_them(value: str, expected: tuple[str, ...]) -> None:
    assert oauth(scopes=value).scopes == expected


def test_extra_document_types_given_as_text_are_split_as_people_mean_them() -> None:
    assert oauth(extra_document_types="NewDoc,Other::Doc").extra_document_types == ("NewDoc", "Other::Doc")
    assert oauth(extra_document_types="NewDoc, Other::Doc").extra_document_types == ("NewDoc", "Other::Doc")
    assert oauth(extra_document_types="").extra_document_types == ()
    with pytest.raises(CoupaConfigError, match="extra_document_types"):
        oauth(extra_document_types=[7])
    with pytest.raises(CoupaConfigError, match="scopes"):
        oauth(scopes=" , ")


@pytest.mark.parametrize("api_key", [123456789012345, 12.5, ["k" * 40], {"key": "k" * 40}, b"k" * 40])
def test_an_api_key_that_is_not_text_is_refused_without_its_value(api_key: object) -> None:
    with pytest.raises(CoupaConfigError) as refused:
        ClientConfig("https://acme.coupahost.com", api_key=api_key)  # type: ignore[arg-type]
    text = f"{refused.value} {refused.value!r}"
    assert "api_key must be text" in text
    assert "12345" not in text
    assert "kkkk" not in text


@pytest.mark.parametrize("secret", [12345678, ["s3cr3t-in-a-list"]])
def test_a_client_secret_that_is_not_text_is_refused_without_its_value(secret: object) -> None:
    with pytest.raises(CoupaConfigError) as refused:
        ClientConfig("https://acme.coupahost.com", client_id="cid", client_secret=secret)  # type: ignore[arg-type]
    assert "client_secret must be text" in str(refused.value)
    assert "12345678" not in str(refused.value)
    assert "s3cr3t" not in str(refused.value)


@pytest.mark.parametrize("api_key", ["Kéy" + "a" * 37, "a" * 20 + "\r\nX-Evil: 1", "a" * 20 + " " + "a" * 19, "ȷ" * 40])
def test_an_api_key_no_header_can_carry_is_refused_when_the_config_is_built(api_key: str) -> None:
    with pytest.raises(CoupaConfigError) as refused:
        ClientConfig("https://acme.coupahost.com", api_key=api_key)
    assert api_key not in str(refused.value)
    assert "a" * 20 not in str(refused.value)


def test_a_client_id_that_is_not_text_is_refused() -> None:
    with pytest.raises(CoupaConfigError, match="client_id must be text, got 42"):
        ClientConfig("https://acme.coupahost.com", client_id=42, client_secret=SECRET)  # type: ignore[arg-type]


def test_a_lone_surrogate_in_a_credential_is_refused_unquoted() -> None:
    with pytest.raises(CoupaConfigError, match="client_secret holds a lone surrogate") as refused:
        ClientConfig("https://acme.coupahost.com", client_id="cid", client_secret="sec\ud800ret")
    assert "sec" not in str(refused.value).replace("client_secret", "")


@pytest.mark.parametrize(
    ("raw", "hidden"),
    [
        ("ftp://user:p4ssw0rd@acme.coupahost.com", "p4ssw0rd"),
        ("https://acme.coupahost.com/?token=t0k3n-in-query", "t0k3n-in-query"),
        ("https://acme.coupahost.com:notaport/x?key=k3y-in-query", "k3y-in-query"),
    ],
)
def test_a_bad_instance_url_is_refused_without_quoting_credentials_or_query(raw: str, hidden: str) -> None:
    with pytest.raises(CoupaConfigError) as refused:
        ClientConfig(raw, client_id="cid", client_secret=SECRET)
    assert hidden not in str(refused.value)


@pytest.mark.parametrize("raw", ["https://[::1", "https://acme.coupahost.com:99999", "https://acme coupahost.com"])
def test_an_instance_url_python_cannot_read_is_a_config_error(raw: str) -> None:
    with pytest.raises(CoupaConfigError, match=r"must look like https://acme\.coupahost\.com"):
        ClientConfig(raw, client_id="cid", client_secret=SECRET)


def test_a_token_path_with_spaces_or_control_characters_is_refused() -> None:
    with pytest.raises(CoupaConfigError, match="token_path must be a URL path without spaces"):
        oauth(token_path="/oauth2/token\r\nX-Evil: 1")


def test_a_huge_bad_value_is_quoted_a_couple_of_hundred_characters_at_most() -> None:
    for name, value in (("token_path", "x" * 100_000), ("read_timeout", "9" * 100_000), ("burst", "b" * 100_000)):
        with pytest.raises(CoupaConfigError) as refused:
            oauth(**{name: value})
        assert len(str(refused.value)) < 600
