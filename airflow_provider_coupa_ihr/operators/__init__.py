"""Operators for Coupa's Integration History Record API.

Import them from their modules (``airflow_provider_coupa_ihr.operators.records``, ``.bulk``, ``.runs``,
``.lifecycle``); this
package re-exports them lazily so ``from airflow_provider_coupa_ihr.operators import CoupaCreateRecordOperator``
also works without loading every module.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CoupaCreateRecordOperator": "records",
    "CoupaCreateAlertOperator": "records",
    "CoupaMarkExportedOperator": "records",
    "CoupaCreateAlertAndMarkExportedOperator": "records",
    "CoupaAcknowledgeOperator": "records",
    "CoupaUpdateRecordOperator": "records",
    "CoupaResolveRecordsOperator": "records",
    "CoupaUnresolveRecordsOperator": "records",
    "CoupaQueryRecordsOperator": "records",
    "CoupaBulkCreateRecordsOperator": "bulk",
    "CoupaStartIntegrationRunOperator": "runs",
    "CoupaFinishIntegrationRunOperator": "runs",
    "CoupaFinishIntegrationRunAfterTasksOperator": "lifecycle",
    "coupa_integration_run": "lifecycle",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
