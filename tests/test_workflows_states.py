"""State machines and workflow settings: every (state, action) pair, legal and illegal."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from canteen_watch.workflows.errors import TransitionError
from canteen_watch.workflows.states import (
    INSTITUTION_MACHINE,
    VIOLATION_MACHINE,
    InstitutionAction,
    InstitutionStatus,
    ViolationAction,
    ViolationState,
)
from canteen_watch.workflows.tiers import DEFAULT_TIERS, WorkflowSettings

S, A = ViolationState, ViolationAction
#: The specification of the violation lifecycle, written out independently of the code's table.
VIOLATION_LEGAL = {
    (S.OPEN, A.CONFIRM): S.DUE,
    (S.OPEN, A.DISMISS): S.DISMISSED,
    (S.OPEN, A.ESCALATE): S.OPEN,
    (S.DUE, A.SUBMIT): S.SUBMITTED,
    (S.DUE, A.ESCALATE): S.DUE,
    (S.SUBMITTED, A.ACCEPT): S.CLOSED,
    (S.SUBMITTED, A.REJECT): S.DUE,
}
I, IA = InstitutionStatus, InstitutionAction
INSTITUTION_LEGAL = {
    (I.SUBMITTED, IA.REGISTER): I.REGISTERED,
    (I.SUBMITTED, IA.WITHDRAW): I.WITHDRAWN,
    (I.REGISTERED, IA.SUSPEND): I.SUSPENDED,
    (I.REGISTERED, IA.REVOKE): I.REVOKED,
    (I.REGISTERED, IA.WITHDRAW): I.WITHDRAWN,
    (I.SUSPENDED, IA.REINSTATE): I.REGISTERED,
    (I.SUSPENDED, IA.REVOKE): I.REVOKED,
    (I.SUSPENDED, IA.WITHDRAW): I.WITHDRAWN,
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(ViolationState, ViolationAction)), ids=lambda v: v.value)
def test_violation_machine_every_pair(state: ViolationState, action: ViolationAction) -> None:
    expected = VIOLATION_LEGAL.get((state, action))
    if expected is not None:
        assert VIOLATION_MACHINE.next(state, action) == expected.value
        return
    with pytest.raises(TransitionError) as caught:
        VIOLATION_MACHINE.next(state, action)
    error = caught.value
    assert (error.kind, error.state, error.action) == ("violation", state.value, action.value)
    assert state.value in str(error) and action.value in str(error)
    assert set(error.allowed) == {a.value for (s, a) in VIOLATION_LEGAL if s is state}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(InstitutionStatus, InstitutionAction)), ids=lambda v: v.value)
def test_institution_machine_every_pair(state: InstitutionStatus, action: InstitutionAction) -> None:
    expected = INSTITUTION_LEGAL.get((state, action))
    if expected is not None:
        assert INSTITUTION_MACHINE.next(state, action) == expected.value
        return
    with pytest.raises(TransitionError, match=f"cannot {action.value} an institution that is {state.value}"):
        INSTITUTION_MACHINE.next(state, action)


def test_final_states_and_message_for_them() -> None:
    assert VIOLATION_MACHINE.final("closed") and VIOLATION_MACHINE.final("dismissed") and not VIOLATION_MACHINE.final("open")
    with pytest.raises(TransitionError, match=r"cannot reject a violation that is closed; allowed actions: none \(final state\)"):
        VIOLATION_MACHINE.next("closed", "reject")
    with pytest.raises(TransitionError, match="allowed actions: accept, reject"):
        VIOLATION_MACHINE.next("rectification_submitted", "confirm")


def test_default_tiers_match_the_brief() -> None:
    config = WorkflowSettings()
    assert config.tier_for("pest").tier == 1 and config.tier_for("pest").deadline_hours == 24
    assert config.tier_for("open_storage").tier == 2 and config.tier_for("no_mask").tier == 2 and config.tier_for("no_mask").deadline_hours == 72
    assert config.tier_for("no_hat").tier == 3 and config.tier_for("no_hat").deadline_hours == 7 * 24
    assert config.tier_for("person") is None
    assert config.tier_or_default(9).tier == 3  # removed tier -> least severe
    assert [t.tier for t in DEFAULT_TIERS] == [1, 2, 3]


def test_settings_forbid_unknown_keys_and_every_field_has_a_title() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        WorkflowSettings(fold_window=5)
    with pytest.raises(ValidationError, match="labels in more than one tier: pest"):
        WorkflowSettings(tiers=[{"tier": 1, "title": "A", "labels": ["pest"], "deadline_hours": 1, "red_after_hours": 1},
                                {"tier": 2, "title": "B", "labels": ["pest"], "deadline_hours": 1, "red_after_hours": 1}])
    with pytest.raises(ValidationError, match="duplicate tier numbers"):
        WorkflowSettings(tiers=[{"tier": 1, "title": "A", "labels": ["a"], "deadline_hours": 1, "red_after_hours": 1},
                                {"tier": 1, "title": "B", "labels": ["b"], "deadline_hours": 1, "red_after_hours": 1}])
    with pytest.raises(ValidationError, match="pii_salt must be at least 16"):
        WorkflowSettings(pii_salt="short")
    schema = WorkflowSettings.model_json_schema()

    def titled(node: dict) -> None:  # type: ignore[type-arg]
        for name, prop in node.get("properties", {}).items():
            assert "title" in prop and "description" in prop, name
        for sub in node.get("$defs", {}).values():
            titled(sub)

    titled(schema)
    custom = WorkflowSettings.model_validate({"fold_window_minutes": 10, "notifications": {"max_attempts": 3}, "login": {"max_failures": 2}})
    assert custom.fold_window.total_seconds() == 600 and custom.notifications.max_attempts == 3 and custom.login.max_failures == 2
