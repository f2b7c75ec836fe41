"""Cached aggregates (``st.cache_data`` with a TTL), keyed by deployment, user jurisdiction and arguments.

The underscore parameters (services, user) are not hashed; ``services_key`` and ``ukey`` stand
for them. Lists of cases and everything a user acts on are *not* cached: after a review the
queue must show the next case at once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import streamlit as st

from canteen_watch.auth import User
from canteen_watch.dashboard import queries
from canteen_watch.dashboard.services import Services
from canteen_watch.dashboard.widgets import TTL_SECONDS


@dataclass(frozen=True)
class Overview:
    """Everything the overview's headline and trend charts show."""

    counts: queries.OverviewCounts
    stats: list[Any]
    case_trend: list[tuple[str, int, int]]
    snapshot_trend: list[tuple[str, int, int]]


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=64)
def overview(_services: Services, services_key: str, _user: User, ukey: tuple, day_start: datetime, case_days: int, snapshot_days: int) -> Overview:
    """The overview's four aggregates, run side by side (each on its own pooled connection)."""
    from canteen_watch.workflows.violations import violation_stats as stats

    sessions, zone = _services.sessions, _services.zone
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="cw-overview") as pool:
        counts = pool.submit(queries.overview_counts, sessions, _user, day_start=day_start)
        by_district = pool.submit(stats, sessions, _user, group_by="district")
        cases = pool.submit(queries.violation_trend, sessions, _user, since=day_start - timedelta(days=case_days - 1), zone=zone)
        snapshots = pool.submit(queries.snapshot_trend, sessions, _user, since=day_start - timedelta(days=snapshot_days - 1), zone=zone)
        return Overview(counts=counts.result(), stats=by_district.result(), case_trend=cases.result(), snapshot_trend=snapshots.result())


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=64)
def violation_stats(_services: Services, services_key: str, _user: User, ukey: tuple, group_by: str, district: str | None, bucket: str) -> list[Any]:
    from canteen_watch.workflows.violations import violation_stats as stats

    return stats(_services.sessions, _user, group_by=group_by, district=district)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=64)
def coverage_gaps(_services: Services, services_key: str, _user: User, ukey: tuple, stale_before: datetime) -> list[queries.CoverageGap]:
    return queries.coverage_gaps(_services.sessions, _user, stale_before=stale_before)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=128)
def camera_summaries(_services: Services, services_key: str, _user: User, ukey: tuple, since: datetime, stale_before: datetime, district: str | None, site_id: str | None, status: str, page: int, per_page: int) -> Any:
    return queries.camera_summaries(_services.sessions, _user, since=since, stale_before=stale_before, district=district, site_id=site_id, status=status, page=page, per_page=per_page)


@st.cache_data(ttl=TTL_SECONDS * 5, show_spinner=False, max_entries=16)
def ledger_actions(_services: Services, services_key: str, _user: User, ukey: tuple, bucket: str) -> list[str]:
    return queries.ledger_actions(_services.sessions, _user)


def model_index(root: str, stamp: float) -> dict[str, Any]:
    """The model registry index (re-read when the file changes)."""
    return _model_index(root, stamp)


@st.cache_data(show_spinner=False, max_entries=8)
def _model_index(root: str, stamp: float) -> dict[str, Any]:
    """``index.json`` of a models folder, with the registry's defaults for missing parts."""
    import json
    from pathlib import Path

    path = Path(root) / "index.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"schema": 1}
    for key, empty in (("active", {}), ("models", {}), ("promotions", [])):
        data.setdefault(key, empty)
    return data
