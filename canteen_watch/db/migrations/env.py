"""Alembic environment: runs migrations against the engine or URL handed in by canteen-watch."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from canteen_watch.db import models  # noqa: F401  (registers tables on Base.metadata)
from canteen_watch.db.base import Base

from canteen_watch.ledger import models as _ledger_models  # noqa: F401
from canteen_watch.workflows import models as _workflow_models  # noqa: F401

target_metadata = Base.metadata
config = context.config


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
