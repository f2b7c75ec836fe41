"""The handles a dashboard process needs: settings, database, ledger sink, snapshot store.

One :class:`Services` per configuration file, shared by every browser session of the process
(the Streamlit app keeps it in ``st.cache_resource``). The snapshot store is opened lazily, on the
first page that shows an image, because opening it may start the embedded S3 server.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.config import CONFIG_ENV_VAR, Settings, load_settings
from canteen_watch.storage import SnapshotStore
from canteen_watch.workflows.tiers import LoginPolicy, WorkflowSettings

log = logging.getLogger(__name__)


def config_path_from_env() -> str | None:
    """The configuration file named by ``$CANTEEN_WATCH_CONFIG`` (absolute), or None."""
    value = os.environ.get(CONFIG_ENV_VAR)
    return str(Path(value).resolve()) if value else None


def config_stamp(path: str | None) -> float:
    """Modification time of the configuration file (0 when there is none): a changed file means new services."""
    if not path:
        return 0.0
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def workflow_settings(settings: Settings) -> WorkflowSettings:
    """``settings.workflows`` once the lead hangs it off Settings; the defaults until then."""
    value = getattr(settings, "workflows", None)
    return value if isinstance(value, WorkflowSettings) else WorkflowSettings()


def display_zone(settings: Settings) -> tzinfo:
    """The zone times are shown in: the configured one, else the machine's."""
    if settings.timezone:
        return ZoneInfo(settings.timezone)
    try:
        import tzlocal

        return tzlocal.get_localzone()
    except Exception:  # noqa: BLE001 - any failure: show UTC rather than no page
        return ZoneInfo("UTC")


@dataclass
class Services:
    """Everything the pages call the service layer with."""

    settings: Settings
    config_path: str | None
    engine: Engine
    sessions: sessionmaker[Session]
    sink: Any
    workflows: WorkflowSettings
    zone: tzinfo
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)
    _store: SnapshotStore | None = field(default=None, repr=False)
    _store_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def key(self) -> str:
        """Identifies this deployment in cache keys."""
        return f"{self.config_path or '-'}|{self.settings.database_url}"

    @property
    def ledger(self) -> Any:
        """The ledger behind the sink (proofs, checkpoints, verifier)."""
        return getattr(self.sink, "ledger", None)

    @property
    def login_policy(self) -> LoginPolicy:
        return self.workflows.login

    @property
    def salt(self) -> str | None:
        return self.workflows.salt

    @property
    def store(self) -> SnapshotStore:
        """The snapshot store (opened on first use; may start the embedded S3 server)."""
        with self._store_lock:
            if self._store is None:
                from canteen_watch.runtime import open_storage

                self._store = open_storage(self.settings, self._stack)
            return self._store

    def close(self) -> None:
        """Stop what was started (the embedded S3 server, if this process started it) and close the pool."""
        self._stack.close()
        self.engine.dispose()


def build_services(config_path: str | None, *, migrate: bool = True) -> Services:
    """Load the configuration and open the database (migrated to the newest schema) and the ledger sink.

    Raises:
        ConfigError: The configuration file is missing or invalid.
    """
    from canteen_watch.runtime import open_database, open_sink

    settings = load_settings(config_path) if config_path else load_settings(None)
    engine, sessions = open_database(settings, migrate=migrate)
    sink = open_sink(settings, sessions)
    return Services(
        settings=settings,
        config_path=config_path,
        engine=engine,
        sessions=sessions,
        sink=sink,
        workflows=workflow_settings(settings),
        zone=display_zone(settings),
    )
