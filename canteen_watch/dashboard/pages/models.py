"""Models (administrators; auditors read only): registered versions per task with their validation
metrics, the active model, the promotion history, and promotion through the registry's gate.

The registry folder is ``$CANTEEN_WATCH_MODELS`` or the shipped ``classifiers/models``. Promotion
goes through :func:`canteen_watch.dashboard.queries.promote_model` (administrators only; ledgered).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from canteen_watch.auth import Role
from canteen_watch.dashboard import cache, queries
from canteen_watch.dashboard import widgets as w
from canteen_watch.i18n import t, t_value
from canteen_watch.workflows.errors import WorkflowError

METRICS = ("f0_5", "auroc", "precision", "recall", "threshold", "n")


def models_root() -> Path:
    """The registry folder, as :func:`classifiers.registry.models_dir_default` finds it.

    Read here without importing the registry module, which loads PyTorch (seconds): only an
    administrator's promotion needs it.
    """
    import classifiers

    env = os.environ.get("CANTEEN_WATCH_MODELS")
    return Path(env) if env else Path(classifiers.__file__).resolve().parent / "models"


def _registry():  # type: ignore[no-untyped-def]
    from classifiers.registry import Registry

    return Registry(models_root())


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _metric(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else ("—" if value is None else value)


def render() -> None:
    ctx = w.page_context("models")
    st.title(t("page.models"))
    w.show_flash()
    root = models_root()
    try:
        index = cache.model_index(str(root), _stamp(root / "index.json"))
    except (OSError, ValueError) as exc:
        w.show_error(exc)
        return
    st.caption(t("models.folder", path=str(root)))
    active = index.get("active", {})
    models = index.get("models", {})
    if not models:
        st.info(t("models.empty"))
        return
    tasks = sorted({record.get("task", "?") for record in models.values()})
    cols = st.columns(max(1, len(tasks)))
    for column, task in zip(cols, tasks):
        version = active.get(task)
        metrics = (models.get(version) or {}).get("metrics", {}) if version else {}
        column.metric(t_value("task", task), f"F0.5 {_metric(metrics.get('f0_5'))}" if version else t("models.none_active"), border=True, help=version or None)
    rows = []
    for version, record in sorted(models.items(), key=lambda item: (item[1].get("task", ""), item[1].get("created", "")), reverse=False):
        metrics = record.get("metrics", {})
        rows.append({
            t("models.task"): t_value("task", record.get("task")), t("models.version"): version, t("models.active"): "✓" if active.get(record.get("task")) == version else "",
            t("models.created"): record.get("created", ""), **{t(f"metric.{m}"): _metric(metrics.get(m)) for m in METRICS}, t("models.sha256"): str(record.get("sha256", ""))[:12],
        })
    st.subheader(t("models.versions"))
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    promotions = index.get("promotions", [])
    st.subheader(t("models.promotions"))
    if promotions:
        st.dataframe(
            pd.DataFrame([
                {t("models.time"): p.get("time", ""), t("models.task"): t_value("task", p.get("task")), t("models.version"): p.get("version", ""), t("models.previous"): p.get("previous") or "—",
                 t("models.promoted"): t("common.yes") if p.get("promoted") else t("common.no"), t("models.reason"): p.get("reason", "")}
                for p in reversed(promotions)
            ]),
            hide_index=True,
        )
    else:
        st.caption(t("models.no_promotions"))
    if ctx.user.role is not Role.ADMIN:
        st.info(t("models.read_only"))
        return
    st.subheader(t("models.promote"))
    task = st.selectbox(t("models.task"), tasks, format_func=lambda v: t_value("task", v), key="md_task")
    candidates = [v for v, r in models.items() if r.get("task") == task and v != active.get(task)]
    if not candidates:
        st.caption(t("models.no_candidates"))
        return
    version = st.selectbox(t("models.candidate"), candidates, key="md_version")
    candidate = models[version].get("metrics", {})
    current = (models.get(active.get(task)) or {}).get("metrics", {}) if active.get(task) else {}
    st.dataframe(
        pd.DataFrame([{t("models.metric"): t(f"metric.{m}"), t("models.candidate"): _metric(candidate.get(m)), t("models.current"): _metric(current.get(m))} for m in ("f0_5", "auroc", "precision", "recall")]),
        hide_index=True,
    )
    from classifiers.registry import Registry

    registry = _registry()
    passes, why = Registry.gate(candidate, current or None)
    (st.success if passes else st.warning)(t("models.gate_pass") if passes else t("models.gate_fail", detail=w.md_escape(why)))
    force = st.checkbox(t("models.force"), key="md_force", disabled=passes)
    reason = st.text_input(t("models.reason_label"), key="md_reason")
    if st.button(t("models.promote_button", version=version), type="primary", key="md_promote"):
        try:
            record = queries.promote_model(ctx.services.sessions, ctx.services.sink, ctx.user, registry, version, force=force and not passes, reason=reason or None)
        except WorkflowError as exc:
            w.show_error(exc)
            return
        st.session_state.pop("md_reason", None)
        if record["promoted"]:
            w.flash("success", t("models.promoted_ok", version=version, task=t_value("task", task)))
        else:
            w.flash("warning", t("models.promotion_refused", version=version, detail=w.md_escape(record.get("reason", ""))))
        st.rerun()


if __name__ == "__main__":
    render()
