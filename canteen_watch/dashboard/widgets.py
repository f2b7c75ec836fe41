"""Shared pieces of the dashboard pages: services and user of the session, cached reads, errors,
formatting, pagination and images.

Aggregates are cached per deployment and per user jurisdiction (``st.cache_data`` with a TTL);
the services themselves (engine, ledger, store) once per process (``st.cache_resource``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import streamlit as st

from canteen_watch.auth import User
from canteen_watch.core import as_utc, utcnow
from canteen_watch.dashboard import queries
from canteen_watch.dashboard.menus import SPECS_BY_ID, PageSpec
from canteen_watch.dashboard.services import Services, build_services, config_path_from_env, config_stamp
from canteen_watch.i18n import t, t_value
from canteen_watch.ledger.store import LedgerError
from canteen_watch.storage import StorageUnavailableError
from canteen_watch.workflows.errors import ConflictError, EvidenceError, InputError, NotFoundError, PermissionDenied, TransitionError, WorkflowError

log = logging.getLogger(__name__)

USER_KEY = "cw_user"
LANG_KEY = "cw_lang"
FLASH_KEY = "cw_flash"
TTL_SECONDS = 60


# ------------------------------------------------------------------------------------- services and user


@st.cache_resource(show_spinner=False)
def _services(config_path: str | None, stamp: float) -> Services:
    import atexit

    services = build_services(config_path)
    atexit.register(services.close)  # stops an embedded S3 server this process started
    return services


def get_services() -> Services:
    """This process's services for ``$CANTEEN_WATCH_CONFIG`` (rebuilt when the file changes)."""
    path = config_path_from_env()
    return _services(path, config_stamp(path))


def user_key(user: User) -> tuple[Any, ...]:
    """What a cached aggregate depends on: the user's id, role and jurisdiction."""
    return (user.id, user.role.value, tuple(sorted(str(s) for s in user.scopes)), user.system)


@dataclass(frozen=True)
class PageContext:
    """What a page renders with."""

    services: Services
    user: User
    spec: PageSpec

    @property
    def ukey(self) -> tuple[Any, ...]:
        return user_key(self.user)


def page_context(page_id: str) -> PageContext:
    """The services and the logged-in user, after checking the page is in the user's menu (else stop)."""
    services = get_services()
    user = st.session_state.get(USER_KEY)
    spec = SPECS_BY_ID[page_id]
    if not isinstance(user, User) or user.role not in spec.roles:
        st.error(t("error.page_forbidden"))
        st.stop()
    return PageContext(services=services, user=user, spec=spec)


# ------------------------------------------------------------------------------------- messages


def flash(kind: str, text: str) -> None:
    """Show ``text`` after the next rerun (success, info, warning or error)."""
    st.session_state[FLASH_KEY] = (kind, text)


def show_flash() -> None:
    """Show and forget the message left by the previous action."""
    item = st.session_state.pop(FLASH_KEY, None)
    if item:
        kind, text = item
        getattr(st, kind if kind in ("success", "info", "warning", "error") else "info")(text)


def field_name(field: str | None) -> str:
    """The translated name of a service-layer field (``credit_code`` → 统一社会信用代码)."""
    if not field:
        return ""
    base = re.sub(r"\[\d+\]$", "", field)
    return t_value("field", base)


def error_text(exc: BaseException) -> str:
    """A translated sentence for a service-layer error; the service's own detail follows it."""
    detail = md_escape(exc)  # messages may quote what people typed: shown literally, never as Markdown
    if isinstance(exc, PermissionDenied):
        return t("error.permission", detail=detail)
    if isinstance(exc, TransitionError):
        return t("error.transition", state=t_value("state", exc.state), action=t_value("action", exc.action))
    if isinstance(exc, InputError):
        return t("error.input", field=field_name(exc.field) or "-", detail=md_escape(exc.reason))
    if isinstance(exc, NotFoundError):
        return t("error.not_found", detail=detail)
    if isinstance(exc, ConflictError):
        return t("error.conflict", detail=detail)
    if isinstance(exc, (EvidenceError, StorageUnavailableError)):
        return t("error.storage", detail=detail)
    if isinstance(exc, (WorkflowError, LedgerError)):
        return t("error.refused", detail=detail)
    return t("error.unexpected", detail=md_escape(f"{type(exc).__name__}: {exc}"))


def show_error(exc: BaseException) -> None:
    """Show a service-layer error in the page (logged when unexpected)."""
    if not isinstance(exc, (WorkflowError, StorageUnavailableError, LedgerError)):
        log.exception("dashboard action failed", exc_info=exc)
    st.error(error_text(exc))


