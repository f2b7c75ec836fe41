"""The closed loop: detections → violations → review → rectification → re-check, with escalation,
notifications and evidence holds.

Modules (small and single-purpose):

* :mod:`~canteen_watch.workflows.tiers` - :class:`WorkflowSettings` (``settings.workflows``);
* :mod:`~canteen_watch.workflows.models` - every table of migration ``0003_workflows``;
* :mod:`~canteen_watch.workflows.states` - state machines and :class:`TransitionError`;
* :mod:`~canteen_watch.workflows.violations` - :func:`fold_detections`, review, read functions;
* :mod:`~canteen_watch.workflows.rectification` - submission (photo in S3) and re-check;
* :mod:`~canteen_watch.workflows.escalation` - :func:`escalate_overdue` (scheduled);
* :mod:`~canteen_watch.workflows.notifications` - outbox, endpoints, :func:`deliver_due` (scheduled);
* :mod:`~canteen_watch.workflows.evidence` - evidence holds (S3 legal hold) and verification;
* :mod:`~canteen_watch.workflows.types`, :mod:`~canteen_watch.workflows.errors`,
  :mod:`~canteen_watch.workflows.validation`, :mod:`~canteen_watch.workflows.spreadsheet`.

Names are imported lazily (``from canteen_watch.workflows import fold_detections``), so importing
the package costs nothing and cannot create import cycles.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "WorkflowSettings": "tiers",
    "TierConfig": "tiers",
    "NotificationSettings": "tiers",
    "LoginPolicy": "tiers",
    "DEFAULT_TIERS": "tiers",
    "WorkflowError": "errors",
    "NotFoundError": "errors",
    "InputError": "errors",
    "PermissionDenied": "errors",
    "TransitionError": "errors",
    "EvidenceError": "errors",
    "ConflictError": "errors",
    "ViolationState": "states",
    "ViolationAction": "states",
    "InstitutionStatus": "states",
    "InstitutionAction": "states",
    "VIOLATION_MACHINE": "states",
    "INSTITUTION_MACHINE": "states",
    "Page": "types",
    "Violation": "types",
    "ViolationDetail": "types",
    "ViolationStats": "types",
    "Review": "types",
    "Rectification": "types",
    "EvidenceObject": "types",
    "EvidenceCheck": "types",
    "HistoryEntry": "types",
    "fold_detections": "violations",
    "review_violation": "violations",
    "list_violations": "violations",
    "violation_detail": "violations",
    "review_queue": "violations",
    "violation_stats": "violations",
    "submit_rectification": "rectification",
    "recheck_rectification": "rectification",
    "escalate_overdue": "escalation",
    "EscalationReport": "escalation",
    "set_evidence_hold": "evidence",
    "verify_evidence": "evidence",
    "HoldResult": "evidence",
    "add_endpoint": "notifications",
    "set_endpoint_active": "notifications",
    "list_endpoints": "notifications",
    "deliver_due": "notifications",
    "requeue_dead": "notifications",
    "outbox": "notifications",
    "verify_signature": "notifications",
    "DeliveryReport": "notifications",
    "Endpoint": "notifications",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'canteen_watch.workflows' has no attribute {name!r}")
    return getattr(importlib.import_module(f"canteen_watch.workflows.{module}"), name)
