"""Database access: engine creation, ORM models and migrations."""

from canteen_watch.db.base import Base, make_engine, make_session_factory, session_scope, write_transaction

__all__ = ["Base", "make_engine", "make_session_factory", "session_scope", "write_transaction"]
