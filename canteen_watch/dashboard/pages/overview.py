"""Overview (inspectors, administrators): cameras, snapshots, open cases, trends, districts, coverage gaps."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from canteen_watch.core import utcnow
from canteen_watch.dashboard import cache
from canteen_watch.dashboard import widgets as w
from canteen_watch.i18n import t, t_value
from canteen_watch.workflows.errors import WorkflowError
from canteen_watch.workflows.violations import list_violations

TREND_DAYS = 30
SNAPSHOT_DAYS = 14
PER_PAGE = 25


def _stats_frame(stats: list, names: dict[str, str], tiers: list[int], key_title: str, *, sites: bool) -> pd.DataFrame:
    rows = []
    for s in stats:
        row = {key_title: w.site_label(s.key, names) if sites else s.key}
        for tier in tiers:
            row[t("overview.open_tier", tier=tier)] = s.open_by_tier.get(tier, 0)
        row.update({
            t("overview.col_open"): s.open_total,
            t("overview.col_overdue"): s.overdue,
            t("overview.col_red"): s.red,
            t("overview.col_confirmed"): s.confirmed,
            t("overview.col_closed"): s.closed,
            t("overview.col_dismissed"): s.dismissed,
            t("overview.col_total"): s.total,
            t("overview.col_rate"): w.fmt_rate(s.rectification_rate),
        })
        rows.append(row)
    return pd.DataFrame(rows)


def _headline(ctx: w.PageContext, data: cache.Overview) -> None:
    services = ctx.services
    counts, stats = data.counts, data.stats
    tiers = w.tier_options(services)
    open_by_tier = {tier: sum(s.open_by_tier.get(tier, 0) for s in stats) for tier in tiers}
    overdue = sum(s.overdue for s in stats)
    red = sum(s.red for s in stats)
    confirmed = sum(s.confirmed for s in stats)
    closed = sum(s.closed for s in stats)
    row = st.columns(6)
    row[0].metric(t("overview.cameras_online"), f"{counts.cameras_online} / {counts.cameras_enabled}", border=True)
    row[1].metric(t("overview.cameras_offline"), counts.cameras_offline, border=True, delta=t("overview.quality_alerts", count=counts.cameras_quality) if counts.cameras_quality else None, delta_color="off", delta_arrow="off")
    row[2].metric(t("overview.snapshots_today"), counts.snapshots_today, border=True, delta=t("overview.failed_today", count=counts.failed_today) if counts.failed_today else None, delta_color="off", delta_arrow="off")
    row[3].metric(t("overview.overdue"), overdue, border=True)
    row[4].metric(t("overview.escalated"), red, border=True)
    row[5].metric(t("overview.rectification_rate"), w.fmt_rate(closed / confirmed if confirmed else None), border=True)
    tier_cols = st.columns(len(tiers) + 1)
    tier_cols[0].metric(t("overview.open_cases"), sum(open_by_tier.values()), border=True)
    for column, tier in zip(tier_cols[1:], tiers):
        config = services.workflows.tier(tier)
        column.metric(w.tier_name(tier), open_by_tier[tier], border=True, help=t("tier.deadline_help", deadline=f"{config.deadline_hours:g}", red=f"{config.red_after_hours:g}"))


TIER_COLOURS = {1: "#d62728", 2: "#ff7f0e", 3: "#1f77b4"}


def _trends(data: cache.Overview) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader(t("overview.trend_cases", days=TREND_DAYS))
        trend = data.case_trend
        if trend:
            tiers = sorted({tier for _, tier, _ in trend})
            long = pd.DataFrame([{"day": day, "tier": tier, "n": n} for day, tier, n in trend])
            frame = long.pivot_table(index="day", columns="tier", values="n", aggfunc="sum", fill_value=0)[tiers]
            frame.columns = [w.tier_name(tier) for tier in tiers]
            frame.index.name = t("common.day")
            # Severity colours: tier 1 red, tier 2 orange, tier 3 blue, later tiers grey.
            colours = [TIER_COLOURS.get(tier, "#7f7f7f") for tier in tiers]
            st.bar_chart(frame, y_label=t("overview.col_cases"), color=colours, height=260)
        else:
            st.info(t("overview.no_cases"))
    with right:
        st.subheader(t("overview.trend_snapshots", days=SNAPSHOT_DAYS))
        trend = data.snapshot_trend
        if trend:
            frame = pd.DataFrame([{t("common.day"): day, t("overview.col_stored"): ok, t("overview.col_failed"): bad} for day, ok, bad in trend]).set_index(t("common.day"))
            st.line_chart(frame, color=["#2ca02c", "#d62728"], height=260)  # stored green, failed red
        else:
            st.info(t("overview.no_snapshots"))


def _districts(ctx: w.PageContext, stats: list) -> None:
    services = ctx.services
    st.subheader(t("overview.by_district"))
    tiers = w.tier_options(services)
    if not stats:
        st.info(t("overview.no_cases"))
        return
    st.dataframe(_stats_frame(stats, {}, tiers, t("common.district"), sites=False), hide_index=True)
    districts = [s.key for s in stats]
    district = st.selectbox(t("overview.drill_district"), [None, *districts], format_func=lambda d: t("common.choose") if d is None else d, key="ov_district")
    if district is None:
        return
    names = {s.id: s.name for s in w.sites(ctx)}
    site_stats = cache.violation_stats(services, services.key, ctx.user, ctx.ukey, "site", district, w.time_bucket())
    st.dataframe(_stats_frame(site_stats, names, tiers, t("common.site"), sites=True), hide_index=True)
    site_id = st.selectbox(t("overview.drill_site"), [None, *[s.key for s in site_stats]], format_func=lambda s: t("common.choose") if s is None else w.site_label(s, names), key="ov_site")
    if site_id is None:
        return
    try:
        page = list_violations(services.sessions, ctx.user, site_id=site_id, page=w.current_page("ov_cases_page"), per_page=PER_PAGE)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    rows = [
        {
            t("common.case"): v.id, t("common.camera"): v.camera_id, t("common.label"): t_value("label", v.label), t("common.tier"): v.tier,
            t("common.state"): t_value("state", v.state), t("common.first_seen"): w.fmt_dt(v.first_seen_at, services), t("common.due"): w.fmt_dt(v.due_at, services),
            t("common.overdue_days"): v.overdue_days(utcnow()), t("common.escalation"): w.escalation_badge(v.escalation_level),
        }
        for v in page.items
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    w.paginate(page.total, PER_PAGE, "ov_cases_page")


def _coverage(ctx: w.PageContext) -> None:
    services = ctx.services
    st.subheader(t("overview.coverage"))
    hours = st.number_input(t("overview.stale_hours"), min_value=1, max_value=24 * 30, value=2, step=1, key="ov_stale_hours")
    stale_before = utcnow() - timedelta(hours=int(hours))
    stale_before = stale_before.replace(second=0, microsecond=0)
    gaps = cache.coverage_gaps(services, services.key, ctx.user, ctx.ukey, stale_before)
    if not gaps:
        st.success(t("overview.no_gaps"))
        return
    rows = [
        {
            t("common.district"): g.district, t("common.site"): f"{g.name} ({g.site_id})", t("common.kind"): t_value("site_kind", g.kind),
            t("overview.col_cameras"): g.cameras, t("overview.col_offline"): g.offline, t("overview.col_stale"): g.stale,
            t("overview.col_last_success"): w.fmt_dt(g.last_success_at, services) or "—",
            t("overview.col_gap"): t("overview.gap_no_camera") if g.cameras == 0 else t("overview.gap_cameras", offline=g.offline, stale=g.stale),
        }
        for g in gaps
    ]
    st.caption(t("overview.gap_count", count=len(gaps)))
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _report(ctx: w.PageContext) -> None:
    services = ctx.services
    with st.expander(t("overview.report")):
        today = w.local(utcnow(), services).date()
        period = st.date_input(t("overview.report_period"), value=(today - timedelta(days=30), today), key="ov_report_period")
        if st.button(t("overview.report_prepare"), key="ov_report_prepare") and isinstance(period, (tuple, list)) and len(period) == 2:
            from canteen_watch.reports import export_violations_xlsx  # openpyxl: only when asked for

            start, end = w.day_start(services, period[0]), w.day_start(services, period[1]) + timedelta(days=1)
            try:
                st.session_state["ov_report"] = export_violations_xlsx(services.sessions, ctx.user, start=start, end=end, config=services.workflows)
            except WorkflowError as exc:
                w.show_error(exc)
        data = st.session_state.get("ov_report")
        if data:
            st.download_button(t("overview.report_download"), data, file_name="canteen-watch-violations.xlsx", mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="ov_report_download")


def render() -> None:
    ctx = w.page_context("overview")
    services = ctx.services
    st.title(t("page.overview"))
    w.show_flash()
    try:
        data = cache.overview(services, services.key, ctx.user, ctx.ukey, w.day_start(services), TREND_DAYS, SNAPSHOT_DAYS)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    _headline(ctx, data)
    _trends(data)
    _districts(ctx, data.stats)
    _coverage(ctx)
    _report(ctx)


if __name__ == "__main__":
    render()
