"""A plain-text picture of what landed in the emulated Coupa: records, alerts, exported documents, runs.

Used by the demo and handy in a failing test (``print(coupa_emulator.summary())``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_coupa_ihr.testing.state import CoupaState


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; ``-`` for empty cells."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _first_response(record: dict[str, Any]) -> str:
    responses = record.get("responses") or []
    if not responses:
        return ""
    first = responses[0]
    text = f"{first.get('response-code') or ''} {first.get('response-message') or ''}".strip()
    return text if len(text) <= 48 else text[:45] + "..."


def summary(state: CoupaState) -> str:
    records = state.snapshot(state.records)
    parts = [
        f"Integration history records ({len(records)})",
        table(
            ["id", "document", "status", "resolved", "integration", "run", "response"],
            [
                (
                    r["id"],
                    f"{r['document-type']} #{r['document-id']}",
                    r.get("status"),
                    "yes" if r.get("resolved") else "no",
                    (r.get("integration") or {}).get("code"),
                    r.get("integration-run-id"),
                    _first_response(r),
                )
                for r in records
            ],
        ),
    ]
    alerts = state.effects("alert")
    parts += [
        f"\nAlerts raised ({len(alerts)})",
        table(
            ["record", "document", "contacts alerted", "integration"],
            [
                (a.record_id, f"{a.document_type} #{a.document_id}", a.contact_alert_type, a.integration_code)
                for a in alerts
            ],
        ),
    ]
    exported = state.effects("exported")
    parts += [
        f"\nDocuments marked exported ({len(exported)})",
        table(["record", "document"], [(e.record_id, f"{e.document_type} #{e.document_id}") for e in exported]),
    ]
    runs = state.snapshot(state.runs)
    if runs:
        parts += [
            f"\nIntegration runs ({len(runs)})",
            table(
                ["id", "integration", "status", "started", "ended"],
                [
                    (
                        r["id"],
                        (r.get("integration") or {}).get("code"),
                        r["status"],
                        r.get("start-time"),
                        r.get("end-time"),
                    )
                    for r in runs
                ],
            ),
        ]
    return "\n".join(parts)
