"""Cameras (inspectors, managers, administrators): health, capture success rate, last snapshots and the
offline/blurred/dark history of each camera in the user's jurisdiction.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from canteen_watch.core import utcnow
from canteen_watch.dashboard import cache, queries
from canteen_watch.dashboard import widgets as w
from canteen_watch.i18n import t, t_value
from canteen_watch.workflows.errors import WorkflowError

PER_PAGE = 50
PERIODS = (24, 24 * 7, 24 * 30)
HISTORY_DAYS = 30


def _reset() -> None:
    st.session_state["cm_page"] = 1
    st.session_state.pop("cm_camera", None)


def quality_text(flags: str) -> str:
    """``blurred,dark`` → translated flag names."""
    return t("common.list_sep").join(t_value("quality", flag) for flag in flags.split(",") if flag)


def _health(summary: queries.CameraSummary) -> str:
    if not summary.enabled:
        return t("camera.disabled")
    if not summary.online:
        return t("camera.offline")
    if summary.quality_alert:
        return t("camera.quality", alert=quality_text(summary.quality_alert))
    return t("camera.online")


def _table(ctx: w.PageContext) -> list[queries.CameraSummary]:
    services = ctx.services
    site_list = w.sites(ctx)
    names = {s.id: s.name for s in site_list}
    districts = sorted({s.district for s in site_list})
    cols = st.columns([2, 3, 2, 2, 2])
    district = cols[0].selectbox(t("common.district"), [None, *districts], format_func=lambda d: t("common.all") if d is None else d, key="cm_district", on_change=_reset)
    site_choices = [s.id for s in site_list if district is None or s.district == district]
    site_id = cols[1].selectbox(t("common.site"), [None, *site_choices], format_func=lambda s: w.site_label(s, names), key="cm_site", on_change=_reset)
    status = cols[2].selectbox(t("camera.status"), list(queries.CAMERA_STATUSES), format_func=lambda s: t(f"camera.status_{s}"), key="cm_status", on_change=_reset)
    hours = cols[3].selectbox(t("camera.period"), PERIODS, format_func=lambda h: t("camera.period_hours", hours=h) if h < 48 else t("camera.period_days", days=h // 24), key="cm_period", on_change=_reset)
    stale_hours = cols[4].number_input(t("overview.stale_hours"), min_value=1, max_value=24 * 30, value=2, key="cm_stale", on_change=_reset)
    now = utcnow().replace(second=0, microsecond=0)
    try:
        page = cache.camera_summaries(
            services, services.key, ctx.user, ctx.ukey, now - timedelta(hours=hours), now - timedelta(hours=int(stale_hours)),
            district, site_id, status, w.current_page("cm_page"), PER_PAGE,
        )
    except WorkflowError as exc:
        w.show_error(exc)
        return []
    if not page.items:
        st.info(t("camera.empty"))
        return []
    rows = [
        {
            t("common.camera"): c.camera_id, t("common.site"): w.site_label(c.site_id, names), t("common.district"): c.district, t("camera.room"): t_value("room", c.room),
            t("camera.health"): _health(c), t("camera.success_rate"): w.fmt_rate(c.success_rate), t("camera.stored"): c.stored, t("camera.failed"): c.failed,
            t("camera.last_success"): w.fmt_dt(c.last_success_at, services) or "—", t("camera.last_error"): c.last_error or "",
        }
        for c in page.items
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    w.paginate(page.total, PER_PAGE, "cm_page")
    if site_id is not None:
        _site_thumbnails(ctx, site_id)
    return page.items


def _site_thumbnails(ctx: w.PageContext, site_id: str) -> None:
    services = ctx.services
    st.subheader(t("camera.site_latest"))
    try:
        latest = queries.latest_site_snapshots(services.sessions, ctx.user, site_id)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    cols = st.columns(4)
    for index, (camera_id, snap) in enumerate(latest):
        with cols[index % 4]:
            data = w.fetch_thumbnail(services, snap.bucket, snap.key, snap.version_id) if snap else None
            if data:
                st.image(data, caption=f"{camera_id} · {w.fmt_dt(snap.captured_at or snap.slot_time, services)}")
            else:
                st.caption(f"{camera_id}: {t('camera.no_image')}")


def _camera_detail(ctx: w.PageContext, cameras: list[queries.CameraSummary]) -> None:
    services = ctx.services
    ids = [c.camera_id for c in cameras]
    if st.session_state.get("cm_camera") not in ids:
        st.session_state["cm_camera"] = ids[0]
    camera_id = st.selectbox(t("camera.choose"), ids, key="cm_camera")
    summary = next(c for c in cameras if c.camera_id == camera_id)
    st.subheader(t("camera.detail_title", camera=camera_id))
    cols = st.columns(4)
    cols[0].metric(t("camera.health"), _health(summary))
    cols[1].metric(t("camera.success_rate"), w.fmt_rate(summary.success_rate))
    cols[2].metric(t("camera.last_success"), w.fmt_short(summary.last_success_at, services) or "—")
    cols[3].metric(t("camera.last_failure"), w.fmt_short(summary.last_failure_at, services) or "—")
    try:
        snapshots = queries.recent_snapshots(services.sessions, ctx.user, camera_id, limit=4)
        since = w.day_start(services) - timedelta(days=HISTORY_DAYS - 1)
        days = queries.camera_quality_days(services.sessions, ctx.user, camera_id, since=since, zone=services.zone)
        events = queries.camera_events(services.sessions, ctx.user, camera_id, limit=100)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    st.markdown(f"**{t('camera.recent')}**")
    if snapshots:
        thumbs = st.columns(4)
        for column, snap in zip(thumbs, snapshots):
            data = w.fetch_thumbnail(services, snap.bucket, snap.key, snap.version_id)
            flags = [t_value("quality", name) for name in ("blurred", "dark", "blocked") if getattr(snap, name)]
            caption = w.fmt_dt(snap.captured_at or snap.slot_time, services, seconds=True) + (f" · {t('common.list_sep').join(flags)}" if flags else "")
            with column:
                if data:
                    st.image(data, caption=caption)
                else:
                    st.caption(f"{caption}: {t('camera.no_image')}")
    else:
        st.caption(t("camera.no_snapshots"))
    st.markdown(f"**{t('camera.history', days=HISTORY_DAYS)}**")
    if any(any(row[2:]) for row in days):
        frame = pd.DataFrame(
            [{t("common.day"): d, t("camera.failed"): failed, t("quality.blurred"): blurred, t("quality.dark"): dark, t("quality.blocked"): blocked} for d, _ok, failed, blurred, dark, blocked in days]
        ).set_index(t("common.day"))
        st.bar_chart(frame, height=220)
    else:
        st.caption(t("camera.no_problems"))
    st.markdown(f"**{t('camera.events')}**")
    if events:
        st.dataframe(
            pd.DataFrame([{t("audit.time"): w.fmt_dt(e.at, services, seconds=True), t("camera.event"): t_value("camera_event", e.kind), t("camera.detail"): e.detail or ""} for e in events]),
            hide_index=True,
        )
    else:
        st.caption(t("camera.no_events"))


def render() -> None:
    ctx = w.page_context("cameras")
    st.title(t("page.cameras"))
    w.show_flash()
    cameras = _table(ctx)
    if cameras:
        st.divider()
        _camera_detail(ctx, cameras)


if __name__ == "__main__":
    render()
