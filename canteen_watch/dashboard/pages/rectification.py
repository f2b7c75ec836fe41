"""Rectification (managers, inspectors, administrators): confirmed cases with their deadlines, overdue
days and escalation; managers submit a note and a photo, inspectors accept or reject on re-check.

Submissions go through :func:`canteen_watch.workflows.submit_rectification` (photo stored in S3
first) and re-checks through :func:`canteen_watch.workflows.recheck_rectification`; both check
role, jurisdiction and state.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from canteen_watch.core import utcnow
from canteen_watch.dashboard import widgets as w
from canteen_watch.i18n import t, t_value
from canteen_watch.workflows.errors import WorkflowError
from canteen_watch.workflows.rectification import recheck_rectification, submit_rectification
from canteen_watch.workflows.types import Rectification, Violation
from canteen_watch.workflows.violations import list_violations, violation_detail

PER_PAGE = 25
VIEWS = {"due": ["rectification_due"], "submitted": ["rectification_submitted"], "active": ["rectification_due", "rectification_submitted"], "closed": ["closed"]}


def _reset() -> None:
    st.session_state["rc_page"] = 1
    st.session_state.pop("rc_case", None)


def _list(ctx: w.PageContext) -> list[Violation]:
    services = ctx.services
    names = {s.id: s.name for s in w.sites(ctx)}
    cols = st.columns([4, 3, 2, 2])
    default_view = "submitted" if ctx.user.role.value == "inspector" else "due"
    view = cols[0].segmented_control(t("rect.view"), list(VIEWS), default=default_view, format_func=lambda v: t(f"rect.view_{v}"), key="rc_view", on_change=_reset) or default_view
    site_id = cols[1].selectbox(t("common.site"), [None, *names], format_func=lambda s: w.site_label(s, names), key="rc_site", on_change=_reset)
    overdue = cols[2].toggle(t("rect.overdue_only"), key="rc_overdue", on_change=_reset)
    escalated = cols[3].toggle(t("rect.escalated_only"), key="rc_escalated", on_change=_reset)
    try:
        page = list_violations(
            services.sessions, ctx.user, states=VIEWS[view], site_id=site_id, overdue=True if overdue else None,
            min_escalation=1 if escalated else None, page=w.current_page("rc_page"), per_page=PER_PAGE,
        )
    except WorkflowError as exc:
        w.show_error(exc)
        return []
    if not page.items:
        st.info(t("rect.empty"))
        return []
    now = utcnow()
    rows = [
        {
            t("common.case"): v.id, t("common.site"): w.site_label(v.site_id, names), t("common.label"): t_value("label", v.label), t("common.tier"): v.tier,
            t("common.state"): t_value("state", v.state), t("common.due"): w.fmt_dt(v.due_at, services), t("common.overdue_days"): v.overdue_days(now),
            t("common.escalation"): w.escalation_badge(v.escalation_level), t("rect.rounds"): v.rectification_round,
        }
        for v in page.items
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    w.paginate(page.total, PER_PAGE, "rc_page")
    return page.items


def _photo(ctx: w.PageContext, rect: Rectification) -> None:
    photo = rect.photo
    data = None if photo.expired else w.fetch_object(ctx.services, photo.bucket, photo.key, photo.version_id)
    if data:
        st.image(data, caption=t("rect.photo_caption", round=rect.round), width=420)
    else:
        st.warning(t("rect.photo_expired") if photo.expired else t("rect.photo_unavailable"))


def _history(ctx: w.PageContext, rectifications: list[Rectification]) -> None:
    services = ctx.services
    for rect in reversed(rectifications):
        with st.container(border=True):
            st.markdown(f"**{t('rect.round', round=rect.round)}** · {w.fmt_dt(rect.submitted_at, services)}")
            st.text(rect.note)
            _photo(ctx, rect)
            if rect.outcome:
                st.caption(t("rect.checked", outcome=t_value("recheck", rect.outcome), time=w.fmt_dt(rect.checked_at, services)))
                if rect.check_note:
                    st.text(rect.check_note)


def _submit_form(ctx: w.PageContext, case: Violation) -> None:
    services = ctx.services
    with st.form("rc_submit", clear_on_submit=True):
        st.markdown(f"**{t('rect.submit_title')}**")
        note = st.text_area(t("rect.note"), key="rc_note", max_chars=4000)
        photo = st.file_uploader(t("rect.photo"), type=["jpg", "jpeg", "png"], key="rc_photo")
        submitted = st.form_submit_button(t("rect.submit"), type="primary")
    if submitted:
        if photo is None:
            st.error(t("rect.photo_required"))
            return
        try:
            submit_rectification(services.sessions, services.sink, services.store, ctx.user, case.id, note=note, photo=photo.getvalue())
        except WorkflowError as exc:
            w.show_error(exc)
            return
        except Exception as exc:  # noqa: BLE001 - S3 errors other than outages
            w.show_error(exc)
            return
        w.flash("success", t("rect.submitted", id=case.id))
        st.rerun()


def _recheck_form(ctx: w.PageContext, case: Violation) -> None:
    services = ctx.services
    st.markdown(f"**{t('rect.recheck_title')}**")
    note = st.text_area(t("rect.check_note"), key="rc_check_note", max_chars=4000)
    cols = st.columns(2)
    decision = None
    if cols[0].button(t("rect.accept"), type="primary", key="rc_accept", icon=":material/task_alt:"):
        decision = True
    if cols[1].button(t("rect.reject"), key="rc_reject", icon=":material/undo:"):
        decision = False
    if decision is None:
        return
    try:
        recheck_rectification(services.sessions, services.sink, ctx.user, case.id, accepted=decision, note=note or None, config=services.workflows)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    st.session_state.pop("rc_check_note", None)
    w.flash("success", t("rect.accepted" if decision else "rect.rejected", id=case.id))
    st.rerun()


def render() -> None:
    ctx = w.page_context("rectification")
    services = ctx.services
    st.title(t("page.rectification"))
    w.show_flash()
    items = _list(ctx)
    if not items:
        return
    ids = [v.id for v in items]
    chosen = st.session_state.get("rc_case")
    if chosen not in ids:
        st.session_state["rc_case"] = ids[0]
    case_id = st.selectbox(t("rect.choose"), ids, format_func=lambda i: f"#{i}", key="rc_case")
    case = next(v for v in items if v.id == case_id)
    try:
        detail = violation_detail(services.sessions, ctx.user, case.id)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    st.subheader(t("rect.case_title", id=case.id, label=t_value("label", case.label), site=w.md_escape(detail.site_name)))
    now = utcnow()
    cols = st.columns(4)
    cols[0].metric(t("common.due"), w.fmt_short(case.due_at, services))
    cols[1].metric(t("common.overdue_days"), case.overdue_days(now))
    cols[2].metric(t("common.escalation"), w.escalation_badge(case.escalation_level))
    cols[3].metric(t("rect.rounds"), case.rectification_round)
    left, right = st.columns([3, 2], gap="large")
    with right:
        if "submit_rectification" in detail.allowed_actions:
            _submit_form(ctx, case)
        elif "accept" in detail.allowed_actions:
            _recheck_form(ctx, case)
        else:
            st.info(t("rect.no_action", state=t_value("state", case.state)))
    with left:
        if detail.rectifications:
            _history(ctx, detail.rectifications)
        else:
            st.caption(t("rect.none_yet"))


if __name__ == "__main__":
    render()
