"""Shared fixtures: a real S3 server, SQLite and PostgreSQL databases, settings builders."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from canteen_watch.config import Settings, load_settings
from canteen_watch.s3server import EmbeddedS3, find_free_base

PG_ADMIN_URL = os.environ.get("CANTEEN_WATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CANTEEN_WATCH_DATA", REPO.parent / "shared" / "data"))
S3_ACCESS = "cw-test-access"
S3_SECRET = "cw-test-secret-key"
_counter = itertools.count()


def shared_data(*parts: str) -> Path:
    """A path under the shared data folder; skips the test when it is absent (a user's clone)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available at {path} (set CANTEEN_WATCH_DATA)")
    return path


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    """A real SeaweedFS S3 server on 127.0.0.1 for the whole test session."""
    # Small volumes: the tests make a bucket each, and SeaweedFS sizes its volume count by free disk / volume size.
    server = EmbeddedS3(data_dir=tmp_path_factory.mktemp("s3"), port=find_free_base(), access_key=S3_ACCESS, secret_key=S3_SECRET, volume_size_limit_mb=16)
    server.start()
    yield server
    server.stop()


def _pg_available() -> bool:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    """Whether the PostgreSQL server on 127.0.0.1:5432 answers."""
    return _pg_available()


def _create_pg_database() -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    name = f"cw_test_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_available: bool) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not pg_available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is not reachable in CI")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    name, url = _create_pg_database()
    yield url
    _drop_pg_database(name)


@pytest.fixture
def make_settings(tmp_path: Path, s3_server: EmbeddedS3):
    """Build validated Settings for a test: embedded S3 endpoint, tmp data dir, given cameras."""

    def build(cameras: list[dict[str, Any]], *, db_url: str | None = None, sites: list[dict[str, Any]] | None = None, **extra: Any) -> Settings:
        bucket = f"t-{uuid.uuid4().hex[:12]}"
        storage = {"endpoint": s3_server.endpoint, "access_key": S3_ACCESS, "secret_key": S3_SECRET, "bucket": bucket, "timeout_seconds": 2.0}
        storage.update(extra.pop("storage", {}))
        data: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "sites": sites or [{"id": "site-a", "name": "Site A", "district": "Central"}],
            "cameras": cameras,
            "storage": storage,
            "database": {"url": db_url} if db_url else {},
        }
        data.update(extra)
        return load_settings(None, **data)

    return build
