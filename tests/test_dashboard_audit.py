"""Audit trail through AppTest: ledger search by case, site and action; an entry with its inclusion proof
against the signed checkpoint; "verify now" (and what it says about a tampered ledger); evidence bundles.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import text

from canteen_watch.dashboard import queries
from canteen_watch.i18n import t
from canteen_watch.ledger.models import remove_guards
from canteen_watch.workflows.errors import PermissionDenied
from canteen_watch.workflows.violations import review_violation
from tests.test_dashboard_support import DashEnv, all_text, dash, page  # noqa: F401


def _reviewed(dash: DashEnv):  # type: ignore[no-untyped-def]
    case = dash.open_case("pest", "cam-a")
    dash.open_case("no_hat", "cam-c")
    review_violation(dash.sessions, dash.sink, dash.user("manager"), case.id, outcome="confirmed")
    dash.sink.tick(force=True)  # sign a checkpoint over everything
    return case


def test_search_by_case_shows_the_review_with_a_signed_inclusion_proof(dash: DashEnv) -> None:
    case = _reviewed(dash)
    at = dash.app("auditor").run()
    assert at.title[0].value == t("page.audit", "en")
    at.text_input(key="au_case").input(str(case.id))
    at.run()
    rows = at.dataframe[0].value
    assert list(rows["Action"]) == ["violation.reviewed", "violation.opened"]
    assert set(rows["Subject"]) == {f"violation:{case.id}"}
    assert at.selectbox(key="au_seq").value == int(rows["Seq"].iloc[0])
    signed = [s.value for s in at.success if s.value.startswith("Inclusion proof verified")]
    assert signed, all_text(at)
    proof = json.loads(next(c.value for c in at.code if c.language == "json"))
    assert proof["seq"] == int(rows["Seq"].iloc[0]) and proof["path"]


def test_search_by_site_and_action(dash: DashEnv) -> None:
    _reviewed(dash)
    at = dash.app("admin").run().switch_page(page("audit")).run()
    at.selectbox(key="au_site").select("s-c")
    at.run()
    assert set(at.dataframe[0].value["Subject"]) == {"violation:2"}
    at.selectbox(key="au_site").select(None)
    at.selectbox(key="au_action").select("violation.reviewed")
    at.run()
    assert list(at.dataframe[0].value["Action"]) == ["violation.reviewed"]


def test_verify_now_reports_an_intact_ledger_then_names_the_tampered_entry(dash: DashEnv) -> None:
    _reviewed(dash)
    at = dash.app("auditor").run()
    at.button(key="au_verify").click()
    at.run()
    assert at.get("progress"), "a progress bar is shown"
    assert any(s.value.startswith("Ledger intact") for s in at.success), all_text(at)
    with dash.services.engine.begin() as connection:
        remove_guards(connection)
        connection.execute(text("UPDATE ledger_entries SET payload = replace(payload, 'confirmed', 'false_positive') WHERE action = 'violation.reviewed'"))
    at.button(key="au_verify").click()
    at.run()
    failed = [e.value for e in at.error if e.value.startswith("Verification FAILED")]
    assert failed and "first bad entry #" in failed[0]


def test_evidence_bundle_of_a_case(dash: DashEnv) -> None:
    case = _reviewed(dash)
    at = dash.app("auditor").run()
    at.number_input(key="au_bundle_case").set_value(case.id)
    at.button(key="au_bundle_prepare").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    name, data, entries, images, missing = at.session_state["au_bundle"]
    assert name == f"evidence-case-{case.id}.zip" and entries == 2 and images == 1 and missing == 0
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = bundle.namelist()
        lines = bundle.read("entries.jsonl").decode().splitlines()
    assert {"README.txt", "manifest.json", "entries.jsonl", "proofs.json", "checkpoint.txt"} <= set(names)
    assert any(n.startswith("images/") for n in names) and len(lines) == 2
    assert at.get("download_button")


def test_the_ledger_is_for_city_wide_eyes_only(dash: DashEnv) -> None:
    _reviewed(dash)
    with pytest.raises(PermissionDenied):
        queries.ledger_search(dash.sessions, dash.user("inspector"))
    with pytest.raises(PermissionDenied):
        queries.ledger_search(dash.sessions, dash.user("manager"))
    with pytest.raises(PermissionDenied):
        queries.verify_ledger_progress(dash.sessions, dash.user("registrar"), None)
    assert queries.ledger_search(dash.sessions, dash.user("auditor")).total >= 3
