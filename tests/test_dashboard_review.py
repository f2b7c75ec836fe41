"""Review queue through AppTest: the snapshot with boxes, one-click confirm and dismiss with their effect
in the database and the ledger, the next case in place, bulk actions, filters and jurisdiction.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from canteen_watch.core import utcnow
from canteen_watch.i18n import t
from canteen_watch.workflows.models import ReviewRow, ViolationRow
from tests.test_dashboard_support import DashEnv, all_text, dash, page  # noqa: F401


def _reviews(dash: DashEnv, case_id: int) -> list[tuple[str, int | None, str, str | None]]:
    with dash.sessions() as session:
        return [(r.outcome, r.user_id, r.role, r.reason) for r in session.scalars(select(ReviewRow).where(ReviewRow.violation_id == case_id)).all()]


def _state(dash: DashEnv, case_id: int) -> str:
    with dash.sessions() as session:
        return session.get(ViolationRow, case_id).state


def test_manager_confirms_in_one_click_and_the_next_case_takes_its_place(dash: DashEnv) -> None:
    now = utcnow()
    first = dash.open_case("pest", "cam-a", now - timedelta(hours=2))           # tier 1: first in the queue
    second = dash.open_case("no_mask", "cam-a", now - timedelta(hours=1))       # tier 2
    other_site = dash.open_case("pest", "cam-c", now - timedelta(minutes=30))  # North: not the manager's
    at = dash.app("manager").run()
    text = all_text(at)
    assert f"Case #{first.id} · Pests" in text and f"#{other_site.id}" not in text
    assert at.image, "the snapshot is shown"
    assert at.dataframe[0].value.iloc[0]["Score"] == 0.93
    assert "pest-test-1" in at.dataframe[0].value.iloc[0]["Model version"]
    at.button(key="rv_confirm").click()
    at.run()
    assert not at.exception
    assert at.success[0].value == t("review.confirmed", "en", count=1)
    assert _reviews(dash, first.id) == [("confirmed", dash.user("manager").id, "canteen_manager", None)]
    assert _state(dash, first.id) == "rectification_due"
    assert dash.ledger(f"violation:{first.id}")[-1] == ("violation.reviewed", f"user:{dash.user('manager').id}")
    assert at.subheader[0].value.startswith(f"Case #{second.id} · No face mask"), "the next case loads in the same place"
    assert at.session_state["rv_current"] == second.id


def test_dismiss_as_false_positive_with_the_chosen_reason(dash: DashEnv) -> None:
    case = dash.open_case("open_storage", "cam-a", box=(20.0, 30.0, 140.0, 200.0))
    at = dash.app("inspector").run().switch_page(page("review")).run()
    at.selectbox(key="rv_fp_reason").select("fp.container_closed")
    at.button(key="rv_dismiss").click()
    at.run()
    assert at.success[0].value == t("review.dismissed", "en", count=1)
    assert _reviews(dash, case.id) == [("false_positive", dash.user("inspector").id, "inspector", t("fp.container_closed", "en"))]
    assert _state(dash, case.id) == "dismissed"
    assert dash.ledger(f"violation:{case.id}")[-1][0] == "violation.reviewed"
    assert t("review.empty", "en") in [s.value for s in at.success], "the queue is empty now"


def test_bulk_confirm_and_filters(dash: DashEnv) -> None:
    now = utcnow()
    a = dash.open_case("pest", "cam-a", now - timedelta(hours=3))
    b = dash.open_case("no_hat", "cam-b", now - timedelta(hours=2))
    c = dash.open_case("no_hat", "cam-a", now - timedelta(hours=1))
    at = dash.app("inspector").run().switch_page(page("review")).run()
    at.selectbox(key="rv_label").select("no_hat")
    at.run()
    listed = list(at.dataframe[-1].value["Case"])
    assert sorted(listed) == sorted([b.id, c.id])
    at.multiselect(key="rv_bulk").select(b.id).select(c.id)
    at.run()
    at.button(key="rv_bulk_confirm").click()
    at.run()
    assert at.success[0].value == t("review.confirmed", "en", count=2)
    assert _state(dash, b.id) == _state(dash, c.id) == "rectification_due"
    assert _state(dash, a.id) == "open"
    at.segmented_control(key="rv_state").set_value("reviewed")
    at.run()
    assert sorted(at.dataframe[-1].value["Case"]) == sorted([b.id, c.id])


def test_an_inspector_of_another_district_sees_none_of_it(dash: DashEnv) -> None:
    dash.open_case("pest", "cam-a")
    at = dash.app("north").run().switch_page(page("review")).run()
    assert t("review.empty", "en") in [s.value for s in at.success]
    assert "cam-a" not in all_text(at)


def test_a_case_without_its_image_still_shows_the_boxes(dash: DashEnv) -> None:
    dash.open_case("pest", "cam-a", upload=False)
    at = dash.app("manager").run()
    assert t("review.image_unavailable", "en") in [w.value for w in at.warning]
    assert at.image and at.button(key="rv_confirm")


def test_pages_of_the_queue(dash: DashEnv) -> None:
    from tests.test_dashboard_support import open_cases_quickly

    ids = open_cases_quickly(dash, 23)
    at = dash.app("manager").run()
    assert at.caption and any(c.value == t("common.page_of", "en", page=1, pages=2, count=23) for c in at.caption)
    assert len(at.dataframe[-1].value) == 20
    at.get("pagination")[0].set_value(2)
    at.run()
    assert not at.exception
    assert sorted(at.dataframe[-1].value["Case"]) == sorted(ids[20:]), "oldest deadlines first"
    assert at.session_state["rv_current"] == ids[20], "the first case of the new page is under review"
    assert [x.value for x in at.warning] == [t("review.image_unavailable", "en")], "no widget-state warnings"
