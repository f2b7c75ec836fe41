"""Audit trail (auditors, administrators): search the ledger, show an entry with its inclusion proof,
verify the whole ledger with a progress bar, and download evidence bundles.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import streamlit as st

from canteen_watch.core import utcnow
from canteen_watch.dashboard import cache, queries
from canteen_watch.dashboard import widgets as w
from canteen_watch.i18n import t
from canteen_watch.ledger.store import LedgerError
from canteen_watch.workflows.errors import WorkflowError

PER_PAGE = 50


def _reset() -> None:
    st.session_state["au_page"] = 1
    st.session_state.pop("au_seq", None)


def _summary(row: queries.LedgerRow) -> str:
    payload = row.payload
    parts = []
    for key in ("outcome", "from", "to", "change", "label", "site", "camera", "round", "version", "reason"):
        if key in payload and not isinstance(payload[key], (dict, list)):
            parts.append(f"{key}={payload[key]}")
    return ", ".join(parts)[:160]


def _search(ctx: w.PageContext) -> None:
    services = ctx.services
    names = {s.id: s.name for s in w.sites(ctx)}
    actions = cache.ledger_actions(services, services.key, ctx.user, ctx.ukey, w.time_bucket(300))
    cols = st.columns([3, 3, 3, 2])
    site_id = cols[0].selectbox(t("common.site"), [None, *names], format_func=lambda s: w.site_label(s, names), key="au_site", on_change=_reset)
    action = cols[1].selectbox(t("audit.action"), [None, *actions], format_func=lambda a: t("common.all") if a is None else a, key="au_action", on_change=_reset)
    dates = cols[2].date_input(t("audit.dates"), value=(), key="au_dates", on_change=_reset)
    case_text = cols[3].text_input(t("audit.case"), key="au_case", on_change=_reset, placeholder="17")
    subject = st.text_input(t("audit.subject"), key="au_subject", on_change=_reset, placeholder=t("audit.subject_hint"))
    violation_id = None
    if case_text.strip():
        if not case_text.strip().lstrip("#").isdigit():
            st.error(t("audit.case_invalid"))
            return
        violation_id = int(case_text.strip().lstrip("#"))
    ts_from = ts_to = None
    if isinstance(dates, (list, tuple)) and dates:
        ts_from = w.day_start(services, dates[0])
        ts_to = w.day_start(services, dates[-1]) + timedelta(days=1)
    try:
        page = queries.ledger_search(
            services.sessions, ctx.user, site_id=site_id, action=action, violation_id=violation_id, subject=subject or None,
            ts_from=ts_from, ts_to=ts_to, page=w.current_page("au_page"), per_page=PER_PAGE,
        )
    except WorkflowError as exc:
        w.show_error(exc)
        return
    if not page.items:
        st.info(t("audit.empty"))
        return
    rows = [
        {t("audit.seq"): r.seq, t("audit.time"): r.ts[:19].replace("T", " ") + " UTC", t("audit.actor"): r.actor, t("audit.action"): r.action, t("audit.subject"): r.subject, t("audit.summary"): _summary(r)}
        for r in page.items
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    w.paginate(page.total, PER_PAGE, "au_page")
    by_seq = {r.seq: r for r in page.items}
    if st.session_state.get("au_seq") not in by_seq:
        st.session_state["au_seq"] = page.items[0].seq
    seq = st.selectbox(t("audit.entry"), list(by_seq), format_func=lambda s: f"#{s} · {by_seq[s].action} · {by_seq[s].subject}", key="au_seq")
    _entry(ctx, seq)


def _entry(ctx: w.PageContext, seq: int) -> None:
    services = ctx.services
    try:
        found = queries.entry_with_proof(services.sessions, ctx.user, services.ledger, seq)
    except (WorkflowError, LedgerError) as exc:
        w.show_error(exc)
        return
    except ValueError as exc:  # a proof that does not verify
        st.error(t("audit.proof_failed", detail=w.md_escape(exc)))
        return
    entry = found.entry
    with st.container(border=True):
        st.markdown(f"**{t('audit.entry_title', seq=entry.seq)}** · `{entry.action}` · `{entry.subject}`")
        cols = st.columns(2)
        with cols[0]:
            st.caption(t("audit.payload"))
            st.json(entry.payload, expanded=True)
            if entry.evidence:
                st.caption(t("audit.evidence"))
                st.json(entry.evidence, expanded=True)
        with cols[1]:
            if found.signed:
                st.success(t("audit.proof_signed", size=found.tree_size))
            else:
                st.warning(t("audit.proof_unsigned", size=found.tree_size))
            st.caption(t("audit.hashes"))
            st.code(f"entry_hash {entry.entry_hash}\nprev_hash  {entry.prev_hash}\nroot       {found.root}", language=None)
            st.caption(t("audit.proof"))
            st.code(json.dumps(found.proof, indent=1), language="json")
            if found.checkpoint_note:
                st.caption(t("audit.checkpoint"))
                st.code(found.checkpoint_note, language=None)


def _verify(ctx: w.PageContext) -> None:
    services = ctx.services
    st.caption(t("audit.verify_help"))
    if not st.button(t("audit.verify_now"), type="primary", key="au_verify", icon=":material/verified_user:"):
        report = st.session_state.get("au_report")
        if report:
            _report(report)
        return
    bar = st.progress(0.0, text=t("audit.verifying"))

    def progress(fraction: float, done: int, total: int) -> None:
        bar.progress(min(1.0, fraction), text=t("audit.verify_progress", done=done, total=total))

    verifier = getattr(services.ledger, "verifier", None)
    try:
        report = queries.verify_ledger_progress(services.sessions, ctx.user, verifier, trusted=queries.trusted_notes(services.settings.data_dir), progress=progress)
    except WorkflowError as exc:
        w.show_error(exc)
        return
    result = {
        "ok": report.ok, "size": report.size, "root": report.root.hex(), "checkpoints": report.checkpoints_checked, "trusted": report.trusted_checked,
        "first_bad_seq": report.first_bad_seq, "problems": [str(p) for p in report.problems[:50]], "elapsed": round(report.elapsed_s, 2),
        "no_key": verifier is None, "latest_checkpoint": report.latest_checkpoint_size,
        # the replay's own two warnings are said in the catalogue's words; any other is shown as is
        "warnings": [w for w in report.warnings if not w.startswith(("no checkpoints", "entries "))],
    }
    st.session_state["au_report"] = result
    _report(result)


def _report(result: dict) -> None:
    if result["ok"]:
        st.success(t("audit.verify_ok", size=result["size"], checkpoints=result["checkpoints"], trusted=result["trusted"], elapsed=result["elapsed"]))
    else:
        st.error(t("audit.verify_failed", seq=result["first_bad_seq"] if result["first_bad_seq"] is not None else "—", count=len(result["problems"])))
        st.code("\n".join(result["problems"]), language=None)
    if result["no_key"]:
        st.warning(t("audit.no_key"))
    latest, size = result["latest_checkpoint"], result["size"]
    if latest is None and result["trusted"] == 0 and size:
        st.warning(t("audit.no_checkpoints"))
    elif latest is not None and latest < size:
        st.warning(t("audit.uncovered", first=latest, last=size - 1))
    for warning in result["warnings"]:
        st.warning(w.md_escape(warning))
    st.caption(t("audit.root", root=result["root"]))


def _bundle(ctx: w.PageContext) -> None:
    services = ctx.services
    st.caption(t("audit.bundle_help"))
    mode = st.radio(t("audit.bundle_for"), ["case", "days"], format_func=lambda m: t(f"audit.bundle_{m}"), horizontal=True, key="au_bundle_mode")
    violation_id = date_from = date_to = None
    if mode == "case":
        violation_id = int(st.number_input(t("audit.case"), min_value=1, step=1, key="au_bundle_case"))
    else:
        today = utcnow().date()
        period = st.date_input(t("audit.bundle_days"), value=(today, today), key="au_bundle_days")
        if isinstance(period, (list, tuple)) and period:
            date_from, date_to = period[0], period[-1]
    if st.button(t("audit.bundle_prepare"), key="au_bundle_prepare"):
        reader = None
        try:
            reader = services.store.read_evidence
        except Exception:  # noqa: BLE001 - no S3: the bundle lists the images as missing
            reader = None
        try:
            data, summary = queries.export_evidence_bundle(
                services.sessions, ctx.user, services.ledger, reader, violation_id=violation_id, date_from=date_from, date_to=date_to
            )
        except (WorkflowError, LedgerError) as exc:
            w.show_error(exc)
            return
        name = f"evidence-case-{violation_id}.zip" if violation_id else f"evidence-{date_from}-{date_to}.zip"
        st.session_state["au_bundle"] = (name, data, summary.entries, summary.images, len(summary.missing_images))
    bundle = st.session_state.get("au_bundle")
    if bundle:
        name, data, entries, images, missing = bundle
        st.success(t("audit.bundle_ready", entries=entries, images=images, missing=missing))
        st.download_button(t("audit.bundle_download"), data, file_name=name, mime="application/zip", key="au_bundle_download", icon=":material/download:")


def render() -> None:
    ctx = w.page_context("audit")
    st.title(t("page.audit"))
    w.show_flash()
    search, verify, bundle = st.tabs([t("audit.tab_search"), t("audit.tab_verify"), t("audit.tab_bundle")])
    with search:
        _search(ctx)
    with verify:
        _verify(ctx)
    with bundle:
        _bundle(ctx)


if __name__ == "__main__":
    render()
