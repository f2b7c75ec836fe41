"""Tamper-evident ledger: hash chain, RFC 6962 Merkle tree, signed C2SP checkpoints.

Submodules:

* :mod:`~canteen_watch.ledger.canonical` - deterministic JSON, :func:`salted_hash`;
* :mod:`~canteen_watch.ledger.merkle` - RFC 6962 / 9162 hashes, proofs, verifiers;
* :mod:`~canteen_watch.ledger.entry` - the entry format and the bytes that are hashed;
* :mod:`~canteen_watch.ledger.checkpoint` - signed notes, checkpoints, keys, publication;
* :mod:`~canteen_watch.ledger.models` - ORM tables and append-only guards;
* :mod:`~canteen_watch.ledger.store` - the :class:`Ledger` service and :func:`record_event`;
* :mod:`~canteen_watch.ledger.verify` - full replay naming the first bad seq;
* :mod:`~canteen_watch.ledger.bundle` - evidence bundle export;
* :mod:`~canteen_watch.ledger.offline_verify` - ``canteen-watch-verify`` (stdlib + cryptography);
* :mod:`~canteen_watch.ledger.cli` - ``ledger_app`` (``canteen-watch ledger …``).

Names are imported lazily so that the offline verifier never pulls in SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "canonical_text": "canonical",
    "canonical_payload": "canonical",
    "salted_hash": "canonical",
    "new_salt": "canonical",
    "CanonicalError": "canonical",
    "PersonalDataError": "canonical",
    "Entry": "entry",
    "Evidence": "entry",
    "NoteSigner": "checkpoint",
    "NoteVerifier": "checkpoint",
    "SignedCheckpoint": "checkpoint",
    "CheckpointPublisher": "checkpoint",
    "keygen": "checkpoint",
    "load_signer": "checkpoint",
    "load_verifier": "checkpoint",
    "Ledger": "store",
    "Event": "store",
    "Actions": "store",
    "InclusionProof": "store",
    "ConsistencyProof": "store",
    "LedgerError": "store",
    "LedgerInconsistent": "store",
    "record_event": "store",
    "correct_entry": "store",
    "install_pg_guards": "models",
    "install_guards": "models",
    "verify_ledger": "verify",
    "VerifyReport": "verify",
    "export_bundle": "bundle",
    "ledger_app": "cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'canteen_watch.ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(f"canteen_watch.ledger.{module}"), name)
