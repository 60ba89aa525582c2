"""A catalogue of bad inputs: each fails before anything reaches Coupa, with a message that says what was wrong
and what is allowed.

Every case runs against a live emulator and ends by checking the emulator saw no request at all (not even a
token request): validation happens before the first byte is sent. The cases cover the client (records, queries,
ids, runs), connections (host, credentials, extras), operators and the bulk operator's items, and templates that
render to something invalid in a real ``dag.test()`` run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from dag_helpers import load_dag, task_states, try_numbers
from reliability_helpers import fast_client

from airflow_provider_coupa_ihr.client.errors import CoupaConfigError, CoupaValidationError
from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.testing import CoupaEmulator

OK: dict[str, Any] = {"document_type": "InvoiceHeader", "document_id": 42, "contact_alert_type": "Functional"}


def record(**changes: Any) -> dict[str, Any]:
    fields = {**OK, **changes}
    return {k: v for k, v in fields.items() if v is not None}


def nothing_sent(coupa: CoupaEmulator) -> None:
    assert coupa.requests() == [], f"the emulator saw requests: {coupa.requests()}"


def assert_says(message: str, *words: str) -> None:
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in the message: {message}"


# ================================================================================================ the client
CLIENT_CASES = [
    # --- record fields: types, choices, lengths, names
    pytest.param(
        lambda c: c.create_record(**record(document_type="InvoiceHeadr")),
        ["document_type 'InvoiceHeadr' is not one of Coupa's document types", "did you mean 'InvoiceHeader'"],
        id="document-type-typo",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_type="Spaceship")),
        ["'Spaceship' is not one of Coupa's document types", "accepts these document types", "extra_document_types"],
        id="document-type-unknown",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_type=42)),
        ["document_type must be text", "got 42"],
        id="document-type-not-text",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_id="INV-42")),
        ["document_id is not a number", "'INV-42'"],
        id="document-id-text",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_id=4.2)),
        ["document_id must be an integer", "4.2"],
        id="document-id-float",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_id=True)),
        ["document_id is not a number", "True"],
        id="document-id-bool",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_id=None)),
        ["document_id can't be blank"],
        id="document-id-missing",
    ),
    pytest.param(
        lambda c: c.create_record(**record(contact_alert_type="Everyone")),
        ["contact_alert_type must be one of Technical, Functional, Both", "'Everyone'"],
        id="contact-alert-type",
    ),
    pytest.param(
        lambda c: c.create_record(**record(status="x" * 256)),
        ["status is too long", "maximum is 255 characters", "got 256 characters"],
        id="status-too-long",
    ),
    pytest.param(
        lambda c: c.create_record(**record(external_id="E" * 1000)),
        ["external_id is too long", "maximum is 255"],
        id="external-id-too-long",
    ),
    pytest.param(
        lambda c: c.create_record(**record(status=500)),
        ["status must be text", "got 500"],
        id="status-not-text",
    ),
    pytest.param(
        lambda c: c.create_record(**record(documnet_status="approved")),
        ["'documnet_status' is not a field", "did you mean document_status", "Fields:"],
        id="field-name-typo",
    ),
    pytest.param(
        lambda c: c.create_record(**record(resolved=True)),
        ["resolved is read-only", "use resolve()"],
        id="read-only-field",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_revision="v2")),
        ["document_revision is not a number", "'v2'"],
        id="document-revision-text",
    ),
    # --- shorthands
    pytest.param(
        lambda c: c.create_record(**record(responses="Supplier blocked")),
        ["responses must be a list of {response_code, response_message} or (code, message) pairs"],
        id="responses-text",
    ),
    pytest.param(
        lambda c: c.create_record(**record(responses=[("E1",)])),
        ["responses items must be dicts or (code, message) pairs", "('E1',)"],
        id="responses-short-pair",
    ),
    pytest.param(
        lambda c: c.create_record(**record(responses=[{"code": "E1", "message": "x"}])),
        ["take response_code and response_message only", "['code', 'message']"],
        id="responses-wrong-keys",
    ),
    pytest.param(
        lambda c: c.create_record(**record(responses=[("E" * 300, "too long a code")])),
        ["response", "too long", "maximum is 255"],
        id="response-code-too-long",
    ),
    pytest.param(
        lambda c: c.create_record(**record(integration=42)),
        ["integration takes the integration's code (a string)", "got 42"],
        id="integration-not-a-code",
    ),
    pytest.param(
        lambda c: c.create_record(**record(integration_run="last night")),
        ["integration_run takes the run's id (an integer)", "'last night'"],
        id="integration-run-not-an-id",
    ),
    pytest.param(
        lambda c: c.create_record(action="delete", **record()),
        ["action must be one of create, acknowledge, mark_exported, create_alert", "'delete'"],
        id="unknown-record-action",
    ),
    # --- queries: filters, operators, fields=, order
    pytest.param(
        lambda c: c.query_records({"status[like]": "Err"}),
        ["unknown operator [like]", "[contains]", "[starts_with]"],
        id="filter-unknown-operator",
    ),
    pytest.param(
        lambda c: c.query_records({"state": "Error"}),
        ["unknown field state", "did you mean status?"],
        id="filter-unknown-field",
    ),
    pytest.param(
        lambda c: c.query_records({"created_at[gt]": "yesterday"}),
        ["created-at takes a datetime, a date or ISO 8601 text", "'yesterday'"],
        id="filter-bad-date",
    ),
    pytest.param(
        lambda c: c.query_records({"created_at[contains]": "2026"}),
        ["[contains] works on text", "datetime field", "[gt]"],
        id="filter-text-operator-on-a-date",
    ),
    pytest.param(
        lambda c: c.query_records({"id[in]": "7,eight"}),
        ["id takes a whole number", "'eight'"],
        id="filter-in-with-a-word",
    ),
    pytest.param(
        lambda c: c.query_records({"resolved": "perhaps"}),
        ["resolved takes True or False", "'perhaps'"],
        id="filter-bad-boolean",
    ),
    pytest.param(
        lambda c: c.query_records(fields=["id", "amount"]),
        ["fields: unknown field amount", "known:", "document-id"],
        id="fields-unknown",
    ),
    pytest.param(
        lambda c: c.query_records(order_by="amount"),
        ["order_by: unknown field amount", "known:"],
        id="order-by-unknown",
    ),
    pytest.param(
        lambda c: c.query_records(direction="sideways"),
        ["direction: must be asc or desc", "'sideways'"],
        id="direction",
    ),
    pytest.param(
        lambda c: c.query_records(max_records=-1),
        ["max_records: must be a whole number from 0", "-1"],
        id="max-records-negative",
    ),
    # --- ids, updates, runs
    pytest.param(lambda c: c.get_record(0), ["must be a Coupa id (a whole number from 1)", "got 0"], id="record-id-0"),
    pytest.param(
        lambda c: c.resolve("seven"), ["must be a Coupa id (a whole number from 1)", "'seven'"], id="record-id-text"
    ),
    pytest.param(
        lambda c: c.get_record(7, fields=["amount"]), ["fields: unknown field amount"], id="get-record-bad-fields"
    ),
    pytest.param(lambda c: c.update_record(7), ["an update needs at least one field"], id="update-nothing"),
    pytest.param(
        lambda c: c.update_record(7, document_type="Spaceship"),
        ["'Spaceship' is not one of Coupa's document types"],
        id="update-bad-document-type",
    ),
    pytest.param(
        lambda c: c.run_transition(5, "explode"),
        ["action must be one of run, pause, pending, success, finish, fail", "'explode'"],
        id="run-action-unknown",
    ),
    pytest.param(
        lambda c: c.run_transition("latest", "run"),
        ["run_id must be a Coupa id (a whole number from 1)", "'latest'"],
        id="run-id-text",
    ),
    pytest.param(lambda c: c.create_run(""), ["integration must be the integration's code"], id="run-no-integration"),
    # --- bounds (issue 12 item 7): ids are Coupa ids, 1 to a bigint; revisions and counts from 0; capped text
    pytest.param(
        lambda c: c.create_record(**record(document_id=0)),
        ["document_id must be a whole number from 1 to 9223372036854775807 (a Coupa id)", "got 0"],
        id="document-id-zero",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_id=2**63)),
        ["document_id must be a whole number from 1 to 9223372036854775807", str(2**63)],
        id="document-id-beyond-a-bigint",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_revision=-1)),
        ["document_revision must be a whole number from 0", "got -1"],
        id="document-revision-negative",
    ),
    pytest.param(
        lambda c: c.create_record(**record(integration_run=0)),
        ["integration_run takes the run's id from 1"],
        id="integration-run-zero",
    ),
    pytest.param(
        lambda c: c.create_record(**record(responses=[("E1", "m" * 70_000)])),
        ["response-message is too long", "maximum is 65535 bytes"],
        id="response-message-over-the-cap",
    ),
    pytest.param(
        lambda c: c.create_record(**record(status="Err\ud800or")),
        ["lone surrogate", "cannot be sent"],
        id="status-with-a-lone-surrogate",
    ),
    pytest.param(
        lambda c: c.create_run("I" * 300),
        ["integration must be the integration's code (at most 255 characters)"],
        id="run-integration-code-too-long",
    ),
    pytest.param(
        lambda c: c.run_transition(5, "run", total_records=2**63),
        ["total_records must be a whole number from 0 to 9223372036854775807"],
        id="run-total-records-beyond-a-bigint",
    ),
    pytest.param(
        lambda c: c.get_record(2**63),
        ["must be a Coupa id (a whole number from 1)", str(2**63)],
        id="record-id-beyond-a-bigint",
    ),
    pytest.param(
        lambda c: c.query_records({"id": 0}),
        ["id takes a Coupa id (a whole number) from 1", "got 0"],
        id="filter-id-zero",
    ),
    pytest.param(
        lambda c: c.query_records({"id[in]": [7, 2**63]}),
        ["from 1 to 9223372036854775807", str(2**63)],
        id="filter-id-beyond-a-bigint",
    ),
    # --- digits Python reads and Coupa does not (issue 12 item 6)
    pytest.param(
        lambda c: c.create_record(**record(document_id="²")),
        ["document_id is not a number", "'²'"],
        id="document-id-superscript-two",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_id="①")),
        ["document_id is not a number", "'①'"],
        id="document-id-circled-one",
    ),
    pytest.param(
        lambda c: c.create_record(**record(document_id="9" * 5000)),
        ["document_id is not a number", "5000 characters"],
        id="document-id-5000-nines",
    ),
    pytest.param(
        lambda c: c.query_records({"document_id": "9" * 5000}),
        ["document-id takes a whole number", "5000 characters"],
        id="filter-5000-nines",
    ),
    pytest.param(
        lambda c: c.resolve_records(["²"]),
        ["'²' is not a Coupa record id"],
        id="record-ids-superscript",
    ),
    # --- ids rendered to blank text (issue 12 item 7)
    pytest.param(
        lambda c: c.resolve_records(""),
        ["record_ids: '' holds no id", "pass an empty list, [], to mean no ids on purpose"],
        id="record-ids-blank",
    ),
    pytest.param(
        lambda c: c.resolve_records(","),
        ["record_ids: ',' holds no id"],
        id="record-ids-a-lone-comma",
    ),
    pytest.param(
        lambda c: c.unresolve_records("[7, 8]", exclude=" , "),
        ["exclude: ' , ' holds no id"],
        id="exclude-ids-blank-text",
    ),
]


@pytest.fixture
def client(coupa_emulator: CoupaEmulator) -> Iterator[CoupaClient]:
    with fast_client(coupa_emulator) as c:
        yield c


def _call_through(call: Callable[[CoupaClient], Any], client: CoupaClient) -> None:
    result = call(client)
    if hasattr(result, "__next__"):  # a query is lazy; were it not validated when made, the first page would go
        next(result)


@pytest.mark.parametrize(("call", "words"), CLIENT_CASES)
def test_the_client_refuses_before_sending(
    call: Callable[[CoupaClient], Any],
    words: list[str],
    client: CoupaClient,
    coupa_emulator: CoupaEmulator,
    reliability_report: Callable[[str], None],
) -> None:
    with pytest.raises(CoupaValidationError) as caught:
        _call_through(call, client)
    message = str(caught.value)
    report_requests(reliability_report, coupa_emulator)
    assert_says(message, "Not sent to Coupa", *words)
    assert isinstance(caught.value, ValueError)  # a bad argument, to Python code
    assert len(message) < 3000, "a bad value is quoted a couple of hundred characters at most"
    nothing_sent(coupa_emulator)


HUGE = 100_000
HUGE_VALUE_CASES = [
    pytest.param(lambda c: c.create_record(**record(document_type="D" * HUGE)), id="document-type"),
    pytest.param(lambda c: c.create_record(**record(contact_alert_type="C" * HUGE)), id="contact-alert-type"),
    pytest.param(lambda c: c.create_record(**record(integration_run="R" * HUGE)), id="integration-run"),
    pytest.param(lambda c: c.create_record(**record(**{"x" * HUGE: 1})), id="field-name"),
    pytest.param(lambda c: c.create_record(action="A" * HUGE, **record()), id="action"),
    pytest.param(lambda c: c.query_records({"created_at[gt]": "T" * HUGE}), id="filter-datetime"),
    pytest.param(lambda c: c.query_records({"id[in]": ["I" * HUGE]}), id="filter-id-list"),
    pytest.param(lambda c: c.query_records(direction="S" * HUGE), id="direction"),
    pytest.param(lambda c: c.get_record("9" * HUGE), id="record-id"),
    pytest.param(lambda c: c.resolve_records(["x" * HUGE]), id="record-ids"),
    pytest.param(lambda c: c.run_transition(5, "run", total_records="N" * HUGE), id="run-total-records"),
    pytest.param(lambda c: c.create_run("I" * HUGE), id="run-integration"),
]


@pytest.mark.parametrize("call", HUGE_VALUE_CASES)
def test_a_huge_bad_value_is_quoted_a_couple_of_hundred_characters_at_most(
    call: Callable[[CoupaClient], Any],
    client: CoupaClient,
    coupa_emulator: CoupaEmulator,
    reliability_report: Callable[[str], None],
) -> None:
    with pytest.raises(CoupaValidationError) as caught:
        _call_through(call, client)
    report_requests(reliability_report, coupa_emulator, f"message {len(str(caught.value))} characters")
    assert len(str(caught.value)) < 1500, str(caught.value)[:2000]
    nothing_sent(coupa_emulator)


def report_requests(report: Callable[[str], None], coupa: CoupaEmulator, extra: str = "") -> None:
    """The figure the reliability summary prints for each refused input: requests Coupa saw before the refusal."""
    report(f"requests sent before the refusal: {len(coupa.requests())}" + (f"; {extra}" if extra else ""))


# ================================================================================================ connections
def _conn(coupa: CoupaEmulator, **changes: Any) -> dict[str, Any]:
    conn: dict[str, Any] = {
        "conn_type": "coupa",
        "host": coupa.url,
        "login": coupa.credentials.client_id,
        "password": coupa.credentials.client_secret,
        "extra": {},
    }
    conn.update(changes)
    return {k: v for k, v in conn.items() if v is not None}


CONNECTION_CASES = [
    pytest.param(
        {"host": "http://acme.coupahost.com"},
        ["https only", "plain http is allowed for loopback hosts", "'acme.coupahost.com'"],
        id="host-without-https",
    ),
    pytest.param({"host": ""}, ["instance URL (connection host) is empty", "https://"], id="host-empty"),
    pytest.param(
        {"host": "ftp://acme.coupahost.com"}, ["must look like https://acme.coupahost.com"], id="host-wrong-scheme"
    ),
    pytest.param(
        {"host": "https://user:pw@acme.coupahost.com"},
        ["Put credentials in the connection's login and password"],
        id="host-with-credentials",
    ),
    pytest.param(
        {"login": None, "password": None},
        ["credentials are missing", "client id (login) and client secret (password)", "api_key"],
        id="credentials-missing",
    ),
    pytest.param({"password": None}, ["credentials are missing"], id="secret-missing"),
    pytest.param({"port": 8443}, ["port is not used", "full instance URL"], id="port-set"),
    pytest.param({"extra": "{not json"}, ["extra is not valid JSON"], id="extra-not-json"),
    pytest.param({"extra": "[1, 2]"}, ["extra must be a JSON object"], id="extra-not-an-object"),
    pytest.param(
        {"extra": {"rate": 5}},
        ["extra has unknown key(s) ['rate']", "known:", "rate_limit"],
        id="extra-unknown-key",
    ),
    pytest.param(
        {"extra": {"read_timeout": "soon"}}, ["read_timeout must be a number", "'soon'"], id="extra-timeout-text"
    ),
    pytest.param(
        {"extra": {"rate_limit": -1}}, ["rate_limit must be a positive number", "-1"], id="extra-rate-negative"
    ),
    pytest.param(
        {"extra": {"burst": 2.5}}, ["burst must be a positive whole number", "2.5"], id="extra-burst-fraction"
    ),
    pytest.param(
        {"extra": {"verify": "ture"}},
        ["verify must be true, false, or the path of a CA bundle", "no CA bundle at 'ture'"],
        id="extra-verify-typo",
    ),
    pytest.param(
        {"extra": {"proxy": "proxy:3128"}}, ["proxy must be a URL such as http://proxy:3128"], id="extra-proxy"
    ),
    pytest.param(
        {"extra": {"token_path": "oauth2/token"}},
        ["token_path must start with '/'", "/oauth2/token"],
        id="extra-token-path",
    ),
    pytest.param(
        {"extra": {"scopes": ["core.integration.read", 7]}},
        ["scopes must be space-separated scope names"],
        id="extra-scopes",
    ),
    pytest.param(
        {"extra": {"max_attempts": 0}}, ["max_attempts must be a positive whole number"], id="extra-attempts-zero"
    ),
]


@pytest.mark.parametrize(("changes", "words"), CONNECTION_CASES)
def test_a_bad_connection_is_refused_before_any_request(
    changes: dict[str, Any],
    words: list[str],
    coupa_emulator: CoupaEmulator,
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: Callable[[str], None],
) -> None:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    monkeypatch.setenv("AIRFLOW_CONN_COUPA_BAD", json.dumps(_conn(coupa_emulator, **changes)))
    hook = CoupaHook("coupa_bad")
    with pytest.raises(CoupaConfigError) as caught:
        hook.create_record(**record())
    report_requests(reliability_report, coupa_emulator)
    assert_says(str(caught.value), "Coupa connection 'coupa_bad'", *words)
    nothing_sent(coupa_emulator)


SECRET_CONNECTION_CASES = [
    pytest.param({"extra": {"api_key": 987654321987654321}}, "987654321987654321", id="api-key-a-json-number"),
    pytest.param({"extra": {"api_key": ["list-held-key-0042"]}}, "list-held-key-0042", id="api-key-a-list"),
    pytest.param({"extra": {"api_key": "Kéy-0042-non-ascii"}}, "Kéy-0042-non-ascii", id="api-key-non-ascii"),
    pytest.param({"extra": {"api_key": "key-0042\r\nX-Evil: 1"}}, "key-0042", id="api-key-with-crlf"),
    pytest.param({"extra": {"proxy": "user:pr0xy-pass@proxy:3128"}}, "pr0xy-pass", id="proxy-without-scheme"),
    pytest.param({"host": "ftp://user:h0st-pass@acme.coupahost.com"}, "h0st-pass", id="host-credentials-bad-scheme"),
]


@pytest.mark.parametrize(("changes", "hidden"), SECRET_CONNECTION_CASES)
def test_a_bad_secret_setting_is_refused_without_quoting_it(
    changes: dict[str, Any],
    hidden: str,
    coupa_emulator: CoupaEmulator,
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: Callable[[str], None],
) -> None:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    monkeypatch.setenv("AIRFLOW_CONN_COUPA_BAD", json.dumps(_conn(coupa_emulator, **changes)))
    with pytest.raises(CoupaConfigError) as caught:
        CoupaHook("coupa_bad").create_record(**record())
    report_requests(reliability_report, coupa_emulator)
    assert "Coupa connection 'coupa_bad'" in str(caught.value)
    assert hidden not in f"{caught.value} {caught.value!r}"
    nothing_sent(coupa_emulator)


@pytest.mark.parametrize(
    "setting",
    ["connect_timeout", "read_timeout", "burst", "verify", "token_path", "scopes", "proxies", "retry"],
)
def test_none_for_a_client_setting_is_a_config_error(setting: str) -> None:
    from airflow_provider_coupa_ihr.client.config import ClientConfig

    with pytest.raises(CoupaConfigError, match=setting):
        ClientConfig("https://acme.coupahost.com", "id", "secret", **{setting: None})


def test_plain_http_to_a_remote_host_is_refused_by_the_bare_client_too() -> None:
    from airflow_provider_coupa_ihr.client.config import ClientConfig

    with pytest.raises(CoupaConfigError) as caught:
        ClientConfig("http://acme.coupahost.com", "id", "secret")
    assert_says(str(caught.value), "https only", "'acme.coupahost.com'")


# ================================================================================================ operators
class _TI:
    task_id = "t"

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.start_date = datetime.now(timezone.utc)

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _operators() -> list[Any]:
    """(make the operator, words) for operators refusing at construction or at execute, before any request."""
    return [
        pytest.param(
            lambda: _records().CoupaResolveRecordsOperator(task_id="t", record_ids=[1], filters={"status": "Error"}),
            ["needs record_ids or filters (exactly one of them)"],
            id="resolve-ids-and-filters",
        ),
        pytest.param(
            lambda: _sensor().CoupaRecordsResolvedSensor(task_id="t"),
            ["give either record_ids", "or filters", "not both and not neither"],
            id="sensor-nothing-to-wait-on",
        ),
        pytest.param(
            lambda: _bulk().CoupaBulkCreateRecordsOperator(task_id="t", items=[], on_partial_failure="ignore"),
            ["on_partial_failure must be 'fail' or 'warn'", "'ignore'"],
            id="bulk-partial-failure-policy",
        ),
        pytest.param(
            lambda: _bulk().CoupaBulkCreateRecordsOperator(task_id="t", items=[], max_workers=0),
            ["max_workers must be 1 or more"],
            id="bulk-no-workers",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaCreateRecordOperator(task_id="t", status="Error", extra_fields={"status": "Success"}, **record())
                .execute({"ti": _TI()})
            ),
            ["extra_fields repeats ['status']", "already given as arguments"],
            id="create-extra-fields-clash",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaUpdateRecordOperator(task_id="t", record_id="abc", fields={"status": "x"})
                .execute({"ti": _TI()})
            ),
            ["record_id must be a Coupa id (a whole number from 1)", "'abc'"],
            id="update-record-id-text",
        ),
        pytest.param(
            lambda: (
                _runs().CoupaFinishIntegrationRunOperator(task_id="t", run_id=5, outcome="done").execute({"ti": _TI()})
            ),
            ["outcome must be success, fail or finish", "'done'"],
            id="finish-run-outcome",
        ),
        # --- everything an operator will send is checked before its first request (no earlier side effect)
        pytest.param(
            lambda: (
                _records()
                .CoupaMarkExportedOperator(task_id="t", resolve_previous=True, **record(contact_alert_type="Everyone"))
                .execute({"ti": _TI()})
            ),
            ["contact_alert_type must be one of Technical, Functional, Both", "'Everyone'"],
            id="resolve-previous-then-a-bad-contact-alert-type",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaMarkExportedOperator(task_id="t", resolve_previous=True, **record(status="x" * 300))
                .execute({"ti": _TI()})
            ),
            ["status is too long", "maximum is 255 characters", "got 300 characters"],
            id="resolve-previous-then-a-status-too-long",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaCreateRecordOperator(task_id="t", resolve_previous=True, **record(document_type="InvoiceHeadr"))
                .execute({"ti": _TI()})
            ),
            ["'InvoiceHeadr' is not one of Coupa's document types"],
            id="resolve-previous-then-a-bad-document-type",
        ),
        pytest.param(
            lambda: (
                _records().CoupaCreateRecordOperator(task_id="t", **record(status=7)).execute({"ti": _TI(try_number=2)})
            ),
            ["status must be text", "got 7"],
            id="retry-lookup-then-a-bad-status",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaResolveRecordsOperator(task_id="t", record_ids=[7, 8], exclude_ids=["seven"])
                .execute({"ti": _TI()})
            ),
            ["'seven'", "a whole number from 1"],
            id="resolve-exclude-ids-with-a-word",
        ),
        pytest.param(
            lambda: (
                _records().CoupaResolveRecordsOperator(task_id="t", record_ids=[7, "8", "eight"]).execute({"ti": _TI()})
            ),
            ["'eight'", "a whole number from 1"],
            id="resolve-ids-one-of-them-a-word",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaResolveRecordsOperator(task_id="t", filters={"status": "Error"}, max_records=-1)
                .execute({"ti": _TI()})
            ),
            ["max_records", "-1"],
            id="resolve-matching-negative-cap",
        ),
        pytest.param(
            lambda: (
                _runs()
                .CoupaStartIntegrationRunOperator(task_id="t", integration="AIRFLOW-TEST", total_records="many")
                .execute({"ti": _TI()})
            ),
            ["total_records must be a whole number", "'many'"],
            id="start-run-total-records-text",
        ),
        pytest.param(
            lambda: (
                _runs()
                .CoupaStartIntegrationRunOperator(task_id="t", integration="AIRFLOW-TEST", total_records=-1)
                .execute({"ti": _TI()})
            ),
            ["total_records must be a whole number", "-1"],
            id="start-run-total-records-negative",
        ),
        pytest.param(
            lambda: (
                _runs()
                .CoupaFinishIntegrationRunOperator(task_id="t", run_id=5, records_processed="many")
                .execute({"ti": _TI()})
            ),
            ["records_processed must be a whole number", "'many'"],
            id="finish-run-records-processed-text",
        ),
        pytest.param(
            lambda: (
                _runs()
                .CoupaFinishIntegrationRunOperator(task_id="t", run_id="latest", outcome="fail")
                .execute({"ti": _TI()})
            ),
            ["run_id must be a Coupa id (a whole number from 1)", "'latest'"],
            id="finish-run-id-text",
        ),
        # --- templates that rendered to blank text, or to ids out of bounds
        pytest.param(
            lambda: _records().CoupaResolveRecordsOperator(task_id="t", record_ids="").execute({"ti": _TI()}),
            ["record_ids: '' holds no id"],
            id="resolve-ids-rendered-blank",
        ),
        pytest.param(
            lambda: _records().CoupaUnresolveRecordsOperator(task_id="t", record_ids=" , ").execute({"ti": _TI()}),
            ["record_ids: ' , ' holds no id"],
            id="unresolve-ids-rendered-to-a-comma",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaCreateRecordOperator(task_id="t", resolve_previous=True, **record(document_id="0"))
                .execute({"ti": _TI()})
            ),
            ["document_id must be a whole number from 1 to 9223372036854775807"],
            id="resolve-previous-then-document-id-zero",
        ),
        pytest.param(
            lambda: (
                _records()
                .CoupaResolveRecordsOperator(task_id="t", filters='{"document_type": "InvoiceHeader"}')
                .execute({"ti": _TI()})
            ),
            ["filters: must be a mapping of filter to value"],
            id="resolve-filters-rendered-to-text",
        ),
        pytest.param(
            lambda: (
                _runs()
                .CoupaStartIntegrationRunOperator(task_id="t", integration="AIRFLOW-TEST", total_records=str(2**63))
                .execute({"ti": _TI()})
            ),
            ["total_records must be a whole number from 0 to 9223372036854775807"],
            id="start-run-total-records-beyond-a-bigint",
        ),
    ]


def _records() -> Any:
    from airflow_provider_coupa_ihr.operators import records

    return records


def _bulk() -> Any:
    from airflow_provider_coupa_ihr.operators import bulk

    return bulk


def _runs() -> Any:
    from airflow_provider_coupa_ihr.operators import runs

    return runs


def _sensor() -> Any:
    from airflow_provider_coupa_ihr.sensors import coupa

    return coupa


@pytest.mark.parametrize(("make", "words"), _operators())
def test_operators_refuse_bad_arguments_before_any_request(
    make: Callable[[], Any],
    words: list[str],
    coupa_connection: Any,
    coupa_emulator: CoupaEmulator,
    reliability_report: Callable[[str], None],
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises((ValueError, AirflowFailException)) as caught:
        make()
    report_requests(reliability_report, coupa_emulator)
    assert_says(str(caught.value), *words)
    nothing_sent(coupa_emulator)


BULK_CASES = [
    pytest.param("records.csv", ["items must be a list of dicts of record fields, got str"], id="items-text"),
    pytest.param({"document_id": 1}, ["items must be a list of dicts", "got dict"], id="items-one-dict"),
    pytest.param(
        [{"document_id": 1}, "INV-2", {"document_id": 3}],
        ["item 1: must be a dict of record fields, got str", "nothing was sent"],
        id="item-not-a-dict",
    ),
    pytest.param(
        [{"document_id": 1, "action": "explode"}],
        ["item 0: action must be one of create", "'explode'"],
        id="item-unknown-action",
    ),
    pytest.param(
        [{"document_id": 1}, {"document_id": "two"}, {"document_id": 3, "document_type": "Invoic"}, {}],
        [
            "item 1: document_id is not a number, got 'two'",
            "item 2: document_type 'Invoic' is not one of Coupa's document types",
            "item 3: document_id can't be blank",
            "nothing was sent",
        ],
        id="every-bad-item-named-at-once",
    ),
]


@pytest.mark.parametrize(("items", "words"), BULK_CASES)
def test_bad_bulk_items_fail_the_batch_before_any_request(
    items: Any,
    words: list[str],
    coupa_connection: Any,
    coupa_emulator: CoupaEmulator,
    reliability_report: Callable[[str], None],
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator

    operator = CoupaBulkCreateRecordsOperator(
        task_id="bulk", items=items, defaults={"document_type": "InvoiceHeader", "contact_alert_type": "Functional"}
    )
    with pytest.raises(AirflowFailException) as caught:  # no task retries: the next try would fail the same way
        operator.execute({"ti": _TI()})
    report_requests(reliability_report, coupa_emulator)
    assert_says(str(caught.value), *words)
    nothing_sent(coupa_emulator)


# ================================================================================================ templates
TEMPLATE_CASES = [
    pytest.param(
        "document_id_from_erp_number",
        ["document_id is not a number", "'INV-0042'"],
        id="document-id-renders-to-erp-number",
    ),
    pytest.param(
        "document_type_with_a_space",
        ["'Invoice Header' is not one of Coupa's document types", "did you mean 'InvoiceHeader'"],
        id="document-type-renders-with-a-space",
    ),
    pytest.param(
        "record_ids_with_a_word",
        ["record_ids:", "'x'", "is not a Coupa record id (a whole number from 1)"],
        id="record-ids-render-with-a-word",
    ),
    pytest.param(
        "items_rendered_as_text",
        ["items must be a list of dicts of record fields, got str"],
        id="bulk-items-render-to-text",
    ),
    pytest.param(
        "filter_operator_typo",
        ["unknown operator [like]", "[contains]"],
        id="filters-render-with-a-bad-operator",
    ),
    pytest.param(
        "wait_on_a_word",
        ["cannot wait on this", "'tomorrow' is not a Coupa record id (a whole number from 1)"],
        id="sensor-ids-render-to-a-word",
    ),
    pytest.param(
        "resolve_previous_then_a_bad_alert_type",
        ["contact_alert_type must be one of Technical, Functional, Both", "'Everyone'"],
        id="resolve-previous-with-a-contact-alert-type-rendering-to-a-typo",
    ),
    pytest.param(
        "start_run_counting_many",
        ["total_records must be a whole number", "'many'"],
        id="start-run-total-records-renders-to-a-word",
    ),
    pytest.param(
        "run_counting_many.start",
        ["total_records must be a whole number", "'many'"],
        id="integration-run-group-total-records-renders-to-a-word",
    ),
]


@pytest.fixture(scope="module")
def bad_template_run(airflow_db: Path) -> Iterator[dict[str, Any]]:
    """One ``dag.test()`` of the DAG whose every task renders a bad template; what each task reported."""
    from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json

    with CoupaEmulator() as coupa, pytest.MonkeyPatch.context() as mp:
        coupa.add_integration("AIRFLOW-TEST")
        folder = Path(tempfile.mkdtemp(prefix="coupa-failures-"))
        sink = folder / "failures.jsonl"
        mp.setenv("AIRFLOW_CONN_COUPA_DEFAULT", connection_json(coupa))
        mp.setenv("COUPA_TEST_FAILURE_LOG", str(sink))
        run = load_dag("test_dags/reliability_bad_templates.py").test()
        failures = [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []
        yield {
            "states": task_states(run),
            "tries": try_numbers(run),
            "failures": {f["task_id"]: f for f in failures},
            "requests": coupa.requests(),
        }
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.dag
@pytest.mark.parametrize(("task_id", "words"), TEMPLATE_CASES)
def test_a_template_rendering_to_bad_input_fails_the_task_at_once(
    task_id: str, words: list[str], bad_template_run: dict[str, Any], reliability_report: Callable[[str], None]
) -> None:
    reliability_report(f"requests sent before the refusal: {len(bad_template_run['requests'])} (the whole run)")
    assert bad_template_run["states"][task_id] == "failed"
    assert bad_template_run["tries"][task_id] == 1  # retries=2, unused: AirflowFailException
    failure = bad_template_run["failures"][task_id]
    assert failure["type"] == "AirflowFailException"
    assert_says(failure["message"], *words)
    assert bad_template_run["requests"] == []  # the whole run sent nothing to Coupa


# ================================================================================================ answers
#: Pages a proxy, a login page answering 200, or a server that is not Coupa may send.
MALFORMED_PAGES = [
    pytest.param({"id": 1, "resolved": False}, "is not a page of records", id="an-object-where-a-page-belongs"),
    pytest.param([{"id": 1}, "two"], "not a record", id="an-item-that-is-not-a-record"),
    pytest.param([{"resolved": False}], "with no id", id="a-record-without-an-id"),
    pytest.param([{"id": "²", "resolved": False}], "the id '²'", id="an-id-isdigit-reads"),
    pytest.param([{"id": "9" * 5000, "resolved": False}], "5000 characters", id="an-id-past-int-s-digit-limit"),
]
#: What reads pages: a query, resolve-by-filter, and both kinds of wait, sync and async.
PAGE_READERS = [
    pytest.param(lambda c: c.query_records({"status": "Error"}), id="query"),
    pytest.param(lambda c: c.resolve_matching({"status": "Error"}), id="resolve-matching"),
    pytest.param(lambda c: c.check_resolution(ResolutionTarget.of(record_ids=[1])), id="wait-on-ids"),
    pytest.param(lambda c: c.check_resolution(ResolutionTarget.of(filters={"status": "Error"})), id="wait-on-a-query"),
]


async def _drain(result: Any) -> Any:
    """Await a coroutine, or read an async generator (the async client's query) to its end."""
    if hasattr(result, "__aiter__"):
        return [item async for item in result]
    return await result


@pytest.mark.parametrize(("page", "words"), MALFORMED_PAGES)
@pytest.mark.parametrize("read", PAGE_READERS)
def test_a_malformed_page_is_a_coupa_error_sync_and_async(
    page: Any, words: str, read: Callable[[Any], Any], reliability_report: Callable[[str], None]
) -> None:
    """Issue 12 item 6: never a KeyError, TypeError or ValueError out of the client, whatever a page holds."""
    import asyncio

    from hostile_servers import HostileServer, json_reply, token_reply

    from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
    from airflow_provider_coupa_ihr.client.config import ClientConfig
    from airflow_provider_coupa_ihr.client.errors import CoupaError
    from airflow_provider_coupa_ihr.client.retry import RetryPolicy

    def script(request: Any) -> Any:
        return token_reply() if request.path.endswith("/token") else json_reply(page)

    errors: list[BaseException] = []
    with HostileServer(script) as server:
        config = ClientConfig(server.url, "id", "secret", rate_limit=None, retry=RetryPolicy(max_attempts=1))
        with CoupaClient(config) as client, pytest.raises(CoupaError) as blocking:
            _call_through(read, client)
        errors.append(blocking.value)

        async def awaiting() -> None:
            async with AsyncCoupaClient(config) as aclient:
                await _drain(read(aclient))

        with pytest.raises(CoupaError) as from_async:
            asyncio.run(awaiting())
        errors.append(from_async.value)
    reliability_report(f"{type(errors[0]).__name__} / {type(errors[1]).__name__}, not KeyError/TypeError/ValueError")
    for error in errors:
        assert not isinstance(error, CoupaValidationError)  # Coupa's answer is at fault, not the caller
        assert words in str(error)
        assert len(str(error)) < 1000


def test_the_catalogue_has_at_least_thirty_cases() -> None:
    total = (
        len(CLIENT_CASES)
        + len(HUGE_VALUE_CASES)
        + len(CONNECTION_CASES)
        + len(SECRET_CONNECTION_CASES)
        + len(_operators())
        + len(BULK_CASES)
        + len(TEMPLATE_CASES)
        + 1
    )
    assert total >= 30
