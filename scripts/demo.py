"""The README's first command lands here: start the Coupa emulator, exercise it, show what landed.

Until the operators exist this speaks Coupa's REST API directly (as an ERP integration would), then prints the
emulator's own view of what was written.
"""

from __future__ import annotations

import requests

from airflow_provider_coupa_ihr.testing import CoupaEmulator


def main() -> None:
    with CoupaEmulator() as coupa:
        coupa.add_integration("ERP-INVOICES", name="Invoices to the ERP")
        print(f"Coupa emulator on {coupa.url}\n")
        session = requests.Session()
        token = session.post(
            f"{coupa.url}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": coupa.client.client_id,
                "client_secret": coupa.client.client_secret,
                "scope": "core.integration.read core.integration.write",
            },
            timeout=10,
        ).json()["access_token"]
        session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        api = f"{coupa.url}/api/integration_history_records"
        for invoice_id, erp_answer in ((101, None), (102, "Supplier 88 is blocked in the ERP"), (103, None)):
            record = {
                "document-type": "InvoiceHeader",
                "document-id": invoice_id,
                "contact-alert-type": "Functional",
                "integration": {"code": "ERP-INVOICES"},
            }
            if erp_answer is None:
                session.post(
                    f"{api}/mark_exported", json={**record, "status": "Success"}, timeout=10
                ).raise_for_status()
            else:
                responses = [{"response-code": "ERP-409", "response-message": erp_answer}]
                session.post(
                    f"{api}/create_alert", json={**record, "status": "Error", "responses": responses}, timeout=10
                ).raise_for_status()
        unresolved = session.get(api, params={"resolved": "false", "status": "Error"}, timeout=10).json()
        print(f"Unresolved errors found by query: {[r['id'] for r in unresolved]}\n")
        print(coupa.summary())


if __name__ == "__main__":
    main()
