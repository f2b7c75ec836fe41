"""Ledger: append-only entries, stored Merkle subtree hashes, signed checkpoints.

Revision ID: 0002_ledger
Revises: 0001_core

On PostgreSQL, triggers reject UPDATE, DELETE and TRUNCATE on the three tables; on SQLite,
triggers reject UPDATE and DELETE (see ``canteen_watch.ledger.models.install_guards``).
"""

import sqlalchemy as sa
from alembic import op

from canteen_watch.ledger.models import drop_pg_guard_function, install_guards, remove_guards

revision = "0002_ledger"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("ts", sa.String(length=27), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("evidence_bucket", sa.String(length=255), nullable=True),
        sa.Column("evidence_key", sa.String(length=1024), nullable=True),
        sa.Column("evidence_version_id", sa.String(length=255), nullable=True),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("corrects", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["corrects"], ["ledger_entries.seq"], name=op.f("fk_ledger_entries_corrects_ledger_entries")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_entries")),
    )
    op.create_index("ix_ledger_entries_ts", "ledger_entries", ["ts"], unique=False)
    op.create_index("ix_ledger_entries_subject", "ledger_entries", ["subject"], unique=False)
    op.create_table(
        "ledger_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_ledger_nodes")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_checkpoints")),
        sa.UniqueConstraint("tree_size", name=op.f("uq_ledger_checkpoints_tree_size")),
    )
    install_guards(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    remove_guards(bind)
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_nodes")
    op.drop_index("ix_ledger_entries_subject", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_ts", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    drop_pg_guard_function(bind)
