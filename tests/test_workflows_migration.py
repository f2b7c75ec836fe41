"""Migration 0003_workflows: upgrade, downgrade and upgrade again on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from canteen_watch.db.base import Base, make_engine
from canteen_watch.db.migrate import alembic_config, current_revision, upgrade
from canteen_watch.workflows.models import WORKFLOW_TABLES


def test_0003_upgrades_downgrades_and_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        assert current_revision(engine) is not None
        assert set(WORKFLOW_TABLES) <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002_ledger")
        inspector = inspect(engine)
        assert not set(WORKFLOW_TABLES) & set(inspector.get_table_names())
        assert {"sites", "snapshots", "ledger_entries"} <= set(inspector.get_table_names())
        assert current_revision(engine) == "0002_ledger"
        upgrade(engine)
        assert set(WORKFLOW_TABLES) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
