"""Overview and Cameras pages through AppTest, and the SQL aggregates behind them on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from zoneinfo import ZoneInfo

from canteen_watch.core import utcnow
from canteen_watch.dashboard import queries
from canteen_watch.i18n import t
from canteen_watch.workflows.errors import PermissionDenied
from canteen_watch.workflows.violations import review_violation
from tests.test_dashboard_support import DashEnv, all_text, dash, dash_db, page  # noqa: F401

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _seed(env: DashEnv) -> dict:
    now = utcnow()
    cases = {
        "a_pest": env.open_case("pest", "cam-a", now - timedelta(days=2)),   # overdue (24 h)
        "a_hat": env.open_case("no_hat", "cam-a", now - timedelta(hours=1)),
        "b_mask": env.open_case("no_mask", "cam-b", now - timedelta(hours=2)),
        "c_pest": env.open_case("pest", "cam-c", now - timedelta(hours=3)),
    }
    review_violation(env.sessions, env.sink, env.user("inspector"), cases["a_hat"].id, outcome="confirmed")
    env.camera_health("cam-a", online=True, last_success_at=now)
    env.camera_health("cam-b", online=False, last_success_at=now - timedelta(hours=6), events=[("offline", "3 consecutive failed grabs")])
    env.camera_health("cam-c", online=True, last_success_at=now - timedelta(minutes=5), quality_alert="blurred,dark", events=[("quality_alert", "blurred,dark for 3 frames")])
    env.failed_snapshot("cam-b", now - timedelta(hours=1))
    return cases


def test_aggregates_on_both_databases(dash_db: DashEnv) -> None:
    env = dash_db
    cases = _seed(env)
    now = utcnow()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    admin, inspector = env.user("admin"), env.user("inspector")
    counts = queries.overview_counts(env.sessions, admin, day_start=day_start)
    assert (counts.cameras, counts.cameras_online, counts.cameras_offline, counts.cameras_quality) == (3, 2, 1, 1)
    assert (counts.snapshots_today, counts.failed_today) == (4, 1)
    mine = queries.overview_counts(env.sessions, inspector, day_start=day_start)
    assert (mine.cameras, mine.cameras_offline, mine.snapshots_today) == (2, 1, 3), "Central only"
    trend = queries.violation_trend(env.sessions, admin, since=day_start, zone=SHANGHAI)
    assert sum(n for _d, _tier, n in trend) == 4 and {tier for _d, tier, _n in trend} == {1, 2, 3}
    assert all(len(day) == 10 and day[4] == "-" for day, _t, _n in trend)
    snaps = queries.snapshot_trend(env.sessions, inspector, since=day_start, zone=SHANGHAI)
    assert (sum(ok for _d, ok, _b in snaps), sum(bad for _d, _o, bad in snaps)) == (3, 1)
    gaps = queries.coverage_gaps(env.sessions, admin, stale_before=now - timedelta(hours=2))
    assert [(g.site_id, g.cameras, g.offline, g.stale) for g in gaps] == [("s-b", 1, 1, 1)]
    cams = queries.camera_summaries(env.sessions, admin, since=now - timedelta(days=3), status="quality")
    assert [(c.camera_id, c.quality_alert, c.stored) for c in cams.items] == [("cam-c", "blurred,dark", 1)]
    offline = queries.camera_summaries(env.sessions, inspector, since=now - timedelta(days=3), status="offline")
    assert [(c.camera_id, c.stored, c.failed, c.success_rate) for c in offline.items] == [("cam-b", 1, 1, 0.5)]
    days = queries.camera_quality_days(env.sessions, admin, "cam-b", since=day_start, zone=SHANGHAI)
    assert sum(row[2] for row in days) == 1
    found = queries.ledger_search(env.sessions, env.user("auditor"), site_id="s-a")
    assert {row.subject for row in found.items} == {f"violation:{cases['a_pest'].id}", f"violation:{cases['a_hat'].id}"}
    with pytest.raises(PermissionDenied):
        queries.camera_events(env.sessions, env.user("north"), "cam-a")
    assert queries.review_list(env.sessions, inspector).total == 2, "open cases of Central"


def test_overview_page_for_an_inspector(dash: DashEnv) -> None:
    _seed(dash)
    at = dash.app("inspector").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("overview.cameras_online", "en")] == "1 / 2"
    assert metrics[t("overview.cameras_offline", "en")] == "1"
    assert metrics[t("overview.open_cases", "en")] == "3", "Central: a_pest, a_hat (due), b_mask"
    assert metrics[t("overview.overdue", "en")] == "1"
    assert metrics[t("overview.rectification_rate", "en")] == "0.0%"
    districts = at.dataframe[0].value
    assert list(districts["District"]) == ["Central"], "North is outside the inspector's district"
    gaps = at.dataframe[1].value
    assert list(gaps["Site"]) == ["Sunshine After-school Care (s-b)"]
    at.selectbox(key="ov_district").select("Central")
    at.run()
    at.selectbox(key="ov_site").select("s-a")
    at.run()
    cases = next(d.value for d in at.dataframe if "Violation" in d.value.columns)
    assert sorted(cases["Violation"]) == sorted([t("label.pest", "en"), t("label.no_hat", "en")])


def test_cameras_page(dash: DashEnv) -> None:
    _seed(dash)
    at = dash.app("admin").run().switch_page(page("cameras")).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Camera"]) == ["cam-a", "cam-b", "cam-c"]
    health = dict(zip(table["Camera"], table["Health"]))
    assert health == {"cam-a": "Online", "cam-b": "Offline", "cam-c": "Quality alert: Blurred, Dark"}
    at.selectbox(key="cm_camera").select("cam-b")
    at.run()
    events = at.dataframe[-1].value
    assert list(events["Event"]) == [t("camera_event.offline", "en")]
    at.selectbox(key="cm_camera").select("cam-a")
    at.run()
    assert at.image, "the last snapshot's thumbnail"
    at.selectbox(key="cm_site").select("s-a")
    at.run()
    assert t("camera.site_latest", "en") in all_text(at)
    at.selectbox(key="cm_status").select("offline")
    at.run()
    assert t("camera.empty", "en") in [i.value for i in at.info], "s-a has no offline camera"


def test_cameras_page_of_a_manager_is_their_site_only(dash: DashEnv) -> None:
    _seed(dash)
    at = dash.app("manager").run().switch_page(page("cameras")).run()
    assert list(at.dataframe[0].value["Camera"]) == ["cam-a"]
