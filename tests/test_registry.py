"""The care-institution registry: identifier checks, registration workflow, inspections, search,
CSV/Excel import with per-row errors, export, and hostile input."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import timedelta

import pytest

from canteen_watch.auth import Role
from canteen_watch.registry.codes import (
    CREDIT_CHARSET,
    credit_check_character,
    is_valid_credit_code,
    normalise_credit_code,
    normalise_licence,
    normalise_phone,
)
from canteen_watch.registry.institutions import (
    change_institution_status,
    get_institution,
    list_inspections,
    record_inspection,
    register_institution,
    search_institutions,
    update_institution,
)
from canteen_watch.registry.io import export_institutions, import_institutions
from canteen_watch.workflows.errors import ConflictError, InputError, NotFoundError, PermissionDenied, TransitionError
from canteen_watch.workflows.spreadsheet import xlsx_bytes
from canteen_watch.workflows.violations import list_violations, review_violation
from tests.test_workflows_support import T0, WorkflowEnv, make_env, wf, wf_sqlite, xlsx_rows  # noqa: F401

#: Published codes: the brief's example, Huawei Technologies, Shenzhen Tencent Computer Systems, Beijing Baidu Netcom.
PUBLISHED_CODES = ("91350100M000100Y43", "914403001922038216", "91440300708461136T", "91110000802100433B")
SALT = "test-salt-0123456789abcdef"


def code(n: int) -> str:
    """A valid credit code built with the algorithm."""
    body = f"91350100MA{n:07d}"
    return body + credit_check_character(body)


def sample(n: int, **changes: object) -> dict[str, object]:
    return {
        "name": f"阳光托管中心 {n}", "credit_code": code(n), "licence_no": f"JY{13501020000000 + n:014d}", "address": f"鼓楼区五一路{n}号",
        "district": "Central", "legal_rep": "张三", "contact_phone": "13800138000", "capacity": 40, "serves_meals": True,
        "opening_hours": "周一至周五 16:00-19:30", **changes,
    }


# ------------------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("value", PUBLISHED_CODES)
def test_published_credit_codes_are_valid(value: str) -> None:
    assert is_valid_credit_code(value) and normalise_credit_code(value) == value
    assert credit_check_character(value[:17]) == value[17]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("91350100M000100Y44", "check character is '4' but should be '3'"),
        ("91350100M000100Y4", "must be 18 characters, not 17"),
        ("91350100M000100Y433", "must be 18 characters, not 19"),
        ("91350100I000100Y43", "character 9 ('I') is not allowed"),
        ("91350100O000100Y43", "character 9 ('O') is not allowed"),
        ("9135010SM000100Y43", "character 8 ('S') is not allowed"),
        ("91350100M000100V43", "character 16 ('V') is not allowed"),
        ("9135010ZM000100Y43", "character 8 ('Z') is not allowed"),
        ("91350A00M000100Y4" + credit_check_character("91350A00M000100Y4"), "administrative division code"),
        ("91350100M000100Y4Z", "check character 'Z' is not allowed"),
        ("", "is required"),
        ("９１３５０１００Ｍ０００１００Ｙ４３", "not allowed"),  # full-width digits
        ("91350100M000100Y4\x00", "not allowed"),
    ],
)
def test_invalid_credit_codes_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalise_credit_code(value)
    assert not is_valid_credit_code(value)


def test_constructed_codes_and_every_single_character_error_is_detected() -> None:
    assert normalise_credit_code(" 91350100m000100y43 ") == "91350100M000100Y43", "spaces and lower case are normalised"
    generator = random.Random(32100)
    for _ in range(40):
        body = "9" + generator.choice("123") + "".join(generator.choice("0123456789") for _ in range(6)) + "".join(generator.choice(CREDIT_CHARSET) for _ in range(9))
        valid = body + credit_check_character(body)
        assert is_valid_credit_code(valid)
        for position in range(18):
            if 2 <= position < 8:
                continue  # digits only there; covered by the division-code check
            for replacement in CREDIT_CHARSET:
                if replacement != valid[position]:
                    mistyped = valid[:position] + replacement + valid[position + 1:]
                    assert not is_valid_credit_code(mistyped), (valid, mistyped)
        swapped = valid[8] + valid[9]
        if swapped[0] != swapped[1]:
            assert not is_valid_credit_code(valid[:8] + swapped[::-1] + valid[10:]), "adjacent transpositions are detected"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("13800138000", "13800138000"), ("+86 138 0013 8000", "13800138000"), ("19912345678", "19912345678"), ("010-12345678", "010-12345678"),
     ("01012345678", "010-12345678"), ("0755 8888 8888", "0755-88888888"), ("0591-8765432-12", "0591-8765432-12"), (13800138000, "13800138000")],
)
def test_phone_numbers_are_normalised(value: object, expected: str) -> None:
    assert normalise_phone(value) == expected


@pytest.mark.parametrize("value", ["12800138000", "1380013800", "138001380001", "12345678", "010-0123456", "(010)12345678", "1380013800a", "+1 415 555 0100", "", "138 0013 8000; DROP TABLE"])
def test_bad_phone_numbers_are_refused(value: str) -> None:
    with pytest.raises(InputError, match="contact_phone"):
        normalise_phone(value)


def test_licence_numbers() -> None:
    assert normalise_licence(" jy13501020012345 ") == "JY13501020012345"
    for bad in ("JY1350102001234", "JY135010200123456", "JX13501020012345", "JY1350102001234X", ""):
        with pytest.raises(InputError, match="licence_no"):
            normalise_licence(bad)


# ------------------------------------------------------------------------------------- registration


def test_registration_workflow_links_cameras_and_violations(wf: WorkflowEnv) -> None:
    registrar = wf.user("registrar")
    created = register_institution(wf.sessions, wf.sink, registrar, sample(1), now=T0, salt=SALT)
    site_id = created.site_id
    assert site_id == f"ci-{code(1).lower()}" and created.status == "submitted"
    with pytest.raises(ConflictError, match="already registered"):
        register_institution(wf.sessions, wf.sink, registrar, sample(1, name="Another", licence_no="JY13501020099999"), now=T0)
    with pytest.raises(TransitionError, match="cannot suspend an institution that is submitted"):
        change_institution_status(wf.sessions, wf.sink, registrar, site_id, "suspend", reason="x", now=T0)
    with pytest.raises(InputError, match="reason: is required"):
        change_institution_status(wf.sessions, wf.sink, registrar, site_id, "register", reason="", now=T0)
    steps = [("register", "registered"), ("suspend", "suspended"), ("reinstate", "registered"), ("revoke", "revoked")]
    for i, (action, status) in enumerate(steps):
        assert change_institution_status(wf.sessions, wf.sink, registrar, site_id, action, reason=f"step {i}", now=T0 + timedelta(hours=i + 1)).status == status
    with pytest.raises(TransitionError, match="final state"):
        change_institution_status(wf.sessions, wf.sink, registrar, site_id, "withdraw", reason="late", now=T0)
    with pytest.raises(InputError, match="unknown action"):
        change_institution_status(wf.sessions, wf.sink, registrar, site_id, "delete", reason="x", now=T0)

    wf.add_camera("cam-ci", site_id)  # its kitchen camera, configured with site = "<site id>"
    case = wf.open_case("pest", "cam-ci", T0 + timedelta(days=1))
    assert case.site_id == site_id and case.district == "Central"
    care_manager = wf.quick_user("care-manager", Role.MANAGER, (f"site:{site_id}",))
    assert [v.id for v in list_violations(wf.sessions, care_manager).items] == [case.id]
    assert review_violation(wf.sessions, wf.sink, care_manager, case.id, outcome="confirmed").state == "rectification_due"
    assert list_violations(wf.sessions, registrar).total == 1

    detail = get_institution(wf.sessions, registrar, site_id)
    assert [c.id for c in detail.cameras] == ["cam-ci"] and detail.open_violations == 1 and detail.allowed_actions == []
    assert [e.action for e in detail.events] == ["created", "register", "suspend", "reinstate", "revoke"]
    assert detail.events[2].from_status == "registered" and detail.events[2].to_status == "suspended" and detail.events[2].reason == "step 1"
    assert all(e.actor_id == registrar.id for e in detail.events)
    payloads = [json.loads(p) for p in wf.ledger_payloads(f"institution:{site_id}")]
    assert [p["change"] for p in payloads] == ["created", "register", "suspend", "reinstate", "revoke"]
    text = json.dumps(payloads, ensure_ascii=False)
    for personal in ("张三", "13800138000", "五一路"):
        assert personal not in text, "no personal data in the ledger"
    assert payloads[0]["contact_phone_hash"].startswith("hmac-sha256:") and payloads[0]["credit_code"] == code(1)
    wf.verify_ledger()


def test_registrar_jurisdiction_updates_and_hostile_input(wf_sqlite: WorkflowEnv) -> None:
    env = wf_sqlite
    registrar, inspector, manager = env.user("registrar"), env.user("inspector"), env.user("manager")
    with pytest.raises(PermissionDenied, match="district North is outside"):
        register_institution(env.sessions, env.sink, registrar, sample(2, district="North"))
    with pytest.raises(PermissionDenied, match="inspector may not institution.write"):
        register_institution(env.sessions, env.sink, inspector, sample(2))
    hostile_name = "<script>alert('x')</script> Robert'); DROP TABLE care_institutions;-- =1+1"
    created = register_institution(env.sessions, env.sink, env.user("admin"), sample(2, name=hostile_name, district="North"))
    assert get_institution(env.sessions, env.user("auditor"), created.site_id).institution.name == hostile_name
    with pytest.raises(PermissionDenied):
        get_institution(env.sessions, registrar, created.site_id)
    with pytest.raises(PermissionDenied):
        update_institution(env.sessions, env.sink, registrar, created.site_id, {"capacity": 10}, reason="x")
    mine = register_institution(env.sessions, env.sink, registrar, sample(3))
    with pytest.raises(PermissionDenied):
        update_institution(env.sessions, env.sink, registrar, mine.site_id, {"district": "North"}, reason="moved")
    updated = update_institution(env.sessions, env.sink, registrar, mine.site_id, {"capacity": "55", "contact_phone": "0591-87654321", "serves_meals": "否"}, reason="annual update")
    assert (updated.capacity, updated.contact_phone, updated.serves_meals) == (55, "0591-87654321", False)
    assert get_institution(env.sessions, registrar, mine.site_id).events[-1].changed_fields == ["capacity", "contact_phone", "serves_meals"]
    with pytest.raises(ConflictError):
        update_institution(env.sessions, env.sink, registrar, mine.site_id, {"credit_code": code(2)}, reason="typo")
    with pytest.raises(InputError, match="site_id"):
        update_institution(env.sessions, env.sink, registrar, mine.site_id, {"site_id": "other"}, reason="x")
    for change, message in (
        ({"name": "x" * 201}, "name: is 201 characters long; at most 200"),
        ({"name": "bad\x00name"}, "U\\+0000"),
        ({"address": "line\nbreak"}, "U\\+000A"),
        ({"legal_rep": "李\u200b四"}, "U\\+200B"),
        ({"capacity": 0}, "between 1 and 10000"),
        ({"capacity": "40; DROP TABLE"}, "whole number"),
        ({"serves_meals": "perhaps"}, "yes or no"),
        ({"colour": "red"}, "colour: is not an institution field"),
    ):
        with pytest.raises(InputError, match=message):
            update_institution(env.sessions, env.sink, registrar, mine.site_id, change, reason="x")
    with pytest.raises(InputError) as caught:
        register_institution(env.sessions, env.sink, registrar, sample(4, credit_code="123", contact_phone="12", capacity=-1))
    assert all(word in str(caught.value) for word in ("credit_code", "contact_phone", "capacity")), "every problem is listed"
    with pytest.raises(NotFoundError):
        get_institution(env.sessions, registrar, "ci-missing")
    with pytest.raises(PermissionDenied):
        register_institution(env.sessions, env.sink, manager, sample(5))
    # linking to an existing site: kind and district must agree
    with pytest.raises(ConflictError, match="is a school_canteen"):
        register_institution(env.sessions, env.sink, registrar, sample(6, site_id="s-a"))
    linked = register_institution(env.sessions, env.sink, registrar, sample(7, site_id="s-b"))
    assert linked.site_id == "s-b"


def test_search_inspections_and_scoping(wf_sqlite: WorkflowEnv) -> None:
    env = wf_sqlite
    admin, registrar, inspector, manager = env.user("admin"), env.user("registrar"), env.user("inspector"), env.user("manager")
    register_institution(env.sessions, env.sink, admin, sample(10, name="100% Happy_Kids 托管"))
    register_institution(env.sessions, env.sink, admin, sample(11, name="Happy Kids North", district="North"))
    register_institution(env.sessions, env.sink, admin, sample(12, name="Little Stars", serves_meals=False))
    assert search_institutions(env.sessions, admin, query="Happy").total == 2
    assert [i.name for i in search_institutions(env.sessions, admin, query="100%").items] == ["100% Happy_Kids 托管"]
    assert search_institutions(env.sessions, admin, query="y_K").total == 1, "_ is literal"
    assert search_institutions(env.sessions, admin, query="%").total == 1, "% is literal"
    assert search_institutions(env.sessions, admin, query="' OR '1'='1").total == 0
    assert search_institutions(env.sessions, admin, query=code(12)[-6:].lower()).items[0].name == "Little Stars"
    assert search_institutions(env.sessions, registrar).total == 2, "a Central registrar sees Central"
    assert search_institutions(env.sessions, admin, serves_meals=False).total == 1
    assert search_institutions(env.sessions, admin, district="North", status="submitted").total == 1
    assert search_institutions(env.sessions, manager).total == 0, "a canteen manager sees only their own site"
    page = search_institutions(env.sessions, admin, per_page=2, page=2)
    assert page.total == 3 and len(page.items) == 1
    with pytest.raises(InputError):
        search_institutions(env.sessions, admin, status="gone")
    with pytest.raises(InputError):
        search_institutions(env.sessions, admin, query="a" * 201)

    site_id = f"ci-{code(10).lower()}"
    inspection = record_inspection(env.sessions, env.sink, inspector, site_id, outcome="rectify", findings=["冰箱生熟未分开", "<b>no</b> sample retention"], note="re-visit in 7 days", inspected_at=T0, now=T0 + timedelta(hours=1))
    assert inspection.findings == ["冰箱生熟未分开", "<b>no</b> sample retention"] and inspection.inspector_id == inspector.id
    record_inspection(env.sessions, env.sink, inspector, "s-a", outcome="pass", findings=[], now=T0)  # school canteens too
    for actor, site in ((registrar, site_id), (manager, "s-a"), (inspector, f"ci-{code(11).lower()}")):
        with pytest.raises(PermissionDenied):
            record_inspection(env.sessions, env.sink, actor, site, outcome="pass", findings=[], now=T0)
    for kwargs, message in (({"outcome": "great"}, "outcome"), ({"findings": ["x"] * 51}, "at most 50"), ({"inspected_at": T0 + timedelta(days=1)}, "future")):
        with pytest.raises(InputError, match=message):
            record_inspection(env.sessions, env.sink, inspector, site_id, **{"outcome": "pass", "findings": [], "now": T0, **kwargs})
    assert [i.id for i in list_inspections(env.sessions, registrar, site_id)] == [inspection.id]
    assert get_institution(env.sessions, inspector, site_id).inspections[0].outcome == "rectify"
    assert env.ledger_actions(f"institution:{site_id}")[-1] == "inspection.recorded"


# ------------------------------------------------------------------------------------- import / export

HEADER = ["name", "credit_code", "licence_no", "address", "district", "legal_rep", "contact_phone", "capacity", "serves_meals", "opening_hours"]


def _csv(rows: list[list[object]], header: list[str] = HEADER, encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def _row(n: int, **changes: object) -> list[object]:
    values = sample(n, **changes)
    return [values[h] for h in HEADER]


def test_csv_import_with_mixed_rows_is_all_or_nothing_unless_asked(wf: WorkflowEnv) -> None:
    registrar = wf.user("registrar")
    register_institution(wf.sessions, wf.sink, registrar, sample(20))  # already registered
    rows = [
        _row(21),
        _row(22, credit_code=code(22)[:-1] + ("0" if code(22)[-1] != "0" else "1")),  # wrong check character
        _row(23, contact_phone="12345", capacity="many"),                             # two problems in one row
        _row(24),
        _row(21, name="Duplicate in file"),                                           # duplicate credit code in the file
        _row(20, name="Already registered"),                                          # duplicate in the database
        _row(25, district="North"),                                                   # outside the registrar's districts
        ["", "", "", "", "", "", "", "", "", ""],                                      # empty row: skipped
        _row(26, name="=HYPERLINK(\"http://evil\",\"click\")", legal_rep="<img src=x onerror=alert(1)>"),
    ]
    data = _csv(rows)
    report = import_institutions(wf.sessions, wf.sink, registrar, data, now=T0)
    assert not report.committed and report.imported == [] and report.total_rows == 8
    assert report.bad_rows == [3, 4, 6, 7, 8]
    messages = [str(e) for e in report.errors]
    assert any(m.startswith("row 3, credit_code: check character") for m in messages)
    assert any(m.startswith("row 4, contact_phone") for m in messages) and any(m.startswith("row 4, capacity") for m in messages)
    assert any(m.startswith("row 6, credit_code: duplicate credit code") and "also in row 2" in m for m in messages)
    assert any(m.startswith("row 7, credit_code") and "already registered" in m for m in messages)
    assert any(m.startswith("row 8, district") and "outside your jurisdiction" in m for m in messages)
    assert search_institutions(wf.sessions, registrar).total == 1, "nothing was imported"

    report = import_institutions(wf.sessions, wf.sink, registrar, data, good_rows_only=True, now=T0)
    assert report.committed and len(report.imported) == 3 and report.bad_rows == [3, 4, 6, 7, 8]
    names = {i.name for i in search_institutions(wf.sessions, registrar, per_page=50).items}
    assert "=HYPERLINK(\"http://evil\",\"click\")" in names and "Duplicate in file" not in names
    again = import_institutions(wf.sessions, wf.sink, registrar, _csv([_row(21)]), now=T0)
    assert not again.committed and "already registered" in str(again.errors[0])
    wf.verify_ledger()


def test_excel_import_chinese_headers_gb18030_and_file_level_errors(wf_sqlite: WorkflowEnv) -> None:
    env = wf_sqlite
    admin = env.user("admin")
    chinese = ["机构名称", "统一社会信用代码", "食品经营许可证编号", "地址", "所属区", "法定代表人", "联系电话", "容纳人数", "是否供餐", "营业时间"]
    rows = [_row(30), _row(31, capacity=0), _row(32)]
    rows[0][6] = 13800138000  # Excel stores phone numbers as numbers
    rows[2][8] = "是"
    workbook = xlsx_bytes([("Sheet1", chinese, rows)])
    report = import_institutions(env.sessions, env.sink, admin, workbook, now=T0)
    assert not report.committed and [str(e) for e in report.errors] == ["row 3, capacity: must be between 1 and 10000, not 0"]
    report = import_institutions(env.sessions, env.sink, admin, workbook, good_rows_only=True, initial_status="registered", now=T0)
    assert len(report.imported) == 2
    assert {i.status for i in search_institutions(env.sessions, admin).items} == {"registered"}
    gbk = _csv([_row(33)], header=chinese, encoding="gb18030")
    assert import_institutions(env.sessions, env.sink, admin, gbk, now=T0).committed
    for data, message in (
        (_csv([_row(34)], header=HEADER[:-1]), "opening_hours: required column is missing"),
        (_csv([_row(35) + ["x"]], header=HEADER + ["favourite colour"]), "favourite colour: unknown column"),
        (_csv([_row(36)], header=HEADER[:2] + ["name"] + HEADER[3:]), "duplicate column"),
    ):
        report = import_institutions(env.sessions, env.sink, admin, data, now=T0)
        assert not report.committed and message in "; ".join(str(e) for e in report.errors)
    for data, message in ((b"PK\x03\x04 not really a zip", "not a readable .xlsx"), (b"a,b\x00,c", "NUL"), (b"", "is empty"), (b"x" * (5 * 1024 * 1024 + 1), "at most")):
        with pytest.raises(InputError, match=message):
            import_institutions(env.sessions, env.sink, admin, data, now=T0)
    with pytest.raises(PermissionDenied):
        import_institutions(env.sessions, env.sink, env.user("inspector"), _csv([_row(37)]), now=T0)
    with pytest.raises(InputError, match="initial_status"):
        import_institutions(env.sessions, env.sink, admin, _csv([_row(37)]), initial_status="revoked", now=T0)


def test_export_is_formula_safe_and_round_trips(wf_sqlite: WorkflowEnv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = wf_sqlite
    admin = env.user("admin")
    formula = '=HYPERLINK("http://evil.example","click me")'
    register_institution(env.sessions, env.sink, admin, sample(40, name=formula, opening_hours="-1+2 @ 16:00"))
    register_institution(env.sessions, env.sink, admin, sample(41, district="North", legal_rep="<script>x</script>"))
    workbook = export_institutions(env.sessions, admin, file_format="xlsx")
    rows = xlsx_rows(workbook)
    assert rows[0][:3] == ["site_id", "name", "credit_code"] and len(rows) == 3
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(workbook)).worksheets[0]
    cell = next(c for c in sheet["B"] if c.value == formula)
    assert cell.data_type == "s", "exported as text, never as a formula"
    text = export_institutions(env.sessions, admin, file_format="csv", headers="zh").decode("utf-8-sig")
    assert "'=HYPERLINK" in text and "'-1+2 @ 16:00" in text and text.splitlines()[0].startswith("站点编号,机构名称")
    assert export_institutions(env.sessions, env.user("registrar"), file_format="csv").decode("utf-8-sig").count("\n") == 2, "header + Central only"
    assert export_institutions(env.sessions, env.user("manager"), file_format="csv").decode("utf-8-sig").count("\n") == 1, "a canteen manager: header only"
    original = {i.site_id: i for i in search_institutions(env.sessions, admin).items}
    for index, data in enumerate((workbook, text.encode("utf-8"))):
        fresh = make_env(f"sqlite:///{tmp_path / f'fresh{index}.db'}")
        try:
            report = import_institutions(fresh.sessions, fresh.sink, fresh.user("admin"), data, now=T0)
            assert report.committed and len(report.imported) == 2, report.errors
            imported = {i.site_id: i for i in search_institutions(fresh.sessions, fresh.user("admin")).items}
            for site_id, item in original.items():
                got = imported[site_id]
                assert (got.name, got.credit_code, got.legal_rep, got.opening_hours, got.capacity, got.serves_meals, got.contact_phone) == (
                    item.name, item.credit_code, item.legal_rep, item.opening_hours, item.capacity, item.serves_meals, item.contact_phone)
        finally:
            fresh.engine.dispose()
