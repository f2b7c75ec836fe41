"""Demo accounts for the dashboard: one user per role, created through :func:`canteen_watch.auth.add_user`.

``canteen-watch demo`` calls :func:`seed_demo_users` and prints what it returns. Re-running it
changes nothing: existing accounts are kept (and reported with the demo password only while it
still works for them).
"""

from __future__ import annotations

from sqlalchemy import select

from canteen_watch.auth import Role, add_user, system_actor, verify_password
from canteen_watch.config import Settings
from canteen_watch.db.models import SiteRow
from canteen_watch.workflows.errors import ConflictError
from canteen_watch.workflows.models import UserRow

DEMO_PASSWORD = "canteen-watch-demo"
SEED_ACTOR = "dashboard-seed"


def _demo_sites(settings: Settings, sessions) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """``(site id, kind, district)`` of the configured sites, else of the database's."""
    if settings.sites:
        return [(s.id, s.kind.value, s.district) for s in settings.sites]
    with sessions() as session:
        return [tuple(row) for row in session.execute(select(SiteRow.id, SiteRow.kind, SiteRow.district).order_by(SiteRow.id)).all()]  # type: ignore[misc]


def demo_accounts(settings: Settings, sessions) -> list[tuple[str, Role, list[str], str]]:  # type: ignore[no-untyped-def]
    """``(username, role, scopes, scope description)`` for the demo.

    The manager runs the first site; the inspector supervises that site's district (so they
    re-check the manager's rectifications); the registrar covers the district of the first care
    institution (else the inspector's district); auditor and administrator see the whole city.
    """
    sites = _demo_sites(settings, sessions)
    if not sites:
        raise ValueError("no sites configured: the demo users need at least one site")
    site_id, _kind, district = sites[0]
    care = next((s for s in sites if s[1] == "care_institution"), None)
    registrar_district = care[2] if care else district
    return [
        ("inspector", Role.INSPECTOR, [f"district:{district}"], f"district {district}"),
        ("manager", Role.MANAGER, [f"site:{site_id}"], f"site {site_id}"),
        ("auditor", Role.AUDITOR, ["city"], "city-wide"),
        ("registrar", Role.REGISTRAR, [f"district:{registrar_district}"], f"district {registrar_district}"),
        ("admin", Role.ADMIN, ["city"], "city-wide"),
    ]


def seed_demo_users(settings: Settings, *, password: str = DEMO_PASSWORD) -> list[tuple[str, str, str, str]]:
    """Create one user per role (idempotent) and return ``(username, password, role, scope)`` rows.

    For an account that already existed, the password column says ``(unchanged)`` unless the demo
    password still opens it. The database is migrated first; sites come from ``settings`` (they
    are mirrored into the database as ``canteen-watch run`` does).
    """
    from canteen_watch.runtime import open_database, open_sink, sync_config

    engine, sessions = open_database(settings)
    try:
        sync_config(sessions, settings)
        sink = open_sink(settings, sessions)
        actor = system_actor(SEED_ACTOR)
        result = []
        for username, role, scopes, description in demo_accounts(settings, sessions):
            shown = password
            try:
                add_user(sessions, sink, actor, username, password, role, scopes)
            except ConflictError:
                with sessions() as session:
                    stored = session.scalar(select(UserRow.password_hash).where(UserRow.username == username))
                if not stored or not verify_password(stored, password):
                    shown = "(unchanged)"
            result.append((username, shown, role.value, description))
        if hasattr(sink, "tick"):
            sink.tick()
        return result
    finally:
        engine.dispose()
