"""Care institutions through AppTest: registration with inline validation, status changes with reasons,
inspections, CSV import with its per-row error report, export; effects in the database and the ledger.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from canteen_watch.dashboard.widgets import md_escape
from canteen_watch.i18n import t
from canteen_watch.registry import credit_check_character, register_institution
from canteen_watch.workflows.models import InspectionRow, InstitutionRow
from tests.test_dashboard_support import DashEnv, all_text, dash, page  # noqa: F401


def credit_code(seq: int) -> str:
    first17 = f"91110108MA{seq:07d}"
    return first17 + credit_check_character(first17)


def institution(seq: int, district: str = "Central", **extra: object) -> dict:
    return {
        "name": f"Little Stars After-school Care {seq}", "credit_code": credit_code(seq), "licence_no": f"JY1110108{seq:07d}",
        "address": f"{seq} Garden Road", "district": district, "legal_rep": "Wang Fang", "contact_phone": "13800138000",
        "capacity": 40, "serves_meals": True, "opening_hours": "Mon-Fri 16:00-19:30", **extra,
    }


def unescape(text: str) -> str:
    """Markdown-escaped text as it reads on the page."""
    import re

    return re.sub(r"\\(.)", r"\1", text)


def _form(at, values: dict) -> None:  # type: ignore[no-untyped-def]
    for field, value in values.items():
        at.text_input(key=f"in_reg_{field}").input(value)
    at.run()


def _captions(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.value for c in at.caption]


def test_registrar_registers_with_inline_validation(dash: DashEnv) -> None:
    at = dash.app("registrar").run()
    assert at.title[0].value == t("page.institutions", "en")
    _form(at, {"credit_code": "91110108MA00000010", "licence_no": "JY123", "contact_phone": "12345"})
    problems = [c for c in _captions(at) if c.startswith(":red[")]
    assert len(problems) == 3, _captions(at)
    assert any("check character" in p for p in problems) and any("JY followed by 14 digits" in p for p in problems)
    good = institution(7)
    _form(at, {k: good[k] for k in ("name", "credit_code", "licence_no", "address", "legal_rep", "contact_phone", "opening_hours")})
    assert not [c for c in _captions(at) if c.startswith(":red[")]
    assert sum(c.startswith(":green[") for c in _captions(at)) == 3
    at.button(key="in_register").click()
    at.run()
    assert not at.exception
    assert at.success[0].value == t("inst.registered", "en", name=md_escape(good["name"]), site=md_escape(f"ci-{good['credit_code'].lower()}"))
    with dash.sessions() as session:
        row = session.scalars(select(InstitutionRow)).one()
    assert (row.credit_code, row.district, row.status, row.created_by) == (good["credit_code"], "Central", "submitted", dash.user("registrar").id)
    assert dash.ledger(f"institution:{row.site_id}") == [("registration.changed", f"user:{dash.user('registrar').id}")]
    assert at.text_input(key="in_reg_name").value == "", "the form is cleared after a registration"


def test_registration_refused_shows_every_problem(dash: DashEnv) -> None:
    at = dash.app("registrar").run()
    _form(at, {"name": "x", "credit_code": "bad"})
    at.button(key="in_register").click()
    at.run()
    assert at.error and "credit_code" in unescape(at.error[0].value)
    with dash.sessions() as session:
        assert session.scalars(select(InstitutionRow)).first() is None


def test_status_change_with_reason_and_inspection(dash: DashEnv) -> None:
    inst = register_institution(dash.sessions, dash.sink, dash.user("registrar"), institution(3))
    at = dash.app("registrar").run()
    assert inst.name in unescape(all_text(at))
    at.selectbox(key="in_status_action").select("register")
    at.text_input(key="in_status_reason").input("documents checked on site")
    next(b for b in at.button if b.label == t("inst.apply", "en")).click()
    at.run()
    assert at.success[0].value == t("inst.status_changed_to", "en", name=md_escape(inst.name), status=t("inst_status.registered", "en"))
    with dash.sessions() as session:
        row = session.get(InstitutionRow, inst.site_id)
    assert (row.status, row.status_reason) == ("registered", "documents checked on site")
    assert [a for a, _ in dash.ledger(f"institution:{inst.site_id}")] == ["registration.changed", "registration.changed"]
    assert not [f for f in at.get("form") if "in_inspection_form" in str(f.proto)], "registrars do not record inspections"

    at = dash.app("inspector").run().switch_page(page("institutions")).run()
    assert not any(b.key == "in_register" for b in at.button), "inspectors do not register"
    at.selectbox(key="in_insp_outcome").select("rectify")
    at.text_area(key="in_insp_findings").input("bin without lid\nno hand-washing soap")
    next(b for b in at.button if b.label == t("inst.record", "en")).click()
    at.run()
    assert at.success[0].value == t("inst.inspection_recorded", "en", name=md_escape(inst.name))
    with dash.sessions() as session:
        inspection = session.scalars(select(InspectionRow)).one()
    assert (inspection.outcome, inspection.findings, inspection.inspector_id) == ("rectify", ["bin without lid", "no hand-washing soap"], dash.user("inspector").id)


def _csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def test_import_reports_bad_rows_then_imports_the_good_ones(dash: DashEnv) -> None:
    data = _csv([institution(11), institution(12, contact_phone="12345"), institution(13, district="North")])
    at = dash.app("registrar").run()
    at.file_uploader(key="in_import_file").set_value(("list.csv", data, "text/csv"))
    at.run()
    at.button(key="in_import").click()
    at.run()
    assert not at.exception
    assert at.error[0].value == t("inst.import_refused", "en", total=3, bad=2)
    report = at.dataframe[-1].value
    assert list(report["Row"]) == [3, 4]
    assert list(report["Column"]) == [t("field.contact_phone", "en"), t("field.district", "en")]
    with dash.sessions() as session:
        assert session.scalars(select(InstitutionRow)).first() is None, "nothing is imported while rows are bad"
    at.checkbox(key="in_import_good").check()
    at.run()
    at.button(key="in_import").click()
    at.run()
    assert at.warning[0].value == t("inst.import_partial", "en", count=1, total=3, bad=2)
    with dash.sessions() as session:
        assert [r.credit_code for r in session.scalars(select(InstitutionRow)).all()] == [credit_code(11)]


def test_export_csv(dash: DashEnv) -> None:
    register_institution(dash.sessions, dash.sink, dash.user("registrar"), institution(21))
    at = dash.app("registrar").run()
    at.radio(key="in_export_format").set_value("csv")
    at.radio(key="in_export_headers").set_value("en")
    at.button(key="in_export_prepare").click()
    at.run()
    fmt, data = at.session_state["in_export"]
    assert fmt == "csv"
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["credit_code"] for r in rows] == [credit_code(21)]
    assert at.get("download_button")


def test_export_xlsx_re_imports(dash: DashEnv) -> None:
    from canteen_watch.registry.io import import_institutions

    register_institution(dash.sessions, dash.sink, dash.user("registrar"), institution(31))
    at = dash.app("admin").run().switch_page(page("institutions")).run()
    at.button(key="in_export_prepare").click()
    at.run()
    fmt, data = at.session_state["in_export"]
    assert fmt == "xlsx" and data[:2] == b"PK"
    report = import_institutions(dash.sessions, dash.sink, dash.user("admin"), data)
    assert not report.committed and [e.message.split(" (")[0] for e in report.errors] == [f"credit code {credit_code(31)} is already registered"], "the Excel export is read back row by row"


def test_people_s_text_is_shown_literally(dash: DashEnv) -> None:
    """A name with Markdown (a link, an image, bold) is shown as typed, never rendered."""
    hostile = "[Free food](http://evil.example) ![x](http://evil.example/p.png) **Care**"
    inst = register_institution(dash.sessions, dash.sink, dash.user("registrar"), institution(41, name=hostile))
    at = dash.app("registrar").run()
    heading = next(h.value for h in at.subheader if "Free food" in h.value)
    assert heading.startswith(md_escape(hostile)) and "](http" not in heading
    assert unescape(heading).startswith(hostile)
    assert inst.name == hostile, "stored verbatim"
