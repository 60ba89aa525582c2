"""One record per item of a list: a night's worth of exported invoices logged to Coupa at Coupa's rate limit.

The items usually come from XCom (``items=export_task.output``). Everything is validated before the first
request; the writes run on a few threads that share the process's token and its throttle, so the whole batch
stays under the connection's rate limit (Coupa: 25 requests/s, bursts of 20) and 429s are rare and absorbed by
the client. A retried task first finds the records an earlier try wrote and writes only the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_coupa_ihr.operators.base import CoupaBaseOperator

__all__ = ["BulkProgress", "CoupaBulkCreateRecordsOperator"]


@dataclass
class BulkProgress:
    """Counts and pace of a running batch, for the progress log line."""

    total: int
    started: float
    done: int = 0
    failed: int = 0

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        return f"{self.done}/{self.total} done ({self.failed} failed), {rate:.1f} records/s, ETA {eta}"


class CoupaBulkCreateRecordsOperator(CoupaBaseOperator):
    """Create one integration history record (or alert, or export mark) per item.

    :param items: a list of dicts of record fields (snake_case, as for ``CoupaCreateRecordOperator``), usually
        an upstream task's XCom. Each item is merged over ``defaults``.
    :param defaults: fields common to every item (``document_type``, ``integration``, ``contact_alert_type``...).
    :param action: ``create``, ``create_alert``, ``mark_exported``, ``create_alert_and_mark_exported``,
        ``acknowledge``; or put ``action`` in an item to choose per item (Success via ``mark_exported``, Error
        via ``create_alert``, say).
    :param max_workers: threads writing at once; the throttle, not this, sets the pace.
    :param on_partial_failure: ``fail`` (the task fails, and a retry writes only what is missing) or ``warn``
        (the task succeeds and the outcomes say which items failed).
    :param progress_interval: seconds between progress log lines.

    Returns (XCom) ``{"total", "created", "already_present", "failed", "outcomes": [...]}``, one outcome per item
    in order: ``{"index", "status": "created"|"already_present"|"failed", "id", "error"}``.
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
            present: dict[int, int] = {}
            since = self.first_try_started(context)
            if since is not None:
                present = hook.find_existing_records([fields for _, fields in planned], since)
                self.log.info("Retry: %d of %d records were written by an earlier try", len(present), len(planned))
            progress = BulkProgress(total=len(planned) - len(present), started=time.monotonic())
            written = hook.create_records(
                planned, max_workers=self.max_workers, skip=present.keys(), on_outcome=self._progress_logger(progress)
            )
            self.log.info("Coupa bulk %s finished: %s", self.action, progress.line(time.monotonic()))
        already = [{"index": i, "status": "already_present", "id": record_id} for i, record_id in present.items()]
        return self._finish(sorted([*already, *written], key=lambda o: int(o["index"])))

    def _progress_logger(self, progress: BulkProgress) -> Callable[[dict[str, Any]], None]:
        """Counts each outcome as it comes and logs a progress line every ``progress_interval`` seconds."""
        next_log = progress.started + self.progress_interval

        def count(outcome: dict[str, Any]) -> None:
            nonlocal next_log
            progress.done += 1
            progress.failed += outcome["status"] == "failed"
            if time.monotonic() >= next_log:
                self.log.info("Coupa bulk %s: %s", self.action, progress.line(time.monotonic()))
                next_log = time.monotonic() + self.progress_interval

        return count

    def _finish(self, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
        failed = [o for o in outcomes if o["status"] == "failed"]
        result = {
            "total": len(outcomes),
            "created": sum(o["status"] == "created" for o in outcomes),
            "already_present": sum(o["status"] == "already_present" for o in outcomes),
            "failed": len(failed),
            "outcomes": [{k: v for k, v in o.items() if k != "retryable"} for o in outcomes],
        }
        if failed:
            examples = "; ".join(f"item {o['index']}: {o['error']}" for o in failed[:3])
            message = f"{len(failed)} of {len(outcomes)} records were not written. First failures: {examples}"
            if self.on_partial_failure == "warn":
                self.log.warning(message)
            elif any(o.get("retryable") for o in failed):
                raise AirflowException(message + " A retry writes only the missing records.")
            else:
                raise AirflowFailException(message)
        return result


def _first(writes: Sequence[tuple[str, dict[str, Any]]], name: str) -> Any:
    return writes[0][1].get(name) if writes else None
