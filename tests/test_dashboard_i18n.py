"""The message catalogue: both languages have the same keys and fields, every key the dashboard uses
exists, every coded value it shows is translated, and the pages hold no untranslated UI literals.
"""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from canteen_watch.auth import Role
from canteen_watch.config import RoomKind, SiteKind
from canteen_watch.i18n import CATALOGUES, DEFAULT_LANGUAGE, get_language, set_language, t, t_value
from canteen_watch.registry.institutions import INPUT_FIELDS, INSPECTION_OUTCOMES
from canteen_watch.workflows.states import InstitutionAction, InstitutionStatus, ViolationAction, ViolationState
from canteen_watch.workflows.tiers import DEFAULT_TIERS

DASHBOARD = Path(__file__).resolve().parents[1] / "canteen_watch" / "dashboard"
UI_SOURCES = sorted(DASHBOARD.glob("pages/*.py")) + [DASHBOARD / "app.py", DASHBOARD / "widgets.py"]
ZH, EN = CATALOGUES["zh-CN"], CATALOGUES["en"]

#: Streamlit calls whose first argument (or label/help/placeholder/caption keywords) is shown to people.
UI_CALLS = {
    "title", "header", "subheader", "markdown", "caption", "text", "write", "success", "info", "warning", "error", "toast", "metric",
    "button", "download_button", "form_submit_button", "selectbox", "multiselect", "radio", "checkbox", "toggle", "text_input", "text_area",
    "number_input", "date_input", "file_uploader", "segmented_control", "pills", "expander", "progress", "tabs", "Page", "image", "spinner",
}
SHOWN_KEYWORDS = {"label", "help", "placeholder", "caption", "text", "title"}
#: Literals allowed on purpose: the language switch reads the same in both languages.
ALLOWED = {"语言 / Language"}


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


def test_both_catalogues_have_the_same_keys_and_fields() -> None:
    assert set(ZH) == set(EN), f"only in zh-CN: {sorted(set(ZH) - set(EN))}; only in en: {sorted(set(EN) - set(ZH))}"
    for key in ZH:
        assert _fields(ZH[key]) == _fields(EN[key]), key
        assert ZH[key].strip() and EN[key].strip(), key


def _used_keys() -> tuple[set[str], set[str]]:
    literal, prefixes = set(), set()
    for path in DASHBOARD.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        literal |= set(re.findall(r"""\bt\(\s*["']([a-z_0-9]+\.[a-z_0-9.]+)["']""", source))
        literal |= set(re.findall(r"""["']((?:fp|review|rect|inst)\.[a-z_0-9]+)["']""", source)) & set(ZH)
        prefixes |= set(re.findall(r"""\bt\(\s*f["']([a-z_]+)\.\{""", source))
        prefixes |= set(re.findall(r"""\bt_value\(\s*["']([a-z_]+)["']""", source))
    return literal, prefixes


def test_every_key_the_dashboard_uses_exists() -> None:
    literal, prefixes = _used_keys()
    assert literal, "the scan found the t() calls"
    assert sorted(literal - set(ZH)) == []
    for prefix in prefixes:
        assert any(key.startswith(prefix + ".") for key in ZH), prefix


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("state", [s.value for s in ViolationState]),
        ("action", [a.value for a in ViolationAction]),
        ("label", [label for tier in DEFAULT_TIERS for label in tier.labels]),
        ("tier", [tier.tier for tier in DEFAULT_TIERS]),
        ("role", [r.value for r in Role]),
        ("inst_status", [s.value for s in InstitutionStatus]),
        ("inst_action", [a.value for a in InstitutionAction] + ["created", "updated"]),
        ("inspection", list(INSPECTION_OUTCOMES)),
        ("room", [r.value for r in RoomKind]),
        ("site_kind", [k.value for k in SiteKind]),
        ("camera_event", ["offline", "online", "quality_alert", "quality_ok"]),
        ("quality", ["blurred", "dark", "blocked"]),
        ("escalation", ["none", "yellow", "red"]),
        ("outcome", ["confirmed", "false_positive"]),
        ("recheck", ["accepted", "rejected"]),
        ("field", list(INPUT_FIELDS) + ["reason", "note", "photo", "outcome", "findings", "page", "per_page", "violation_id", "password", "username", "scope"]),
        ("task", ["hat", "mask", "pest", "storage"]),
        ("review.state", ["unreviewed", "reviewed", "all"]),
    ],
)
def test_every_coded_value_is_translated(kind: str, values: list[object]) -> None:
    for value in values:
        key = f"{kind}_{value}" if kind == "review.state" else f"{kind}.{value}"
        assert key in ZH, key


def _shown_strings(node: ast.Call) -> list[ast.AST]:
    shown = list(node.args[:1])
    if isinstance(node.func, ast.Attribute) and node.func.attr == "tabs" and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
        shown = list(node.args[0].elts)
    shown += [kw.value for kw in node.keywords if kw.arg in SHOWN_KEYWORDS]
    return shown


def _is_untranslated(value: ast.AST) -> str | None:
    """The literal text of ``value`` if it holds words (not just punctuation, numbers or markup)."""
    parts: list[str] = []
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        parts = [value.value]
    elif isinstance(value, ast.JoinedStr):
        parts = [v.value for v in value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    text = "".join(parts)
    if text in ALLOWED:
        return None
    words = re.sub(r":[a-z_]+\[|:material/[a-z_]+:|[`*#_\-\s·:;,.()/#%|\[\]{}<>=→←✓✗…—]", "", text)
    return text if re.search(r"[A-Za-z\u4e00-\u9fff]", words) else None


def test_pages_have_no_untranslated_literal_ui_strings() -> None:
    problems = []
    for path in UI_SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in UI_CALLS:
                if isinstance(node.func.value, ast.Name) and node.func.value.id in ("log", "logging", "logger"):
                    continue
                for value in _shown_strings(node):
                    literal = _is_untranslated(value)
                    if literal is not None:
                        problems.append(f"{path.name}:{node.lineno}: {literal!r}")
    assert problems == []


def test_the_check_catches_a_literal() -> None:
    tree = ast.parse('st.button("Confirm")\nst.caption(f"{t(\'x\')}: {value}")\nst.markdown(f"Total: {n}")')
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    flagged = [_is_untranslated(v) for c in calls for v in _shown_strings(c)]
    assert [f for f in flagged if f] == ["Confirm", "Total: "]


def test_t_formats_falls_back_and_tolerates_mistakes() -> None:
    previous = get_language()
    try:
        assert set_language("fr") == DEFAULT_LANGUAGE
        assert t("review.confirmed", count=3) == "已确认 3 个案件。"
        set_language("en")
        assert t("review.confirmed", count=3) == "3 case(s) confirmed."
        assert t("no.such.key") == "no.such.key"
        assert t("review.confirmed", wrong=1) == EN["review.confirmed"]
        assert t_value("state", "open") == "To review" and t_value("state", "weird") == "weird" and t_value("state", None) == ""
        assert t("page.overview", "zh-CN") == "总览"
    finally:
        set_language(previous)