# ------------------------------------------------------------------------------------- formatting

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def md_escape(text: object) -> str:
    """Text that Markdown shows literally (names, notes and reasons typed by people)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text if text is not None else "")).replace("\n", "  \n")


def local(moment: datetime | None, services: Services) -> datetime | None:
    """``moment`` in the display zone."""
    return as_utc(moment).astimezone(services.zone) if moment else None


def fmt_dt(moment: datetime | None, services: Services, *, seconds: bool = False) -> str:
    """``2026-03-02 16:00`` in the display zone (empty for None)."""
    value = local(moment, services)
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") if value else ""


def fmt_short(moment: datetime | None, services: Services) -> str:
    """``03-02 16:00`` in the display zone (for metrics), the year only when it is not this year."""
    value = local(moment, services)
    if value is None:
        return ""
    return value.strftime("%m-%d %H:%M" if value.year == local(utcnow(), services).year else "%Y-%m-%d")


def fmt_rate(rate: float | None) -> str:
    """``87.5%`` or an em dash."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def day_start(services: Services, day: date | None = None) -> datetime:
    """Midnight of ``day`` (default today) in the display zone, as UTC."""
    today = day or utcnow().astimezone(services.zone).date()
    return datetime.combine(today, time(0), tzinfo=services.zone).astimezone(timezone.utc)


def time_bucket(seconds: int = TTL_SECONDS) -> str:
    """The current time rounded down to ``seconds``: cache keys that change every TTL."""
    now = utcnow()
    return (now - timedelta(seconds=now.timestamp() % seconds)).isoformat(timespec="seconds")


def escalation_badge(level: int) -> str:
    return t_value("escalation", ("none", "yellow", "red")[min(max(level, 0), 2)])


# ------------------------------------------------------------------------------------- pagination


def paginate(total: int, per_page: int, key: str) -> int:
    """Page picker under a list; returns the 1-based page to show."""
    pages = max(1, -(-total // per_page))
    if pages <= 1:
        st.caption(t("common.rows", count=total))
        return 1
    current = st.session_state.get(key, 1)
    if not isinstance(current, int) or not 1 <= current <= pages:
        st.session_state[key] = 1
    page = st.pagination(pages, key=key)
    st.caption(t("common.page_of", page=page, pages=pages, count=total))
    return int(page)


def current_page(key: str) -> int:
    """The page chosen by :func:`paginate` in the previous run (1 before any choice)."""
    value = st.session_state.get(key, 1)
    return value if isinstance(value, int) and value >= 1 else 1


# ------------------------------------------------------------------------------------- cached reads


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=64)
def cached_sites(_services: Services, services_key: str, _user: User, ukey: tuple, action: str) -> list[queries.SiteInfo]:
    from canteen_watch.auth import Action

    return queries.visible_sites(_services.sessions, _user, Action(action))


def sites(ctx: PageContext, action: str = "violation.read") -> list[queries.SiteInfo]:
    """Sites the user may see (cached a minute)."""
    return cached_sites(ctx.services, ctx.services.key, ctx.user, ctx.ukey, action)


@st.cache_data(max_entries=256, show_spinner=False)
def object_bytes(_services: Services, services_key: str, bucket: str, key: str, version_id: str | None) -> bytes:
    """An object's bytes from S3 through the snapshot store (objects never change, so no TTL)."""
    return _services.store.read_evidence(bucket, key, version_id)


@st.cache_data(max_entries=512, show_spinner=False)
def object_thumbnail(_services: Services, services_key: str, bucket: str, key: str, version_id: str | None, max_side: int = 320) -> bytes | None:
    from canteen_watch.dashboard.drawing import thumbnail

    return thumbnail(object_bytes(_services, services_key, bucket, key, version_id), max_side)


def fetch_object(services: Services, bucket: str | None, key: str | None, version_id: str | None) -> bytes | None:
    """Bytes of a stored object, or None (with the reason logged) when it cannot be read."""
    if not bucket or not key:
        return None
    try:
        return object_bytes(services, services.key, bucket, key, version_id)
    except Exception as exc:  # noqa: BLE001 - an unreadable image must not break the page
        log.info("cannot read %s/%s: %s", bucket, key, exc)
        return None


def fetch_thumbnail(services: Services, bucket: str | None, key: str | None, version_id: str | None, max_side: int = 320) -> bytes | None:
    if not bucket or not key:
        return None
    try:
        return object_thumbnail(services, services.key, bucket, key, version_id, max_side)
    except Exception as exc:  # noqa: BLE001
        log.info("cannot read %s/%s: %s", bucket, key, exc)
        return None


def label_options(services: Services) -> list[str]:
    """Labels that open cases (from the configured tiers)."""
    return [label for tier in sorted(services.workflows.tiers, key=lambda x: x.tier) for label in tier.labels]


def tier_options(services: Services) -> list[int]:
    return sorted(tier.tier for tier in services.workflows.tiers)


def tier_name(number: int) -> str:
    return t("tier.name", tier=number, title=t_value("tier", number))


def site_label(site_id: str | None, names: dict[str, str]) -> str:
    """``Name (id)`` of a site for select boxes."""
    if site_id is None:
        return t("common.all")
    name = names.get(site_id)
    return f"{name} ({site_id})" if name else site_id
