"""Shared helpers for the dashboard tests (no tests here).

A :class:`DashEnv` is a real deployment in a temporary folder: a TOML configuration file named by
``$CANTEEN_WATCH_CONFIG`` (what ``canteen-watch dashboard`` passes), a migrated database (SQLite
file or a fresh PostgreSQL database), the session's SeaweedFS S3 server with a fresh bucket, a
ledger signing key, the three standard sites with one camera each, and one user per role. Cases
are opened the way the pipeline opens them: a real JPEG in S3, a snapshot row, detections, and
:func:`~canteen_watch.workflows.violations.fold_detections` in one transaction.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import select

from canteen_watch.auth import Role, Scope, User, get_user
from canteen_watch.core import utcnow
from canteen_watch.dashboard.services import Services, build_services
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import CameraEventRow, CameraHealthRow, DetectionRow, SnapshotRow
from canteen_watch.ledger.models import entries_table
from canteen_watch.workflows.models import UserRow, UserScopeRow
from canteen_watch.workflows.types import Violation
from canteen_watch.workflows.violations import fold_detections
from tests.conftest import S3_ACCESS, S3_SECRET
from tests.test_workflows_support import PASSWORD, password_hash, scratch_database

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "streamlit_app.py"
PAGES = "canteen_watch/dashboard/pages"
SITES = [
    {"id": "s-a", "name": "No. 1 Primary School canteen", "kind": "school_canteen", "district": "Central"},
    {"id": "s-b", "name": "Sunshine After-school Care", "kind": "care_institution", "district": "Central"},
    {"id": "s-c", "name": "North Middle School canteen", "kind": "school_canteen", "district": "North"},
]
CAMERAS = [
    {"id": "cam-a", "site": "s-a", "room": "operation", "source": "http://camera.invalid/a.jpg",
     "rois": [{"id": "shelf", "kind": "storage", "polygon": [[0.05, 0.1], [0.45, 0.1], [0.45, 0.9], [0.05, 0.9]]}]},
    {"id": "cam-b", "site": "s-b", "room": "preparation", "source": "http://camera.invalid/b.jpg"},
    {"id": "cam-c", "site": "s-c", "room": "operation", "source": "http://camera.invalid/c.jpg"},
]
USERS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "manager": (Role.MANAGER, ("site:s-a",)),
    "inspector": (Role.INSPECTOR, ("district:Central",)),
    "registrar": (Role.REGISTRAR, ("district:Central",)),
    "auditor": (Role.AUDITOR, ("city",)),
    "admin": (Role.ADMIN, ("city",)),
    "north": (Role.INSPECTOR, ("district:North",)),
}
_slot = itertools.count(1)
#: One bucket for every dashboard test of the session (object keys are unique per test): each
#: bucket costs the shared SeaweedFS server volumes, and the whole suite shares that server.
BUCKET = f"t-dash-{uuid.uuid4().hex[:10]}"


def jpeg(width: int = 320, height: int = 240, colour: tuple[int, int, int] = (200, 180, 140)) -> bytes:
    """A real JPEG: a kitchen-coloured frame with a dark shape where the detection box will be."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((200, 120, 260, 170), fill=(60, 40, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class DashEnv:
    """A dashboard deployment in a temporary folder."""

    config_path: Path
    services: Services
    users: dict[str, User] = field(default_factory=dict)

    @property
    def sessions(self):  # type: ignore[no-untyped-def]
        return self.services.sessions

    @property
    def sink(self):  # type: ignore[no-untyped-def]
        return self.services.sink

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.services.store

    def user(self, name: str) -> User:
        return self.users[name]

    def add_user(self, username: str, role: Role, scopes: Sequence[str]) -> User:
        """Insert a user with the precomputed hash of :data:`PASSWORD` (setup only: fast)."""
        with write_transaction(self.sessions) as session:
            row = UserRow(username=username, password_hash=password_hash(), role=role.value, active=True, created_at=utcnow(), failed_logins=0)
            session.add(row)
            session.flush()
            for text in scopes:
                scope = Scope.parse(text)
                session.add(UserScopeRow(user_id=row.id, level=scope.level.value, ref=scope.ref))
            session.flush()
            user = get_user(session, row.id)
        self.users[username] = user
        return user

    def open_case(
        self,
        label: str = "pest",
        camera_id: str = "cam-a",
        at: datetime | None = None,
        *,
        score: float = 0.93,
        box: tuple[float, float, float, float] = (200.0, 120.0, 260.0, 170.0),
        upload: bool = True,
        model_version: str = "pest-test-1",
    ) -> Violation:
        """Open a case as the pipeline does: JPEG in S3, snapshot row, detection, fold (one transaction)."""
        at = at or utcnow() - timedelta(minutes=5)
        site_id = next(c["site"] for c in CAMERAS if c["id"] == camera_id)
        data = jpeg()
        sha = hashlib.sha256(data).hexdigest()
        key = f"{site_id}/{camera_id}/{at:%Y/%m/%d/%H%M%S}-{uuid.uuid4().hex[:8]}.jpg"
        bucket, version_id = self.store.bucket, None
        if upload:
            stored = self.store.upload(key, data, {"sha256": sha})
            version_id = stored.version_id
        with write_transaction(self.sessions) as session:
            row = SnapshotRow(
                camera_id=camera_id, site_id=site_id, slot_time=at + timedelta(microseconds=next(_slot)), status="stored", claimed_at=at, captured_at=at,
                attempts=1, bucket=bucket, key=key, version_id=version_id, sha256=sha, size=len(data), width=320, height=240,
                classifier_status="ok", model_version=model_version,
            )
            session.add(row)
            session.flush()
            x1, y1, x2, y2 = box
            session.add(DetectionRow(snapshot_id=row.id, label=label, score=score, x1=x1, y1=y1, x2=x2, y2=y2, model_version=model_version, extra={}))
            session.flush()
            cases = fold_detections(session, self.sink, row.id, now=at, config=self.services.workflows)
        assert len(cases) == 1
        return cases[0]

    def camera_health(self, camera_id: str, *, online: bool, last_success_at: datetime | None, quality_alert: str | None = None, events: Sequence[tuple[str, str]] = ()) -> None:
        """Set a camera's debounced health and add health events (as recording does)."""
        with write_transaction(self.sessions) as session:
            row = session.get(CameraHealthRow, camera_id) or CameraHealthRow(camera_id=camera_id)
            row.online, row.last_success_at, row.quality_alert = online, last_success_at, quality_alert
            row.consecutive_failures, row.consecutive_successes, row.consecutive_bad_quality = (0 if online else 5), 0, 0
            row.last_error = None if online else "timeout after 5 s"
            session.merge(row)
            for kind, detail in events:
                session.add(CameraEventRow(camera_id=camera_id, kind=kind, at=utcnow() - timedelta(hours=1), detail=detail))

    def failed_snapshot(self, camera_id: str, at: datetime) -> None:
        site_id = next(c["site"] for c in CAMERAS if c["id"] == camera_id)
        with write_transaction(self.sessions) as session:
            session.add(SnapshotRow(camera_id=camera_id, site_id=site_id, slot_time=at, status="failed", claimed_at=at, attempts=1, failure_reason="timeout"))

    def ledger(self, subject: str) -> list[tuple[str, str]]:
        """``(action, actor)`` of the ledger entries about ``subject``."""
        with self.sessions() as session:
            rows = session.execute(select(entries_table.c.action, entries_table.c.actor).where(entries_table.c.subject == subject).order_by(entries_table.c.seq)).all()
        return [(a, b) for a, b in rows]

    def app(self, user: str | User | None = None, *, lang: str = "en"):  # type: ignore[no-untyped-def]
        """An AppTest of ``streamlit_app.py``, logged in as ``user`` (a name of :data:`USERS` or a User)."""
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(APP), default_timeout=60)
        at.session_state["cw_lang"] = lang
        if user is not None:
            at.session_state["cw_user"] = self.users[user] if isinstance(user, str) else user
        return at


