"""One record per item of a list: a night's worth of exported invoices logged to Coupa at Coupa's rate limit.

The items usually come from XCom (``items=export_task.output``). Everything is validated before the first
request; the writes run on a few threads that share the process's token and its throttle, so the whole batch
stays under the connection's rate limit (Coupa: 25 requests/s, bursts of 20) and 429s are rare and absorbed by
the client. A retried task first finds the records an earlier try wrote and writes only the rest.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_coupa_ihr.operators.base import CoupaBaseOperator, coupa_errors

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.sync import CoupaClient

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
        with coupa_errors():
            writes = self._validated_writes()
            self.push_link(context, self.defaults.get("document_type") or _first(writes, "document_type"))
            outcomes: list[dict[str, Any] | None] = [None] * len(writes)
            since = self.first_try_started(context)
            if since is not None:
                for index, record_id in self._already_present(writes, since).items():
                    outcomes[index] = {"index": index, "status": "already_present", "id": record_id}
                present = sum(1 for o in outcomes if o)
                self.log.info("Retry: %d of %d records were written by an earlier try", present, len(writes))
            todo = [i for i, o in enumerate(outcomes) if o is None]
            self._write_all(writes, todo, outcomes)
        return self._finish([o for o in outcomes if o is not None])

    def _validated_writes(self) -> list[tuple[str, dict[str, Any]]]:
        """(action, fields) per item, every item checked before anything is sent; all problems reported at once."""
        from airflow_provider_coupa_ihr.client.errors import CoupaError, CoupaValidationError
        from airflow_provider_coupa_ihr.client.operations import RECORD_ACTIONS
        from airflow_provider_coupa_ihr.client.payloads import build_payload

        items = self.items
        if isinstance(items, Mapping) or not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
            raise CoupaValidationError([f"items must be a list of dicts of record fields, got {type(items).__name__}"])
        writes: list[tuple[str, dict[str, Any]]] = []
        problems: list[str] = []
        types = self.hook.config.extra_document_types
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                problems.append(f"item {index}: must be a dict of record fields, got {type(item).__name__}")
                continue
            fields = {**self.defaults, **item}
            action = str(fields.pop("action", self.action))
            try:
                if action not in RECORD_ACTIONS:
                    raise CoupaValidationError([f"action must be one of {', '.join(RECORD_ACTIONS)}, got {action!r}"])
                build_payload(fields, extra_document_types=types)
            except CoupaError as exc:
                problems.extend(f"item {index}: {p}" for p in getattr(exc, "problems", [str(exc)]))
            writes.append((action, fields))
        if problems:
            shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
            raise CoupaValidationError(shown, what="batch (nothing was sent)")
        return writes

    def _already_present(self, writes: Sequence[tuple[str, dict[str, Any]]], since: float) -> dict[int, int]:
        """Item index -> id of the record an earlier try wrote for it (each stored record matches one item)."""
        from airflow_provider_coupa_ihr.client.operations import is_same_write
        from airflow_provider_coupa_ihr.client.payloads import build_payload
        from airflow_provider_coupa_ihr.client.records import to_python_keys

        sent = [to_python_keys(build_payload(fields)) for _, fields in writes]
        by_type: dict[str, set[int]] = defaultdict(set)
        for fields in sent:
            by_type[fields["document_type"]].add(int(fields["document_id"]))
        stored: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        since_iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(since))
        for document_type, ids in by_type.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), 50):
                filters = {
                    "document_type": document_type,
                    "document_id[in]": ordered[start : start + 50],
                    "created_at[gt_or_eq]": since_iso,
                }
                for record in self.client.query_records(filters):
                    stored[(document_type, int(record["document_id"]))].append(record)
        found: dict[int, int] = {}
        for index, fields in enumerate(sent):
            candidates = stored.get((fields["document_type"], int(fields["document_id"])), [])
            match = next((r for r in candidates if is_same_write(r, fields)), None)
            if match is not None:
                candidates.remove(match)
                found[index] = int(match["id"])
        return found

    def _write_all(
        self, writes: Sequence[tuple[str, dict[str, Any]]], todo: list[int], outcomes: list[dict[str, Any] | None]
    ) -> None:
        from airflow_provider_coupa_ihr.client.errors import CoupaError
        from airflow_provider_coupa_ihr.client.sync import CoupaClient

        config = self.hook.config
        local = threading.local()

        def client() -> CoupaClient:
            if not hasattr(local, "client"):
                from airflow.providers.common.compat.sdk import mask_secret

                local.client = CoupaClient(config, mask_secret=mask_secret)
            return local.client  # type: ignore[no-any-return]

        def write(index: int) -> dict[str, Any]:
            action, fields = writes[index]
            try:
                record = client().create_record(action=action, **fields)
            except CoupaError as exc:
                return {"index": index, "status": "failed", "id": None, "error": str(exc), "retryable": exc.retryable}
            return {"index": index, "status": "created", "id": record["id"]}

        progress = BulkProgress(total=len(todo), started=time.monotonic())
        next_log = progress.started + self.progress_interval
        with ThreadPoolExecutor(
            max_workers=min(self.max_workers, max(1, len(todo))), thread_name_prefix="coupa"
        ) as pool:
            pending: set[Future[dict[str, Any]]] = {pool.submit(write, i) for i in todo}
            while pending:
                finished, pending = wait(
                    pending, timeout=max(0.1, next_log - time.monotonic()), return_when=FIRST_COMPLETED
                )
                for future in finished:
                    outcome = future.result()
                    outcomes[outcome["index"]] = outcome
                    progress.done += 1
                    progress.failed += outcome["status"] == "failed"
                if time.monotonic() >= next_log:
                    self.log.info("Coupa bulk %s: %s", self.action, progress.line(time.monotonic()))
                    next_log = time.monotonic() + self.progress_interval
        self.log.info("Coupa bulk %s finished: %s", self.action, progress.line(time.monotonic()))

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
