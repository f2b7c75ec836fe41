"""Rectification through AppTest: a manager submits a note and a photo (stored in S3), an inspector
accepts or rejects on re-check; the effect in the database, S3 and the ledger.
"""

from __future__ import annotations

from sqlalchemy import select

from canteen_watch.i18n import t
from canteen_watch.workflows.models import RectificationRow, ViolationRow
from canteen_watch.workflows.violations import review_violation
from tests.test_dashboard_support import DashEnv, all_text, dash, jpeg, page  # noqa: F401


def _confirmed_case(dash: DashEnv):  # type: ignore[no-untyped-def]
    case = dash.open_case("pest", "cam-a")
    review_violation(dash.sessions, dash.sink, dash.user("manager"), case.id, outcome="confirmed")
    return case


def test_manager_submits_note_and_photo(dash: DashEnv) -> None:
    case = _confirmed_case(dash)
    at = dash.app("manager").run().switch_page(page("rectification")).run()
    assert not at.exception
    assert f"Case #{case.id}" in all_text(at)
    photo = jpeg(colour=(240, 240, 240))
    at.text_area(key="rc_note").input("Sealed the gap under the door; pest control visited.")
    at.file_uploader(key="rc_photo").set_value(("after.jpg", photo, "image/jpeg"))
    submit = next(b for b in at.button if b.label == t("rect.submit", "en"))
    submit.click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == t("rect.submitted", "en", id=case.id)
    with dash.sessions() as session:
        rect = session.scalars(select(RectificationRow).where(RectificationRow.violation_id == case.id)).one()
        assert session.get(ViolationRow, case.id).state == "rectification_submitted"
    assert rect.note.startswith("Sealed the gap") and rect.submitted_by == dash.user("manager").id
    assert dash.store.get(rect.photo_key, rect.photo_version_id) == photo, "the photo is in S3"
    assert dash.ledger(f"violation:{case.id}")[-1] == ("violation.rectified", f"user:{dash.user('manager').id}")


def test_submit_without_photo_is_refused(dash: DashEnv) -> None:
    case = _confirmed_case(dash)
    at = dash.app("manager").run().switch_page(page("rectification")).run()
    at.text_area(key="rc_note").input("done")
    next(b for b in at.button if b.label == t("rect.submit", "en")).click()
    at.run()
    assert [e.value for e in at.error] == [t("rect.photo_required", "en")]
    with dash.sessions() as session:
        assert session.get(ViolationRow, case.id).state == "rectification_due"


def _submitted_case(dash: DashEnv):  # type: ignore[no-untyped-def]
    from canteen_watch.workflows.rectification import submit_rectification

    case = _confirmed_case(dash)
    submit_rectification(dash.sessions, dash.sink, dash.store, dash.user("manager"), case.id, note="cleaned", photo=jpeg())
    return case


def test_inspector_rejects_without_note_then_accepts(dash: DashEnv) -> None:
    case = _submitted_case(dash)
    at = dash.app("inspector").run().switch_page(page("rectification")).run()
    assert at.segmented_control(key="rc_view").value == "submitted", "inspectors start with the cases to re-check"
    assert at.image, "the rectification photo is shown"
    at.button(key="rc_reject").click()
    at.run()
    assert at.error and at.error[0].value.startswith(t("error.input", "en", field=t("field.note", "en"), detail="")[:10])
    at.button(key="rc_accept").click()
    at.run()
    assert at.success[0].value == t("rect.accepted", "en", id=case.id)
    with dash.sessions() as session:
        assert session.get(ViolationRow, case.id).state == "closed"
        rect = session.scalars(select(RectificationRow).where(RectificationRow.violation_id == case.id)).one()
    assert (rect.outcome, rect.checked_by) == ("accepted", dash.user("inspector").id)
    assert dash.ledger(f"violation:{case.id}")[-1] == ("violation.closed", f"user:{dash.user('inspector').id}")


def test_manager_cannot_recheck_their_own_work(dash: DashEnv) -> None:
    case = _submitted_case(dash)
    at = dash.app("manager").run().switch_page(page("rectification")).run()
    at.segmented_control(key="rc_view").set_value("submitted")
    at.run()
    assert f"Case #{case.id}" in all_text(at)
    assert not [b for b in at.button if b.key in ("rc_accept", "rc_reject")]
    assert t("rect.no_action", "en", state=t("state.rectification_submitted", "en")) in [i.value for i in at.info]