def open_cases_quickly(env: DashEnv, count: int, label: str = "no_hat", camera_id: str = "cam-a") -> list[int]:
    """``count`` open cases of one label on one camera, each two hours apart (no S3 upload), in one transaction."""
    base = utcnow() - timedelta(hours=2 * count + 1)
    site_id = next(c["site"] for c in CAMERAS if c["id"] == camera_id)
    ids = []
    with write_transaction(env.sessions) as session:
        for i in range(count):
            at = base + timedelta(hours=2 * i)
            row = SnapshotRow(camera_id=camera_id, site_id=site_id, slot_time=at, status="stored", claimed_at=at, captured_at=at, attempts=1,
                              bucket=env.store.bucket, key=f"{site_id}/{camera_id}/quick-{uuid.uuid4().hex[:8]}-{i}.jpg", sha256="0" * 64, width=320, height=240)
            session.add(row)
            session.flush()
            session.add(DetectionRow(snapshot_id=row.id, label=label, score=0.8, x1=1.0, y1=1.0, x2=20.0, y2=20.0, model_version="t", extra={}))
            session.flush()
            ids += [v.id for v in fold_detections(session, env.sink, row.id, now=at, config=env.services.workflows)]
    return ids


def write_config(folder: Path, s3_endpoint: str, db_url: str, **extra: Any) -> Path:
    """A canteen-watch TOML for the test deployment (what the demo writes to ``demo.toml``)."""
    data = {
        "data_dir": str(folder / "data"),
        "timezone": "Asia/Shanghai",
        "sites": SITES,
        "cameras": CAMERAS,
        "storage": {"endpoint": s3_endpoint, "access_key": S3_ACCESS, "secret_key": S3_SECRET, "bucket": BUCKET, "timeout_seconds": 2.0},
        "database": {"url": db_url},
        **extra,
    }
    path = folder / "canteen-watch.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def make_dash(folder: Path, s3_endpoint: str, db_url: str, monkeypatch: pytest.MonkeyPatch, *, users: bool = True) -> DashEnv:
    from canteen_watch.ledger.checkpoint import keygen
    from canteen_watch.runtime import sync_config

    config = write_config(folder, s3_endpoint, db_url)
    keygen(folder / "data" / "keys")
    monkeypatch.setenv("CANTEEN_WATCH_CONFIG", str(config))
    services = build_services(str(config.resolve()))
    sync_config(services.sessions, services.settings)
    services.store.ensure_bucket()
    env = DashEnv(config_path=config, services=services)
    if users:
        for name, (role, scopes) in USERS.items():
            env.add_user(name, role, scopes)
    return env


