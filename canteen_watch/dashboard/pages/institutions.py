"""Care institutions (registrars, inspectors, administrators): search and status, registration with
inline validation, status changes with reasons, inspections, linked cameras and cases, CSV/Excel
import with a per-row error report, and export.

Writes go through :mod:`canteen_watch.registry` (registrars of the district and administrators);
inspections through :func:`~canteen_watch.registry.record_inspection` (inspectors of the district).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from canteen_watch.auth import Action, SiteRef, can
from canteen_watch.dashboard import widgets as w
from canteen_watch.i18n import get_language, t, t_value
from canteen_watch.registry.institutions import (
    INSPECTION_OUTCOMES,
    InstitutionDetail,
    change_institution_status,
    check_institution,
    get_institution,
    record_inspection,
    register_institution,
    search_institutions,
)
from canteen_watch.registry.io import export_institutions, import_institutions
from canteen_watch.workflows.errors import WorkflowError
from canteen_watch.workflows.states import InstitutionStatus
from canteen_watch.workflows.violations import list_violations

PER_PAGE = 25
TEXT_FIELDS = ("name", "credit_code", "licence_no", "address", "legal_rep", "contact_phone", "opening_hours")
CHECKED_FIELDS = ("credit_code", "licence_no", "contact_phone")
FORM_PREFIX = "in_reg_"


def _reset() -> None:
    st.session_state["in_page"] = 1
    st.session_state.pop("in_site", None)


def _districts(ctx: w.PageContext) -> list[str]:
    return sorted({s.district for s in w.sites(ctx, Action.INSTITUTION_READ.value)})


# ------------------------------------------------------------------------------------- list and detail


def _list(ctx: w.PageContext) -> None:
    services = ctx.services
    cols = st.columns([4, 2, 2, 2])
    query = cols[0].text_input(t("inst.search"), key="in_query", on_change=_reset, placeholder=t("inst.search_hint"))
    district = cols[1].selectbox(t("common.district"), [None, *_districts(ctx)], format_func=lambda d: t("common.all") if d is None else d, key="in_district", on_change=_reset)
    status = cols[2].selectbox(t("inst.status"), [None, *[s.value for s in InstitutionStatus]], format_func=lambda s: t("common.all") if s is None else t_value("inst_status", s), key="in_status", on_change=_reset)
    meals = cols[3].selectbox(t("inst.serves_meals"), [None, True, False], format_func=lambda v: t("common.all") if v is None else t("common.yes") if v else t("common.no"), key="in_meals", on_change=_reset)
    try:
        page = search_institutions(services.sessions, ctx.user, query=query or None, district=district, status=status, serves_meals=meals, page=w.current_page("in_page"), per_page=PER_PAGE)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    if not page.items:
        st.info(t("inst.empty"))
        return
    rows = [
        {
            t("inst.site_id"): i.site_id, t("field.name"): i.name, t("field.credit_code"): i.credit_code, t("field.licence_no"): i.licence_no,
            t("common.district"): i.district, t("inst.status"): t_value("inst_status", i.status), t("field.capacity"): i.capacity,
            t("inst.serves_meals"): t("common.yes") if i.serves_meals else t("common.no"), t("field.contact_phone"): i.contact_phone,
        }
        for i in page.items
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    w.paginate(page.total, PER_PAGE, "in_page")
    ids = [i.site_id for i in page.items]
    names = {i.site_id: i.name for i in page.items}
    if st.session_state.get("in_site") not in ids:
        st.session_state["in_site"] = ids[0]
    site_id = st.selectbox(t("inst.choose"), ids, format_func=lambda s: w.site_label(s, names), key="in_site")
    try:
        detail = get_institution(services.sessions, ctx.user, site_id)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    _detail(ctx, detail)


def _detail(ctx: w.PageContext, detail: InstitutionDetail) -> None:
    services = ctx.services
    inst = detail.institution
    st.subheader(f"{w.md_escape(inst.name)} · {t_value('inst_status', inst.status)}")
    facts = [
        (t("field.credit_code"), inst.credit_code), (t("field.licence_no"), inst.licence_no), (t("field.address"), inst.address),
        (t("common.district"), inst.district), (t("field.legal_rep"), inst.legal_rep), (t("field.contact_phone"), inst.contact_phone),
        (t("field.capacity"), inst.capacity), (t("inst.serves_meals"), t("common.yes") if inst.serves_meals else t("common.no")),
        (t("field.opening_hours"), inst.opening_hours), (t("inst.open_cases"), detail.open_violations),
        (t("inst.status_reason"), inst.status_reason or "—"), (t("inst.status_changed"), w.fmt_dt(inst.status_changed_at, services) or "—"),
    ]
    cols = st.columns(2)
    half = (len(facts) + 1) // 2
    for column, part in zip(cols, (facts[:half], facts[half:])):
        column.markdown("\n".join(f"- **{name}:** {w.md_escape(value)}" for name, value in part))
    actions = st.columns(2)
    with actions[0]:
        _status_change(ctx, detail)
    with actions[1]:
        _inspection_form(ctx, detail)
    tabs = st.tabs([t("inst.tab_events"), t("inst.tab_inspections"), t("inst.tab_cameras"), t("inst.tab_cases")])
    with tabs[0]:
        st.dataframe(
            pd.DataFrame([
                {t("audit.time"): w.fmt_dt(e.at, services), t("inst.event_action"): t_value("inst_action", e.action), t("inst.from"): t_value("inst_status", e.from_status),
                 t("inst.to"): t_value("inst_status", e.to_status), t("inst.reason"): e.reason or "", t("inst.changed_fields"): ", ".join(w.field_name(f) for f in e.changed_fields)}
                for e in detail.events
            ]),
            hide_index=True,
        )
    with tabs[1]:
        if detail.inspections:
            st.dataframe(
                pd.DataFrame([
                    {t("inst.inspected_at"): w.fmt_dt(i.inspected_at, services), t("inst.outcome"): t_value("inspection", i.outcome), t("inst.findings"): "; ".join(i.findings), t("inst.note"): i.note or ""}
                    for i in detail.inspections
                ]),
                hide_index=True,
            )
        else:
            st.caption(t("inst.no_inspections"))
    with tabs[2]:
        if detail.cameras:
            st.dataframe(
                pd.DataFrame([{t("common.camera"): c.id, t("camera.room"): t_value("room", c.room), t("inst.enabled"): t("common.yes") if c.enabled else t("common.no")} for c in detail.cameras]),
                hide_index=True,
            )
        else:
            st.warning(t("inst.no_cameras"))
    with tabs[3]:
        if can(ctx.user, Action.VIOLATION_READ, SiteRef(district=inst.district, site_id=inst.site_id)):
            try:
                cases = list_violations(services.sessions, ctx.user, site_id=inst.site_id, per_page=20)
            except WorkflowError as exc:
                w.show_error(exc)
            else:
                if cases.items:
                    st.dataframe(
                        pd.DataFrame([
                            {t("common.case"): v.id, t("common.label"): t_value("label", v.label), t("common.state"): t_value("state", v.state), t("common.first_seen"): w.fmt_dt(v.first_seen_at, services), t("common.due"): w.fmt_dt(v.due_at, services)}
                            for v in cases.items
                        ]),
                        hide_index=True,
                    )
                    st.caption(t("common.rows", count=cases.total))
                else:
                    st.caption(t("inst.no_cases"))


def _status_change(ctx: w.PageContext, detail: InstitutionDetail) -> None:
    if not detail.allowed_actions:
        return
    services = ctx.services
    with st.form("in_status_form", clear_on_submit=True):
        st.markdown(f"**{t('inst.change_status')}**")
        action = st.selectbox(t("inst.event_action"), detail.allowed_actions, format_func=lambda a: t_value("inst_action", a), key="in_status_action")
        reason = st.text_input(t("inst.reason"), key="in_status_reason")
        submitted = st.form_submit_button(t("inst.apply"))
    if submitted:
        try:
            result = change_institution_status(services.sessions, services.sink, ctx.user, detail.institution.site_id, action, reason=reason, salt=services.salt)
        except WorkflowError as exc:
            w.show_error(exc)
            return
        w.flash("success", t("inst.status_changed_to", name=w.md_escape(result.name), status=t_value("inst_status", result.status)))
        st.rerun()


def _inspection_form(ctx: w.PageContext, detail: InstitutionDetail) -> None:
    inst = detail.institution
    if not can(ctx.user, Action.INSPECTION_RECORD, SiteRef(district=inst.district, site_id=inst.site_id)):
        return
    services = ctx.services
    with st.form("in_inspection_form", clear_on_submit=True):
        st.markdown(f"**{t('inst.record_inspection')}**")
        outcome = st.selectbox(t("inst.outcome"), INSPECTION_OUTCOMES, format_func=lambda o: t_value("inspection", o), key="in_insp_outcome")
        findings = st.text_area(t("inst.findings_lines"), key="in_insp_findings")
        note = st.text_input(t("inst.note"), key="in_insp_note")
        submitted = st.form_submit_button(t("inst.record"))
    if submitted:
        items = [line.strip() for line in (findings or "").splitlines() if line.strip()]
        try:
            record_inspection(services.sessions, services.sink, ctx.user, inst.site_id, outcome=outcome, findings=items, note=note or None)
        except WorkflowError as exc:
            w.show_error(exc)
            return
        w.flash("success", t("inst.inspection_recorded", name=w.md_escape(inst.name)))
        st.rerun()


# ------------------------------------------------------------------------------------- register


def _field_feedback(field: str, value: Any) -> None:
    """Inline validation of one field as it is typed."""
    if value in (None, ""):
        return
    clean, errors = check_institution({field: value}, partial=True)
    if errors:
        st.caption(f":red[{w.md_escape(t('inst.invalid', detail=errors[0].reason))}]")
    elif field in CHECKED_FIELDS:
        st.caption(f":green[{w.md_escape(t('inst.valid', value=clean[field]))}]")


def _register(ctx: w.PageContext) -> None:
    services = ctx.services
    st.caption(t("inst.register_help"))
    values: dict[str, Any] = {}
    cols = st.columns(2)
    layout = {"name": 0, "credit_code": 1, "licence_no": 0, "address": 1, "legal_rep": 0, "contact_phone": 1, "opening_hours": 0}
    for field in TEXT_FIELDS:
        with cols[layout[field]]:
            values[field] = st.text_input(t("inst.required_label", label=t(f"field.{field}")), key=FORM_PREFIX + field, placeholder=t(f"placeholder.{field}"))
            _field_feedback(field, values[field])
    with cols[1]:
        if ctx.user.citywide:
            values["district"] = st.text_input(t("inst.required_label", label=t("field.district")), key=FORM_PREFIX + "district")
        else:
            values["district"] = st.selectbox(t("inst.required_label", label=t("field.district")), sorted(ctx.user.districts), key=FORM_PREFIX + "district")
        _field_feedback("district", values["district"])
        values["capacity"] = st.number_input(t("inst.required_label", label=t("field.capacity")), min_value=1, max_value=10000, value=30, step=1, key=FORM_PREFIX + "capacity")
        values["serves_meals"] = st.toggle(t("inst.serves_meals"), value=True, key=FORM_PREFIX + "serves_meals")
    with st.expander(t("inst.advanced")):
        site_id = st.text_input(t("inst.site_id_optional"), key=FORM_PREFIX + "site_id", help=t("inst.site_id_help"))
        reason = st.text_input(t("inst.reason_optional"), key=FORM_PREFIX + "reason")
    if site_id:
        values["site_id"] = site_id
        _field_feedback("site_id", site_id)
    if st.button(t("inst.register"), type="primary", key="in_register"):
        try:
            inst = register_institution(services.sessions, services.sink, ctx.user, values, reason=reason or None, salt=services.salt)
        except WorkflowError as exc:
            w.show_error(exc)
            return
        for field in [*TEXT_FIELDS, "district", "capacity", "serves_meals", "site_id", "reason"]:
            st.session_state.pop(FORM_PREFIX + field, None)
        w.flash("success", t("inst.registered", name=w.md_escape(inst.name), site=w.md_escape(inst.site_id)))
        st.rerun()


# ------------------------------------------------------------------------------------- import / export


def _import(ctx: w.PageContext) -> None:
    services = ctx.services
    st.caption(t("inst.import_help"))
    upload = st.file_uploader(t("inst.import_file"), type=["csv", "xlsx"], key="in_import_file")
    cols = st.columns(3)
    initial = cols[0].radio(t("inst.initial_status"), ["submitted", "registered"], format_func=lambda s: t_value("inst_status", s), key="in_import_status")
    good_only = cols[1].checkbox(t("inst.good_rows_only"), key="in_import_good")
    reason = cols[2].text_input(t("inst.reason_optional"), key="in_import_reason")
    if st.button(t("inst.import"), type="primary", key="in_import", disabled=upload is None) and upload is not None:
        try:
            report = import_institutions(services.sessions, services.sink, ctx.user, upload.getvalue(), good_rows_only=good_only, initial_status=initial, reason=reason or None, salt=services.salt)
        except WorkflowError as exc:
            w.show_error(exc)
            return
        st.session_state["in_import_report"] = report
    report = st.session_state.get("in_import_report")
    if report is None:
        return
    if report.committed and not report.errors:
        st.success(t("inst.import_ok", count=len(report.imported), total=report.total_rows))
    elif report.committed:
        st.warning(t("inst.import_partial", count=len(report.imported), total=report.total_rows, bad=len(report.bad_rows)))
    else:
        st.error(t("inst.import_refused", total=report.total_rows, bad=len(report.bad_rows)))
    if report.errors:
        st.dataframe(
            pd.DataFrame([{t("inst.row"): e.row, t("inst.column"): w.field_name(e.column) if e.column else "—", t("inst.problem"): e.message} for e in report.errors]),
            hide_index=True,
        )


def _export(ctx: w.PageContext) -> None:
    services = ctx.services
    cols = st.columns(3)
    file_format = cols[0].radio(t("inst.format"), ["xlsx", "csv"], horizontal=True, key="in_export_format")
    headers = cols[1].radio(t("inst.headers"), ["zh", "en"], index=0 if get_language() == "zh-CN" else 1, format_func=lambda h: t(f"inst.headers_{h}"), horizontal=True, key="in_export_headers")
    if cols[2].button(t("inst.export_prepare"), key="in_export_prepare"):
        try:
            st.session_state["in_export"] = (file_format, export_institutions(services.sessions, ctx.user, file_format=file_format, headers=headers))
        except WorkflowError as exc:
            w.show_error(exc)
            return
    prepared = st.session_state.get("in_export")
    if prepared:
        fmt, data = prepared
        mime = "text/csv" if fmt == "csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        st.download_button(t("inst.export_download"), data, file_name=f"care-institutions.{fmt}", mime=mime, key="in_export_download", icon=":material/download:")


def render() -> None:
    ctx = w.page_context("institutions")
    st.title(t("page.institutions"))
    w.show_flash()
    writer = can(ctx.user, Action.INSTITUTION_WRITE)
    exporter = can(ctx.user, Action.REPORT_EXPORT)
    names = [t("inst.tab_list")] + ([t("inst.tab_register"), t("inst.tab_import")] if writer else []) + ([t("inst.tab_export")] if exporter else [])
    tabs = st.tabs(names)
    with tabs[0]:
        _list(ctx)
    index = 1
    if writer:
        with tabs[index]:
            _register(ctx)
        with tabs[index + 1]:
            _import(ctx)
        index += 2
    if exporter:
        with tabs[index]:
            _export(ctx)


if __name__ == "__main__":
    render()
