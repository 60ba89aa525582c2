"""One record per item of a list: a night's worth of exported invoices logged to Coupa at Coupa's rate limit.

The items usually come from XCom (``items=export_task.output``). Everything is validated before the first
request; the writes run on a few threads that share the process's token and its throttle, so the whole batch
stays under the connection's rate limit (Coupa: 25 requests/s, bursts of 20) and 429s are rare and absorbed by
the client. A retried task first finds the records an earlier try wrote and writes only the rest; where that
lookup fails, or where a write's outcome cannot be known, it fails again (retryably) rather than guess, so
each Airflow try makes progress and the last one leaves every record in Coupa exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_coupa_ihr.operators.base import CoupaBaseOperator

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

__all__ = ["BULK_OUTCOMES_XCOM_KEY", "LOOKUP_ROUNDS", "BulkProgress", "CoupaBulkCreateRecordsOperator"]

#: The XCom key under which a try that fails leaves its result (the same dict a successful try returns).
BULK_OUTCOMES_XCOM_KEY = "coupa_bulk_outcomes"
#: Lookups a retry makes at most for a chunk (50 documents) whose lookup keeps failing, before it leaves the
#: chunk to the next try. Each lookup is itself retried within the connection's ``max_attempts``.
LOOKUP_ROUNDS = 3


@dataclass
class BulkProgress:
    """Counts and pace of a running batch, for the progress log line."""

    total: int
    started: float
    done: int = 0
    failed: int = 0
    unknown: int = 0

    def count(self, status: str) -> None:
        self.done += 1
        self.failed += status == "failed"
        self.unknown += status == "unknown"

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        problems = f"{self.failed} failed" + (f", {self.unknown} outcome unknown" if self.unknown else "")
        return f"{self.done}/{self.total} done ({problems}), {rate:.1f} records/s, ETA {eta}"


class CoupaBulkCreateRecordsOperator(CoupaBaseOperator):
    """Create one integration history record (or alert, or export mark) per item.

    :param items: a list of dicts of record fields (snake_case, as for ``CoupaCreateRecordOperator``), usually
        an upstream task's XCom. Each item is merged over ``defaults``.
    :param defaults: fields common to every item (``document_type``, ``integration``, ``contact_alert_type``...).
    :param action: ``create``, ``create_alert``, ``mark_exported``, ``create_alert_and_mark_exported``,
        ``acknowledge``; or put ``action`` in an item to choose per item (Success via ``mark_exported``, Error
        via ``create_alert``, say).
    :param max_workers: threads writing at once; the throttle, not this, sets the pace.
    :param on_partial_failure: what items Coupa refused do to the task: ``fail`` (it fails; retryably when a
        retry may help, and a retry writes only what is missing) or ``warn`` (it succeeds and the outcomes say
        which items failed). Items whose outcome is ``unknown`` or that were ``not_looked_up`` always fail the
        task retryably, whatever this says: only the next try's lookup can tell whether they are in Coupa.
    :param progress_interval: seconds between progress log lines.

    Each item ends with one ``status``:

    - ``created``: written by this try.
    - ``already_present``: written by an earlier try (a retry looks first, 50 documents per query) and left be.
    - ``failed``: not in Coupa: Coupa refused it (a 400 names the field), or it surely never reached Coupa
      (connection refused, 429, 503) within the client's attempts.
    - ``unknown``: may be in Coupa: the answer to its create was lost after sending, or a 500/502/504 came
      after Coupa may have acted, and the client's own lookup could not tell (or its attempts ran out first).
      Writing it again blindly could make a duplicate; the next try looks it up.
    - ``not_looked_up``: not written, because on this retry the lookup of an earlier try's writes kept failing
      for its chunk of 50 documents (asked up to :data:`LOOKUP_ROUNDS` times); the next try looks it up again.
      The chunks that were looked up are written all the same.

    Returns (XCom) ``{"total", "created", "already_present", "failed", "unknown", "not_looked_up",
    "outcomes": [...]}``, one outcome per item in order: ``{"index", "status", "id", "error"}`` (``id`` of the
    record for ``created`` and ``already_present``, else None; ``error`` for the other statuses). A try that
    fails leaves the same dict under the XCom key ``coupa_bulk_outcomes``, and its message counts each status.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id", "items", "defaults", "action")
    template_fields_renderers: ClassVar[dict[str, str]] = {"defaults": "json"}

    def __init__(
        self,
        *,
        items: Any,
        defaults: Mapping[str, Any] | None = None,
        action: str = "create",
        max_workers: int = 8,
        on_partial_failure: Literal["fail", "warn"] = "fail",
        progress_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_partial_failure not in ("fail", "warn"):
            raise ValueError(f"on_partial_failure must be 'fail' or 'warn', got {on_partial_failure!r}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be 1 or more, got {max_workers!r}")
        self.items = items
        self.defaults = dict(defaults or {})
        self.action = action
        self.max_workers = max_workers
        self.on_partial_failure = on_partial_failure
        self.progress_interval = progress_interval

    # ------------------------------------------------------------------------------------------ steps
    def execute(self, context: Any) -> dict[str, Any]:
        with self.calling_coupa() as hook:
            planned = hook.plan_records(self.items, defaults=self.defaults, action=self.action)
            self.push_link(context, self.defaults.get("document_type") or _first(planned, "document_type"))
            progress = BulkProgress(total=0, started=time.monotonic())
            since = self.first_try_started(context)
            if since is None:
                outcomes = self._write(hook, planned, range(len(planned)), progress)
            else:
                outcomes = self._write_what_earlier_tries_did_not(hook, planned, since, progress)
            self.log.info("Coupa bulk %s finished: %s", self.action, progress.line(time.monotonic()))
        return self._finish(context, sorted(outcomes, key=lambda o: int(o["index"])))

    def _write(
        self,
        hook: CoupaHook,
        planned: Sequence[tuple[str, dict[str, Any]]],
        todo: Iterable[int],
        progress: BulkProgress,
    ) -> list[dict[str, Any]]:
        wanted = set(todo)
        progress.total += len(wanted)
        skip = [i for i in range(len(planned)) if i not in wanted]
        logger = self._progress_logger(progress)
        return hook.create_records(planned, max_workers=self.max_workers, skip=skip, on_outcome=logger)

    def _write_what_earlier_tries_did_not(
        self, hook: CoupaHook, planned: Sequence[tuple[str, dict[str, Any]]], since: float, progress: BulkProgress
    ) -> list[dict[str, Any]]:
        """A retry: look for what earlier tries wrote, 50 documents per query, and write the rest.

        The items of each chunk looked up are written at once; a chunk whose lookup failed is asked again after
        those writes, up to :data:`LOOKUP_ROUNDS` lookups in all. Asking again in the same try matters because
        every try looks up every item: a try that needed all its twenty-odd queries to succeed at once would
        never succeed on a flaky network, however many records earlier tries wrote.
        """
        items = [fields for _, fields in planned]
        outcomes: list[dict[str, Any]] = []
        pending: Collection[int] | None = None
        for lookup_round in range(1, LOOKUP_ROUNDS + 1):
            earlier = hook.look_up_earlier_writes(items, since, among=pending)
            self.log.info(
                "Retry, lookup %d: %d of %d items were written by an earlier try, %d are to write",
                lookup_round,
                len(earlier.found),
                len(items) if pending is None else len(pending),
                len(earlier.missing),
            )
            outcomes += earlier.already_present()
            outcomes += self._write(hook, planned, earlier.missing, progress)
            if not earlier.not_looked_up:
                return outcomes
            pending = earlier.not_looked_up.keys()
            self.log.warning(
                "Retry, lookup %d failed for %d of %d chunks (%d items), not written yet: %s",
                lookup_round,
                earlier.chunks_failed,
                earlier.chunks,
                len(pending),
                next(iter(earlier.not_looked_up.values())),
            )
        return outcomes + earlier.unchecked()

    def _progress_logger(self, progress: BulkProgress) -> Callable[[dict[str, Any]], None]:
        """Counts each outcome as it comes and logs a progress line every ``progress_interval`` seconds."""
        next_log = progress.started + self.progress_interval

        def count(outcome: dict[str, Any]) -> None:
            nonlocal next_log
            progress.count(str(outcome["status"]))
            if time.monotonic() >= next_log:
                self.log.info("Coupa bulk %s: %s", self.action, progress.line(time.monotonic()))
                next_log = time.monotonic() + self.progress_interval

        return count

    def _finish(self, context: Any, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
        from airflow_provider_coupa_ihr.client.batch import FAILED, RETRY_SETTLES, count_outcomes, describe_outcomes

        result = {
            "total": len(outcomes),
            **count_outcomes(outcomes),
            "outcomes": [{k: v for k, v in o.items() if k != "retryable"} for o in outcomes],
        }
        unsettled = any(o["status"] in RETRY_SETTLES for o in outcomes)
        failed = [o for o in outcomes if o["status"] == FAILED]
        if not unsettled and not failed:
            return result
        message = f"Coupa bulk {self.action}: {describe_outcomes(outcomes)}"
        if not unsettled and self.on_partial_failure == "warn":
            self.log.warning(message)
            return result
        context["ti"].xcom_push(key=BULK_OUTCOMES_XCOM_KEY, value=result)
        if unsettled or any(o.get("retryable") for o in failed):
            raise AirflowException(
                f"{message} A retry looks up what this try may have written and writes only what is missing."
            )
        raise AirflowFailException(message)


def _first(writes: Sequence[tuple[str, dict[str, Any]]], name: str) -> Any:
    return writes[0][1].get(name) if writes else None
