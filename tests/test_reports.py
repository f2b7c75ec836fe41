"""Excel reports: violations of a site or district over a date range, and the registry export."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from canteen_watch.registry.institutions import register_institution
from canteen_watch.reports import VIOLATION_HEADERS, export_registry_xlsx, export_violations_xlsx
from canteen_watch.storage import SnapshotStore
from canteen_watch.workflows.errors import InputError, PermissionDenied
from canteen_watch.workflows.escalation import escalate_overdue
from canteen_watch.workflows.rectification import recheck_rectification, submit_rectification
from canteen_watch.workflows.violations import review_violation
from tests.test_registry import sample
from tests.test_workflows_support import T0, WorkflowEnv, jpeg_bytes, store, wf, wf_sqlite, xlsx_rows  # noqa: F401

DAY = timedelta(days=1)


@pytest.mark.s3
def test_violation_report_for_a_district(wf: WorkflowEnv, store: SnapshotStore) -> None:
    env, system = wf, wf.system
    due = env.open_case("pest", "cam-a", T0)                      # confirmed, never rectified: overdue
    rejected = env.open_case("open_storage", "cam-a", T0 + DAY)   # rectified, rejected, due again
    closed = env.open_case("no_mask", "cam-b", T0 + DAY)          # rectified and accepted
    dismissed = env.open_case("no_hat", "cam-b", T0 + 2 * DAY)    # false positive
    env.open_case("pest", "cam-c", T0)                            # North: not in the Central report
    env.open_case("pest", "cam-a", T0 + 40 * DAY)                 # after the period
    manager = env.user("manager")
    review_violation(env.sessions, env.sink, manager, due.id, outcome="confirmed", now=T0 + DAY)
    review_violation(env.sessions, env.sink, manager, rejected.id, outcome="confirmed", now=T0 + DAY)
    submit_rectification(env.sessions, env.sink, store, manager, rejected.id, note="covered", photo=jpeg_bytes(), now=T0 + 2 * DAY)
    recheck_rectification(env.sessions, env.sink, env.user("inspector"), rejected.id, accepted=False, note="not enough", now=T0 + 3 * DAY)
    review_violation(env.sessions, env.sink, system, closed.id, outcome="confirmed", now=T0 + DAY)
    submit_rectification(env.sessions, env.sink, store, system, closed.id, note="masks", photo=jpeg_bytes(), now=T0 + 2 * DAY)
    recheck_rectification(env.sessions, env.sink, env.user("inspector"), closed.id, accepted=True, now=T0 + 3 * DAY)
    review_violation(env.sessions, env.sink, env.user("inspector"), dismissed.id, outcome="false_positive", reason='=HYPERLINK("http://x","y")', now=T0 + 3 * DAY)
    now = T0 + 10 * DAY
    escalate_overdue(env.sessions, env.sink, now, config=env.config)

    data = export_violations_xlsx(env.sessions, env.user("inspector"), district="Central", start=T0, end=T0 + 30 * DAY, now=now)
    rows = xlsx_rows(data, "Violations")
    assert rows[0] == VIOLATION_HEADERS
    table = {row[0]: dict(zip(VIOLATION_HEADERS, row)) for row in rows[1:]}
    assert set(table) == {due.id, rejected.id, closed.id, dismissed.id}
    assert table[due.id]["Review outcome"] == "confirmed" and table[due.id]["Reviewer role"] == "canteen_manager"
    assert table[due.id]["Rectification status"] == "due" and table[due.id]["Overdue days"] == 9 and table[due.id]["Escalation"] == "red"
    assert table[rejected.id]["Rectification status"] == "rejected, due again" and table[rejected.id]["Re-check outcome"] == "rejected"
    assert table[rejected.id]["Overdue days"] == 4 and table[rejected.id]["Rectification rounds"] == 1
    assert table[closed.id]["Rectification status"] == "accepted" and table[closed.id]["Closed (UTC)"] == (T0 + 3 * DAY).replace(tzinfo=None)
    assert table[closed.id]["Reviewer role"] == "admin", "a system actor reviews as admin"
    assert table[dismissed.id]["Review outcome"] == "false_positive" and table[dismissed.id]["Rectification status"] == "not required"
    assert table[dismissed.id]["Review reason"] == '=HYPERLINK("http://x","y")'
    sheet = load_workbook(io.BytesIO(data))["Violations"]
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row), "no formulas anywhere"
    summary = {row[0]: row for row in xlsx_rows(data, "Summary")[1:]}
    header = xlsx_rows(data, "Summary")[0]
    assert set(summary) == {"s-a", "s-b"}
    site_a = dict(zip(header, summary["s-a"]))
    assert site_a["Cases"] == 2 and site_a["Overdue"] == 2 and site_a["Confirmed"] == 2 and site_a["Closed"] == 0
    site_b = dict(zip(header, summary["s-b"]))
    assert site_b["Rectification rate"] == 1 and site_b["Dismissed"] == 1

    own = xlsx_rows(export_violations_xlsx(env.sessions, manager, site_id="s-a", start=T0, end=T0 + 30 * DAY, now=now), "Violations")
    assert {row[0] for row in own[1:]} == {due.id, rejected.id}
    assert len(xlsx_rows(export_violations_xlsx(env.sessions, manager, start=T0, end=T0 + 60 * DAY, now=now), "Violations")) == 4, "no filter: the manager's own site only"
    for kwargs in ({"district": "Central"}, {"site_id": "s-b"}, {"district": "North"}):
        with pytest.raises(PermissionDenied):
            export_violations_xlsx(env.sessions, manager, start=T0, end=T0 + DAY, **kwargs)
    with pytest.raises(PermissionDenied):
        export_violations_xlsx(env.sessions, env.user("inspector"), district="North", start=T0, end=T0 + DAY)
    with pytest.raises(InputError, match="start must be before end"):
        export_violations_xlsx(env.sessions, env.user("admin"), start=T0, end=T0)
    with pytest.raises(InputError, match="not in district"):
        export_violations_xlsx(env.sessions, env.user("admin"), site_id="s-a", district="North", start=T0, end=T0 + DAY)
    assert len(xlsx_rows(export_violations_xlsx(env.sessions, env.user("auditor"), start=T0, end=T0 + 60 * DAY, now=now), "Violations")) == 7


def test_registry_report(wf_sqlite: WorkflowEnv) -> None:
    env = wf_sqlite
    register_institution(env.sessions, env.sink, env.user("admin"), sample(60))
    register_institution(env.sessions, env.sink, env.user("admin"), sample(61, district="North"))
    rows = xlsx_rows(export_registry_xlsx(env.sessions, env.user("registrar"), headers="zh"))
    assert rows[0][:3] == ["站点编号", "机构名称", "统一社会信用代码"] and len(rows) == 2
    assert len(xlsx_rows(export_registry_xlsx(env.sessions, env.user("auditor"), status="submitted"))) == 3
    with pytest.raises(InputError, match="headers"):
        export_registry_xlsx(env.sessions, env.user("auditor"), headers="fr")
