"""The pipeline's event sink: every accountable event goes to the ledger.

``canteen_watch.runtime.open_sink`` calls :func:`ledger_sink`. The sink's :meth:`LedgerSink.append`
matches ``canteen_watch.recording.EventSink`` and runs inside the caller's transaction.
Call :meth:`LedgerSink.tick` periodically (e.g. every minute from the scheduler): it makes the
time-based checkpoint in its own transaction and publishes the latest committed checkpoint.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.ledger.checkpoint import PRIVATE_KEY_FILE, VKEY_FILE, CheckpointPublisher, NoteError, load_signer, load_verifier
from canteen_watch.ledger.entry import Entry
from canteen_watch.ledger.store import Ledger

log = logging.getLogger(__name__)


def ledger_safe(value: Any) -> Any:
    """Make pipeline payloads canonical-JSON friendly without losing information.

    Floats become their shortest round-trip decimal text (``0.912345`` → ``"0.912345"``), so the
    hashed bytes never depend on a JSON library's float formatting; tuples become lists. NaN and
    infinities are rejected. Everything else is left for :func:`canonical_payload` to judge.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r} in a ledger payload")
        return repr(value)
    if isinstance(value, dict):
        return {k: ledger_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [ledger_safe(v) for v in value]
    return value


class LedgerSink:
    """Appends pipeline events to a :class:`Ledger` and publishes its checkpoints."""

    def __init__(self, ledger: Ledger, sessions: sessionmaker[Session] | None = None, publisher: CheckpointPublisher | None = None) -> None:
        self.ledger = ledger
        self.sessions = sessions
        self.publisher = publisher
        self._published_size = -1
        self._lock = threading.Lock()

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        subject: str,
        payload: dict[str, Any] | None = None,
        evidence: dict[str, Any] | Any | None = None,
        corrects: int | None = None,
    ) -> Entry:
        """Append one event inside the caller's transaction (see ``EventSink``)."""
        return self.ledger.append(
            session, actor=actor, action=action, subject=subject, payload=ledger_safe(payload or {}), evidence=evidence, corrects=corrects
        )

    def history(self, session: Session, *subjects: str) -> list[Entry]:
        """Ledger entries about ``subjects`` (e.g. ``"violation:17"``) and their corrections."""
        return self.ledger.history(session, *subjects)

    def tick(self, *, force: bool = False) -> dict[str, object] | None:
        """Make a due time-based checkpoint (any new entries with ``force``), then publish the latest one if it is new."""
        if self.sessions is None:
            return None
        from canteen_watch.db.base import write_transaction

        if self.ledger.signer is not None:
            with write_transaction(self.sessions) as session:
                if force:
                    self.ledger.checkpoint(session)
                else:
                    self.ledger.maybe_checkpoint(session)
        return self.publish_latest()

    def publish_latest(self) -> dict[str, object] | None:
        """Publish the latest committed checkpoint unless it was already published."""
        if self.publisher is None or self.sessions is None:
            return None
        with self.sessions() as session:
            try:
                checkpoint = self.ledger.latest_checkpoint(session)
            except NoteError as exc:
                log.error("latest ledger checkpoint does not verify; not publishing: %s", exc)
                return None
        if checkpoint is None:
            return None
        with self._lock:
            if checkpoint.size <= self._published_size:
                return None
            result = self.publisher.publish(checkpoint)
            self._published_size = checkpoint.size
        if "webhook_error" in result:
            log.warning("checkpoint webhook failed: %s", result["webhook_error"])
        return result


def ledger_sink(settings: Any, sessions: sessionmaker[Session] | None = None, *, webhook_url: str | None = None) -> LedgerSink:
    """The sink for a deployment: key pair in ``<data_dir>/keys``, day files in ``<data_dir>/checkpoints``.

    Without a key pair the ledger still records and chains every event, but no checkpoint is
    signed until ``canteen-watch ledger keygen`` has been run (a warning says so).
    """
    data_dir = Path(getattr(settings, "data_dir", ".cw-data"))
    key_dir = data_dir / "keys"
    signer = None
    verifier = None
    if (key_dir / PRIVATE_KEY_FILE).exists():
        signer = load_signer(key_dir)
    elif (key_dir / VKEY_FILE).exists():
        verifier = load_verifier(key_dir)
    if signer is None:
        log.warning("no ledger signing key in %s: events are ledgered but no checkpoint is signed (run `canteen-watch ledger keygen`)", key_dir)
    publisher = CheckpointPublisher(folder=data_dir / "checkpoints", webhook_url=webhook_url)
    ledger = Ledger(signer=signer, verifier=verifier, checkpoint_every=1000, checkpoint_interval=timedelta(minutes=10))
    return LedgerSink(ledger, sessions, publisher)
