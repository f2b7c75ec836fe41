"""The registry of off-campus care institutions (校外托管机构).

* :mod:`~canteen_watch.registry.codes` - credit code (GB 32100-2015), licence and phone checks;
* :mod:`~canteen_watch.registry.institutions` - register, edit, status workflow, inspections, search;
* :mod:`~canteen_watch.registry.io` - CSV / Excel import with per-row errors, and export.

Names are imported lazily (``from canteen_watch.registry import register_institution``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "credit_check_character": "codes",
    "is_valid_credit_code": "codes",
    "normalise_credit_code": "codes",
    "normalise_licence": "codes",
    "normalise_phone": "codes",
    "Institution": "institutions",
    "InstitutionDetail": "institutions",
    "InstitutionEvent": "institutions",
    "InstitutionInput": "institutions",
    "Inspection": "institutions",
    "CameraInfo": "institutions",
    "check_institution": "institutions",
    "validate_institution": "institutions",
    "register_institution": "institutions",
    "update_institution": "institutions",
    "change_institution_status": "institutions",
    "record_inspection": "institutions",
    "get_institution": "institutions",
    "search_institutions": "institutions",
    "list_inspections": "institutions",
    "ImportReport": "io",
    "RowError": "io",
    "import_institutions": "io",
    "export_institutions": "io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'canteen_watch.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(f"canteen_watch.registry.{module}"), name)
