"""Where accountable events go: the sink protocol the ledger implements."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session


class EventSink(Protocol):
    """Where accountable events go (the tamper-evident ledger)."""

    def append(self, session: Session, *, actor: str, action: str, subject: str, payload: dict[str, Any], evidence: dict[str, Any] | None = None) -> Any:
        """Append one event inside the caller's transaction."""
        ...


class NullSink:
    """Drops events; used only where no ledger is configured (never by the CLI)."""

    def append(self, session: Session, *, actor: str, action: str, subject: str, payload: dict[str, Any], evidence: dict[str, Any] | None = None) -> None:
        return None
