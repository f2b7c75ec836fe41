"""Model promotions go to the ledger, so every detection's model version is traceable."""

from __future__ import annotations

from typing import Any

from canteen_watch.config import Settings
from canteen_watch.db.base import write_transaction
from canteen_watch.ledger.sink import ledger_sink


def promotion_payload(record: dict[str, Any]) -> dict[str, Any]:
    """The ledger payload of one promotion record (metrics kept as the sink's exact decimals)."""
    return {
        "task": record["task"],
        "version": record["version"],
        "previous": record.get("previous"),
        "reason": record.get("reason"),
        "candidate_metrics": record.get("candidate_metrics") or {},
        "active_metrics": record.get("active_metrics") or {},
        "sha256": record["sha256"],
    }


def ledger_promotions(settings: Settings, actor: str = "system:trainer") -> None:
    """Register a promotion hook that appends ``model.promoted`` to this deployment's ledger."""
    from classifiers.registry import add_promotion_hook

    from canteen_watch.runtime import open_database

    def hook(record: dict[str, Any]) -> None:
        engine, sessions = open_database(settings)
        try:
            sink = ledger_sink(settings, sessions)
            with write_transaction(sessions) as session:
                sink.append(
                    session,
                    actor=actor,
                    action="model.promoted",
                    subject=f"model:{record['version']}",
                    payload=promotion_payload(record),
                )
        finally:
            engine.dispose()

    add_promotion_hook(hook)
