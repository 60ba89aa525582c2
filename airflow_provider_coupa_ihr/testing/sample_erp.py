"""A stand-in ERP for the example DAGs and the demo: deterministic, so they always see the same outcome.

Replace these two functions with your own extract and load steps.
"""

from __future__ import annotations

from typing import Any

#: Why the stand-in ERP refuses some invoices (every fourth one).
REFUSALS = (
    ("ERP-409", "Supplier {supplier} is blocked for payment in the ERP"),
    ("ERP-422", "Cost center {cost_center} does not exist in company code 1000"),
)


def approved_invoices(count: int = 12, first_id: int = 1001) -> list[dict[str, Any]]:
    """What a nightly export reads from Coupa: approved invoices not yet exported."""
    return [
        {"invoice_id": first_id + i, "supplier": 880 + i % 5, "cost_center": f"CC-{100 + i}", "amount": 100.0 * (i + 1)}
        for i in range(count)
    ]


def post_to_erp(invoice: dict[str, Any]) -> dict[str, Any]:
    """Post one invoice to the ERP; returns the ERP's verdict."""
    invoice_id = int(invoice["invoice_id"])
    if invoice_id % 4 == 0:
        code, message = REFUSALS[invoice_id % 8 // 4]
        return {"invoice_id": invoice_id, "ok": False, "code": code, "message": message.format(**invoice)}
    return {"invoice_id": invoice_id, "ok": True, "erp_document": f"5100{invoice_id:06d}"}
