"""Shared helpers for the ledger tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.db.base import Base, make_engine, make_session_factory, write_transaction
from canteen_watch.ledger.checkpoint import NoteSigner, NoteVerifier, keygen, load_signer
from canteen_watch.ledger.models import checkpoints_table, entries_table, install_guards, nodes_table, remove_guards
from canteen_watch.ledger.store import Ledger
from canteen_watch.ledger.verify import VerifyReport, verify_ledger

ORIGIN = "canteen-watch.test/ledger"
LEDGER_TABLES = [entries_table, nodes_table, checkpoints_table]


@dataclass
class LedgerEnv:
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    ledger: Ledger
    signer: NoteSigner
    key_dir: Path

    @property
    def verifier(self) -> NoteVerifier:
        return self.signer.verifier

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def append_events(self, count: int, *, batch: int = 0, subject: str = "violation:1", **extra: Any) -> None:
        events = [
            dict(actor="system:test", action="violation.reviewed", subject=subject, payload={"i": i, **extra}) for i in range(count)
        ]
        if batch:
            for start in range(0, count, batch):
                with write_transaction(self.factory) as session:
                    self.ledger.append_many(session, events[start : start + batch])
        else:
            for event in events:
                with write_transaction(self.factory) as session:
                    self.ledger.append(session, **event)

    def checkpoint(self):  # type: ignore[no-untyped-def]
        with write_transaction(self.factory) as session:
            return self.ledger.checkpoint(session)

    def verify(self, trusted: list[str] | None = None) -> VerifyReport:
        with self.factory() as session:
            return verify_ledger(session, self.verifier, trusted=trusted or [])

    def tamper(self, *statements: tuple[str, dict[str, Any]] | str) -> None:
        """Run SQL bypassing the append-only guards, as a database administrator could."""
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SET LOCAL session_replication_role = replica"))
            else:
                remove_guards(connection)
            for statement in statements:
                sql, params = (statement, {}) if isinstance(statement, str) else statement
                connection.execute(text(sql), params)
            if self.dialect == "sqlite":
                install_guards(connection)


@pytest.fixture(scope="session")
def ledger_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ledger-keys")
    keygen(folder, ORIGIN)
    return folder


def make_env(url: str, key_dir: Path, **ledger_options: Any) -> LedgerEnv:
    engine = make_engine(url)
    Base.metadata.create_all(engine, tables=LEDGER_TABLES)
    signer = load_signer(key_dir)
    options = {"checkpoint_every": 10_000, "checkpoint_interval": None} | ledger_options
    return LedgerEnv(url, engine, make_session_factory(engine), Ledger(signer=signer, **options), signer, key_dir)


@pytest.fixture
def env(db_url: str, ledger_key_dir: Path) -> Iterator[LedgerEnv]:
    """A ledger on a fresh SQLite file or PostgreSQL database (the lead's ``db_url`` fixture)."""
    environment = make_env(db_url, ledger_key_dir)
    yield environment
    environment.engine.dispose()


@pytest.fixture
def sqlite_env(tmp_path: Path, ledger_key_dir: Path) -> Iterator[LedgerEnv]:
    environment = make_env(f"sqlite:///{tmp_path / 'ledger.db'}", ledger_key_dir)
    yield environment
    environment.engine.dispose()
