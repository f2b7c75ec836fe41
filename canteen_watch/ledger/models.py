"""ORM tables of the ledger and the database guards that make them append-only.

* ``ledger_entries``: one row per entry (see :mod:`canteen_watch.ledger.entry`);
* ``ledger_nodes``: the hash of every complete Merkle subtree of level >= 1, keyed by
  ``(level, idx)`` (level 0 is ``ledger_entries.entry_hash``), so roots and proofs are O(log n)
  reads;
* ``ledger_checkpoints``: signed checkpoints (the note is authoritative; the other columns are
  copies for querying).

On PostgreSQL a trigger rejects UPDATE, DELETE and TRUNCATE on all three tables; on SQLite
triggers reject UPDATE and DELETE. :func:`install_guards` is called by the Alembic revision
``0002_ledger`` and, through ``after_create`` events, by ``Base.metadata.create_all``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from canteen_watch.db.base import Base

SeqType = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

LEDGER_TABLES = ("ledger_entries", "ledger_nodes", "ledger_checkpoints")
PG_GUARD_FUNCTION = "canteen_watch_ledger_append_only"


class LedgerEntry(Base):
    """One append-only ledger entry."""

    __tablename__ = "ledger_entries"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(27), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    evidence_bucket: Mapped[str | None] = mapped_column(String(255))
    evidence_key: Mapped[str | None] = mapped_column(String(1024))
    evidence_version_id: Mapped[str | None] = mapped_column(String(255))
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    corrects: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_entries.seq"))
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        Index("ix_ledger_entries_ts", "ts"),
        Index("ix_ledger_entries_subject", "subject"),
    )


class LedgerNode(Base):
    """Hash of the complete subtree over leaves ``[idx * 2**level, (idx + 1) * 2**level)``."""

    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)

    __table_args__ = ({"sqlite_with_rowid": False},)


class LedgerCheckpoint(Base):
    """A signed checkpoint (C2SP tlog-checkpoint note)."""

    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    root_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    origin: Mapped[str] = mapped_column(String(255), nullable=False)
    key_id: Mapped[str] = mapped_column(String(8), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[str] = mapped_column(String(27), nullable=False)


entries_table = LedgerEntry.__table__
nodes_table = LedgerNode.__table__
checkpoints_table = LedgerCheckpoint.__table__


# --------------------------------------------------------------------------------------------
# Append-only guards
# --------------------------------------------------------------------------------------------


def _pg_function_sql() -> str:
    # No '%' characters: the statement goes through the driver's parameter formatting.
    return f"""
CREATE OR REPLACE FUNCTION {PG_GUARD_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'integrity_constraint_violation',
        MESSAGE = 'canteen-watch ledger: ' || TG_TABLE_NAME || ' is append-only; ' || TG_OP || ' rejected';
END
$fn$
"""


def install_pg_guards(connection: Connection, tables: tuple[str, ...] = LEDGER_TABLES) -> bool:
    """On PostgreSQL, create the trigger function and UPDATE/DELETE/TRUNCATE triggers. Idempotent.

    Returns False (and does nothing) on other databases.
    """
    if connection.dialect.name != "postgresql":
        return False
    connection.exec_driver_sql(_pg_function_sql())
    for table in tables:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_GUARD_FUNCTION}()"
        )
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_GUARD_FUNCTION}()"
        )
    return True


def install_sqlite_guards(connection: Connection, tables: tuple[str, ...] = LEDGER_TABLES) -> bool:
    """On SQLite, create BEFORE UPDATE / BEFORE DELETE triggers that abort. Idempotent."""
    if connection.dialect.name != "sqlite":
        return False
    for table in tables:
        for op in ("UPDATE", "DELETE"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'canteen-watch ledger: {table} is append-only; {op} rejected'); END"
            )
    return True


def install_guards(connection: Connection, tables: tuple[str, ...] = LEDGER_TABLES) -> None:
    """Install the append-only guards for the connection's dialect."""
    install_pg_guards(connection, tables) or install_sqlite_guards(connection, tables)


def remove_guards(connection: Connection, tables: tuple[str, ...] = LEDGER_TABLES) -> None:
    """Drop the guards (for migrations' downgrade and for tamper tests)."""
    if connection.dialect.name == "postgresql":
        for table in tables:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    elif connection.dialect.name == "sqlite":
        for table in tables:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def drop_pg_guard_function(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_GUARD_FUNCTION}() CASCADE")


def _after_create(target, connection: Connection, **_kw) -> None:  # type: ignore[no-untyped-def]
    install_guards(connection, (target.name,))


for _table in (entries_table, nodes_table, checkpoints_table):
    event.listen(_table, "after_create", _after_create)
