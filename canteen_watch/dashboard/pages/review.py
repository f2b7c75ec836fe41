"""Review queue (managers, inspectors, administrators): one case at a time with its snapshot, boxes and
ROIs; confirm or dismiss as a false positive in one click; bulk actions; filters.

The case under review sits at the top of the page next to its buttons, so after an action the
next case appears in the same place (no scrolling back). Every action calls
:func:`canteen_watch.workflows.review_violation`, which checks role, jurisdiction and state.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from canteen_watch.auth import Action, can
from canteen_watch.core import utcnow
from canteen_watch.dashboard import drawing, queries
from canteen_watch.dashboard import widgets as w
from canteen_watch.i18n import t, t_value
from canteen_watch.workflows.errors import WorkflowError
from canteen_watch.workflows.types import Violation
from canteen_watch.workflows.violations import CONFIRMED, FALSE_POSITIVE, review_violation, violation_detail

PER_PAGE = 20
REVIEWED_STATES = ("rectification_due", "rectification_submitted", "closed", "dismissed")
FP_REASONS = ("fp.model_error", "fp.not_staff", "fp.container_closed", "fp.image_quality", "fp.duplicate")
FILTER_KEYS = ("rv_site", "rv_label", "rv_tier", "rv_dates", "rv_state")


def _reset_page() -> None:
    st.session_state["rv_page"] = 1
    st.session_state.pop("rv_current", None)


def _filters(ctx: w.PageContext) -> dict:
    services = ctx.services
    site_list = w.sites(ctx, Action.VIOLATION_REVIEW.value)
    names = {s.id: s.name for s in site_list}
    cols = st.columns([3, 2, 2, 3, 3])
    site_id = cols[0].selectbox(t("common.site"), [None, *names], format_func=lambda s: w.site_label(s, names), key="rv_site", on_change=_reset_page)
    label = cols[1].selectbox(t("common.label"), [None, *w.label_options(services)], format_func=lambda v: t("common.all") if v is None else t_value("label", v), key="rv_label", on_change=_reset_page)
    tier = cols[2].selectbox(t("common.tier"), [None, *w.tier_options(services)], format_func=lambda v: t("common.all") if v is None else w.tier_name(v), key="rv_tier", on_change=_reset_page)
    dates = cols[3].date_input(t("review.dates"), value=(), key="rv_dates", on_change=_reset_page)
    state = cols[4].segmented_control(
        t("review.reviewed_state"), ["unreviewed", "reviewed", "all"], default="unreviewed", format_func=lambda v: t(f"review.state_{v}"), key="rv_state", on_change=_reset_page
    ) or "unreviewed"
    states = ["open"] if state == "unreviewed" else list(REVIEWED_STATES) if state == "reviewed" else None
    seen_from = seen_to = None
    if isinstance(dates, (list, tuple)) and len(dates) >= 1:
        seen_from = w.day_start(services, dates[0])
        seen_to = w.day_start(services, dates[-1]) + timedelta(days=1)
    return {"site_id": site_id, "label": label, "tier": tier, "states": states, "seen_from": seen_from, "seen_to": seen_to}


def _review(ctx: w.PageContext, ids: list[int], outcome: str, reason: str | None) -> tuple[int, list[str]]:
    done, problems = 0, []
    for violation_id in ids:
        try:
            review_violation(ctx.services.sessions, ctx.services.sink, ctx.user, violation_id, outcome=outcome, reason=reason)
            done += 1
        except WorkflowError as exc:
            problems.append(f"#{violation_id}: {w.error_text(exc)}")
    return done, problems


def _after_action(done: int, problems: list[str], next_id: int | None, key: str) -> None:
    if problems:
        w.flash("error", "\n\n".join(problems[:10]))
    elif done:
        w.flash("success", t(key, count=done))
    if next_id is not None:
        st.session_state["rv_current"] = next_id
    else:
        st.session_state.pop("rv_current", None)
    st.rerun()


def _image(ctx: w.PageContext, case: Violation) -> None:
    services = ctx.services
    try:
        _first, last = queries.case_snapshot_ids(services.sessions, ctx.user, case.id)
        view = queries.snapshot_view(services.sessions, ctx.user, last) if last is not None else None
    except WorkflowError as exc:
        w.show_error(exc)
        return
    if view is None:
        st.warning(t("review.no_snapshot"))
        return
    snap = view.snapshot
    data = w.fetch_object(services, snap.bucket, snap.key, snap.version_id)
    image = drawing.open_image(data) if data else None
    if image is None:
        st.warning(t("review.image_unavailable"))
        image = drawing.placeholder(snap.width, snap.height)
    captions = {label: t_value("label", label) for label in {d.label for d in view.detections}}
    annotated = drawing.annotate(image, view.detections, view.rois, highlight=case.label, captions=captions)
    st.image(drawing.to_jpeg(annotated), width="stretch", caption=t("review.image_caption", camera=snap.camera_id, time=w.fmt_dt(snap.captured_at or snap.slot_time, services, seconds=True)))
    if view.detections:
        st.dataframe(
            pd.DataFrame([
                {t("common.label"): t_value("label", d.label), t("review.score"): round(d.score, 3), t("review.model_version"): d.model_version, t("review.roi"): d.roi_id or "—"}
                for d in view.detections
            ]),
            hide_index=True,
        )
    st.caption(t("review.snapshot_model", version=snap.model_version or "—", status=t_value("classifier_status", snap.classifier_status) if snap.classifier_status else "—"))


def _card(ctx: w.PageContext, case: Violation, ids: list[int]) -> None:
    services = ctx.services
    index = ids.index(case.id)
    next_id = ids[index + 1] if index + 1 < len(ids) else (ids[index - 1] if index > 0 else None)
    try:
        detail = violation_detail(services.sessions, ctx.user, case.id)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    st.subheader(t("review.case_title", id=case.id, label=t_value("label", case.label), tier=t("tier.short", tier=case.tier)))
    left, right = st.columns([3, 2], gap="large")
    with left:
        _image(ctx, case)
    with right:
        actions = detail.allowed_actions
        if "confirm" in actions:
            if st.button(t("review.confirm"), type="primary", key="rv_confirm", icon=":material/check_circle:", width="stretch"):
                _after_action(*_review(ctx, [case.id], CONFIRMED, None), next_id, "review.confirmed")
            reason_key = st.selectbox(t("review.fp_reason"), FP_REASONS, format_func=t, key="rv_fp_reason")
            if st.button(t("review.dismiss"), key="rv_dismiss", icon=":material/block:", width="stretch"):
                _after_action(*_review(ctx, [case.id], FALSE_POSITIVE, t(reason_key)), next_id, "review.dismissed")
        else:
            st.info(t("review.no_action", state=t_value("state", case.state)))
        nav = st.columns(2)
        if nav[0].button(t("review.previous"), key="rv_prev", disabled=index == 0, width="stretch"):
            st.session_state["rv_current"] = ids[index - 1]
            st.rerun()
        if nav[1].button(t("review.next"), key="rv_next", disabled=index + 1 >= len(ids), width="stretch"):
            st.session_state["rv_current"] = ids[index + 1]
            st.rerun()
        st.caption(t("review.position", index=index + 1, count=len(ids)))
        facts = [
            (t("common.site"), f"{detail.site_name} ({case.site_id})"),
            (t("common.district"), case.district),
            (t("common.camera"), case.camera_id),
            (t("common.state"), t_value("state", case.state)),
            (t("review.max_score"), f"{case.max_score:.3f}"),
            (t("review.detections"), str(case.detection_count)),
            (t("common.first_seen"), w.fmt_dt(case.first_seen_at, services, seconds=True)),
            (t("review.last_seen"), w.fmt_dt(case.last_seen_at, services, seconds=True)),
            (t("common.due"), w.fmt_dt(case.due_at, services)),
            (t("common.escalation"), w.escalation_badge(case.escalation_level)),
        ]
        st.markdown("\n".join(f"- **{name}:** {w.md_escape(value)}" for name, value in facts))
        for review in detail.reviews:
            st.caption(t("review.reviewed_by", role=t_value("role", review.role), outcome=t_value("outcome", review.outcome), time=w.fmt_dt(review.at, services)))
            if review.reason:
                st.text(review.reason)
        with st.expander(t("review.history")):
            for entry in detail.history:
                st.caption(t("review.history_line", seq=entry.seq, time=entry.ts[:19].replace("T", " "), action=entry.action, actor=entry.actor))


def _bulk(ctx: w.PageContext, items: list[Violation]) -> None:
    services = ctx.services
    st.divider()
    st.subheader(t("review.list"))
    rows = [
        {
            t("common.case"): v.id, t("common.site"): v.site_id, t("common.camera"): v.camera_id, t("common.label"): t_value("label", v.label),
            t("common.tier"): v.tier, t("review.max_score"): round(v.max_score, 3), t("common.first_seen"): w.fmt_dt(v.first_seen_at, services),
            t("common.state"): t_value("state", v.state), t("common.overdue_days"): v.overdue_days(utcnow()),
        }
        for v in items
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    open_ids = [v.id for v in items if v.state == "open"]
    if not open_ids or not can(ctx.user, Action.VIOLATION_REVIEW):
        return
    chosen = st.multiselect(t("review.bulk_select"), open_ids, format_func=lambda i: f"#{i}", key="rv_bulk", placeholder=t("review.bulk_placeholder"))
    cols = st.columns([2, 3, 2])
    if cols[0].button(t("review.bulk_confirm", count=len(chosen)), key="rv_bulk_confirm", disabled=not chosen):
        st.session_state.pop("rv_bulk", None)
        _after_action(*_review(ctx, chosen, CONFIRMED, None), None, "review.confirmed")
    reason_key = cols[1].selectbox(t("review.fp_reason"), FP_REASONS, format_func=t, key="rv_bulk_reason", label_visibility="collapsed")
    if cols[2].button(t("review.bulk_dismiss", count=len(chosen)), key="rv_bulk_dismiss", disabled=not chosen):
        st.session_state.pop("rv_bulk", None)
        _after_action(*_review(ctx, chosen, FALSE_POSITIVE, t(reason_key)), None, "review.dismissed")


def render() -> None:
    ctx = w.page_context("review")
    services = ctx.services
    st.title(t("page.review"))
    w.show_flash()
    filters = _filters(ctx)
    try:
        page = queries.review_list(services.sessions, ctx.user, **filters, page=w.current_page("rv_page"), per_page=PER_PAGE)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    if not page.items:
        st.success(t("review.empty"))
        return
    ids = [v.id for v in page.items]
    current = st.session_state.get("rv_current")
    case = next((v for v in page.items if v.id == current), page.items[0])
    st.session_state["rv_current"] = case.id
    _card(ctx, case, ids)
    _bulk(ctx, page.items)
    w.paginate(page.total, PER_PAGE, "rv_page")


if __name__ == "__main__":
    render()