def _clear_streamlit_caches() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def dash(tmp_path: Path, s3_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[DashEnv]:  # type: ignore[no-untyped-def]
    """A dashboard deployment on SQLite."""
    env = make_dash(tmp_path, s3_server.endpoint, f"sqlite:///{tmp_path / 'dash.db'}", monkeypatch)
    yield env
    _clear_streamlit_caches()
    env.services.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def dash_db(request: pytest.FixtureRequest, tmp_path: Path, s3_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[DashEnv]:  # type: ignore[no-untyped-def]
    """The same on a SQLite file, then on a fresh PostgreSQL database."""
    with scratch_database(request.param, tmp_path) as url:
        env = make_dash(tmp_path, s3_server.endpoint, url, monkeypatch)
        try:
            yield env
        finally:
            _clear_streamlit_caches()
            env.services.close()


def texts(at: Any, kind: str = "markdown") -> list[str]:
    """The values of every element of ``kind`` (markdown, caption, success, error…) in the app."""
    return [str(element.value) for element in getattr(at, kind)]


def all_text(at: Any) -> str:
    """Every visible text of the run, joined (for "does it show X" checks)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "success", "info", "warning", "error", "text", "code"):
        parts += texts(at, kind)
    for kind in ("metric",):
        parts += [f"{m.label} {m.value}" for m in getattr(at, kind)]
    return "\n".join(parts)


def page(name: str) -> str:
    """The page script path ``AppTest.switch_page`` takes."""
    return f"{PAGES}/{name}.py"


UTC = timezone.utc
__all__ = ["APP", "CAMERAS", "DashEnv", "PASSWORD", "SITES", "USERS", "UTC", "all_text", "dash", "dash_db", "jpeg", "make_dash", "open_cases_quickly", "page", "texts", "write_config"]
