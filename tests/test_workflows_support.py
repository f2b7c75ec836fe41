"""Shared helpers for the workflow, registry, auth, retention, notification and report tests (no tests here).

Every helper uses real parts: the lead's ``db_url`` databases (SQLite file and PostgreSQL), the
real ledger (:class:`LedgerSink` over :class:`Ledger`), the embedded S3 server, argon2 hashing.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
import hashlib
import itertools
import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Role, Scope, User, add_user, get_user, hash_password, system_actor
from canteen_watch.config import StorageConfig
from canteen_watch.db.base import Base, make_engine, make_session_factory, write_transaction
from canteen_watch.db.models import CameraRow, DetectionRow, SiteRow, SnapshotRow
from canteen_watch.ledger import models as ledger_models  # noqa: F401  (registers the ledger tables)
from canteen_watch.ledger.models import entries_table
from canteen_watch.ledger.sink import LedgerSink
from canteen_watch.ledger.store import Ledger
from canteen_watch.ledger.verify import verify_ledger
from canteen_watch.storage import SnapshotStore
from canteen_watch.workflows import models as workflow_models  # noqa: F401  (registers the workflow tables)
from canteen_watch.workflows.models import UserRow, UserScopeRow
from canteen_watch.workflows.tiers import WorkflowSettings
from canteen_watch.workflows.types import Violation
from canteen_watch.workflows.violations import fold_detections

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
S3_ACCESS = "cw-test-access"
S3_SECRET = "cw-test-secret-key"
PASSWORD = "correct horse battery"

#: Jurisdiction used by every test: two districts, three sites, one camera each.
SITES = (
    ("s-a", "No. 1 Primary School canteen", "school_canteen", "Central"),
    ("s-b", "Sunshine After-school Care", "care_institution", "Central"),
    ("s-c", "North Middle School canteen", "school_canteen", "North"),
)
CAMERAS = (("cam-a", "s-a"), ("cam-b", "s-b"), ("cam-c", "s-c"))
#: Role -> scopes of the standard test users.
STANDARD_USERS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "manager": (Role.MANAGER, ("site:s-a",)),
    "inspector": (Role.INSPECTOR, ("district:Central",)),
    "registrar": (Role.REGISTRAR, ("district:Central",)),
    "auditor": (Role.AUDITOR, ()),
    "admin": (Role.ADMIN, ()),
}


_slots = itertools.count(1)  # slot times must be unique per camera; captured_at is the real time


@functools.cache
def password_hash() -> str:
    """One argon2 hash of :data:`PASSWORD`, computed once per test session."""
    return hash_password(PASSWORD)


class Clock:
    """A controllable clock: ``clock()`` is now, ``clock.advance(hours=1)`` moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class WorkflowEnv:
    """A database with the whole schema, a real ledger, seeded sites, cameras and users."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    ledger: Ledger
    sink: LedgerSink
    config: WorkflowSettings
    users: dict[str, User] = field(default_factory=dict)
    system: User = field(default_factory=lambda: system_actor("test"))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def user(self, name: str) -> User:
        return self.users[name]

    def add_user(self, username: str, role: Role, scopes: Sequence[str] = ()) -> User:
        """Create a user through the service (argon2 hashing, ledgered): slow, ~0.3 s."""
        return add_user(self.sessions, self.sink, self.system, username, PASSWORD, role, scopes, now=T0)

    def quick_user(self, username: str, role: Role, scopes: Sequence[str] = ()) -> User:
        """Insert a user row directly, reusing one precomputed hash of :data:`PASSWORD` (setup only)."""
        with write_transaction(self.sessions) as session:
            row = UserRow(username=username, password_hash=password_hash(), role=role.value, active=True, created_at=T0, failed_logins=0)
            session.add(row)
            session.flush()
            for text in scopes or (("city",) if role in (Role.ADMIN, Role.AUDITOR) else ()):
                scope = Scope.parse(text)
                session.add(UserScopeRow(user_id=row.id, level=scope.level.value, ref=scope.ref))
            session.flush()
            return get_user(session, row.id)

    def snapshot(
        self,
        camera_id: str,
        at: datetime,
        labels: Sequence[str | tuple[str, float]],
        *,
        store: SnapshotStore | None = None,
        fold: bool = True,
        now: datetime | None = None,
    ) -> tuple[int, list[Violation]]:
        """Record a stored snapshot with detections and fold them, in one transaction (as the pipeline does)."""
        site_id = dict(CAMERAS).get(camera_id)
        if site_id is None:
            with self.sessions() as session:
                site_id = session.get(CameraRow, camera_id).site_id
        data = f"jpeg {camera_id} {at.isoformat()} {uuid.uuid4().hex}".encode()
        sha = hashlib.sha256(data).hexdigest()
        key = f"{site_id}/{camera_id}/{at:%Y/%m/%d/%H%M%S}-{uuid.uuid4().hex[:6]}.jpg"
        bucket, version_id = "no-bucket", None
        if store is not None:
            stored = store.upload(key, data, {"sha256": sha})
            bucket, version_id = stored.bucket, stored.version_id
        with write_transaction(self.sessions) as session:
            row = SnapshotRow(
                camera_id=camera_id, site_id=site_id, slot_time=at + timedelta(microseconds=next(_slots)), status="stored", claimed_at=at, captured_at=at, attempts=1,
                bucket=bucket, key=key, version_id=version_id, sha256=sha, size=len(data), width=64, height=48,
            )
            session.add(row)
            session.flush()
            for item in labels:
                label, score = (item, 0.9) if isinstance(item, str) else item
                session.add(DetectionRow(snapshot_id=row.id, label=label, score=score, x1=1.0, y1=2.0, x2=30.0, y2=40.0, model_version="test-1", extra={}))
            session.flush()
            violations = fold_detections(session, self.sink, row.id, now=now or at, config=self.config) if fold else []
            return row.id, violations

    def open_case(self, label: str = "pest", camera_id: str = "cam-a", at: datetime = T0, **kwargs: Any) -> Violation:
        """A new case from one detection."""
        _sid, violations = self.snapshot(camera_id, at, [label], **kwargs)
        assert len(violations) == 1
        return violations[0]

    def add_camera(self, camera_id: str, site_id: str) -> None:
        """Mirror a configured camera of ``site_id`` into the database (as ``sync_config`` does)."""
        with write_transaction(self.sessions) as session:
            session.add(CameraRow(id=camera_id, site_id=site_id, room="operation", source="http://camera.invalid/pic", enabled=True, rois=[]))

    def ledger_actions(self, subject: str) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(entries_table.c.action).where(entries_table.c.subject == subject).order_by(entries_table.c.seq)).all())

    def ledger_payloads(self, subject: str) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(entries_table.c.payload).where(entries_table.c.subject == subject).order_by(entries_table.c.seq)).all())

    def verify_ledger(self) -> None:
        with self.sessions() as session:
            report = verify_ledger(session, None)
        assert report.ok, report.problems[:3]


def make_env(url: str, *, users: bool = True, config: WorkflowSettings | None = None) -> WorkflowEnv:
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    ledger = Ledger(signer=None, checkpoint_every=None, checkpoint_interval=None)
    env = WorkflowEnv(url, engine, sessions, ledger, LedgerSink(ledger, sessions), config or WorkflowSettings())
    with write_transaction(sessions) as session:
        for site_id, name, kind, district in SITES:
            session.add(SiteRow(id=site_id, name=name, kind=kind, district=district))
        session.flush()
        for camera_id, site_id in CAMERAS:
            session.add(CameraRow(id=camera_id, site_id=site_id, room="operation", source="http://camera.invalid/pic", enabled=True, rois=[]))
    if users:
        for name, (role, scopes) in STANDARD_USERS.items():
            env.users[name] = env.quick_user(name, role, scopes)
    return env


@pytest.fixture
def wf(db_url: str) -> Iterator[WorkflowEnv]:
    """A seeded workflow environment on a fresh SQLite file, then a fresh PostgreSQL database."""
    env = make_env(db_url)
    yield env
    env.engine.dispose()


@pytest.fixture
def wf_sqlite(tmp_path: Path) -> Iterator[WorkflowEnv]:
    """The same on SQLite only (for tests whose subject is not the database)."""
    env = make_env(f"sqlite:///{tmp_path / 'wf.db'}")
    yield env
    env.engine.dispose()


@pytest.fixture
def store(s3_server, tmp_path: Path) -> SnapshotStore:  # type: ignore[no-untyped-def]
    """A snapshot store on the embedded S3 server, with a fresh bucket (object lock, so versioned)."""
    config = StorageConfig(endpoint=s3_server.endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET, bucket=f"t-{uuid.uuid4().hex[:12]}", timeout_seconds=2.0)
    snapshot_store = SnapshotStore(config, tmp_path / "spool", endpoint=s3_server.endpoint)
    snapshot_store.ensure_bucket()
    return snapshot_store


PG_ADMIN_URL = os.environ.get("CANTEEN_WATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(kind: str, folder: Path) -> Iterator[str]:
    """A database that lives as long as the block: a SQLite file, or a new PostgreSQL database.

    For module-scoped fixtures (the lead's ``db_url`` is per test); skips when PostgreSQL is not
    reachable, like ``db_url`` does.
    """
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'scratch-{uuid.uuid4().hex[:8]}.db'}"
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"cw_wf_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable in CI: {exc}")
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def jpeg_bytes(text: str = "photo") -> bytes:
    """Bytes that start like a JPEG (the service checks the signature, not the pixels)."""
    return b"\xff\xd8\xff\xe0" + text.encode() + b"\x00" * 16 + b"\xff\xd9"


def png_bytes() -> bytes:
    """A real 1x1 PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def xlsx_rows(data: bytes, sheet: str | None = None) -> list[list[Any]]:
    """All rows of a workbook sheet, as values."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data))
    worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
    return [list(row) for row in worksheet.iter_rows(values_only=True)]


__all__ = [
    "CAMERAS", "Clock", "PASSWORD", "SITES", "STANDARD_USERS", "T0", "UTC", "WorkflowEnv",
    "jpeg_bytes", "make_env", "scratch_database", "png_bytes", "store", "wf", "wf_sqlite", "xlsx_rows",
]
