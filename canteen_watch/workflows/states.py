"""State machines: violations and institution registrations.

A machine is a table ``state -> action -> next state``; :meth:`StateMachine.next` refuses any
other pair with a :class:`~canteen_watch.workflows.errors.TransitionError` naming the state, the
action and what would have been allowed.

Violation lifecycle::

    open ──confirm──► rectification_due ──submit_rectification──► rectification_submitted
      │                  ▲    │ escalate (yellow, red)             │ accept ──► closed
      │ dismiss          │    └────────────────                    │
      ▼                  └──────────────── reject ─────────────────┘
    dismissed (false positive)

``escalate`` is also allowed on ``open`` (a case nobody reviewed before its deadline).
``closed`` and ``dismissed`` are final.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from canteen_watch.workflows.errors import TransitionError


class ViolationState(str, enum.Enum):
    """Where a violation is in its lifecycle."""

    OPEN = "open"
    DUE = "rectification_due"
    SUBMITTED = "rectification_submitted"
    CLOSED = "closed"
    DISMISSED = "dismissed"


class ViolationAction(str, enum.Enum):
    """What can happen to a violation."""

    CONFIRM = "confirm"
    DISMISS = "dismiss"
    SUBMIT = "submit_rectification"
    ACCEPT = "accept"
    REJECT = "reject"
    ESCALATE = "escalate"


class InstitutionStatus(str, enum.Enum):
    """Registration status of a care institution."""

    SUBMITTED = "submitted"
    REGISTERED = "registered"  # 备案
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    WITHDRAWN = "withdrawn"


class InstitutionAction(str, enum.Enum):
    """Status changes of a care institution."""

    REGISTER = "register"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    REVOKE = "revoke"
    WITHDRAW = "withdraw"


@dataclass(frozen=True)
class StateMachine:
    """A transition table for one kind of thing."""

    kind: str
    transitions: Mapping[str, Mapping[str, str]]

    def allowed(self, state: str) -> tuple[str, ...]:
        """Actions allowed in ``state`` (sorted)."""
        return tuple(sorted(self.transitions.get(str(state), {})))

    def next(self, state: str, action: str) -> str:
        """The state after ``action``; raises TransitionError when it is not allowed."""
        state_text, action_text = _text(state), _text(action)
        target = self.transitions.get(state_text, {}).get(action_text)
        if target is None:
            raise TransitionError(self.kind, state_text, action_text, self.allowed(state_text))
        return target

    def final(self, state: str) -> bool:
        """True when no action leaves ``state``."""
        return not self.transitions.get(_text(state))


def _text(value: str) -> str:
    return value.value if isinstance(value, enum.Enum) else str(value)


S, A = ViolationState, ViolationAction
VIOLATION_MACHINE = StateMachine(
    "violation",
    {
        S.OPEN.value: {A.CONFIRM.value: S.DUE.value, A.DISMISS.value: S.DISMISSED.value, A.ESCALATE.value: S.OPEN.value},
        S.DUE.value: {A.SUBMIT.value: S.SUBMITTED.value, A.ESCALATE.value: S.DUE.value},
        S.SUBMITTED.value: {A.ACCEPT.value: S.CLOSED.value, A.REJECT.value: S.DUE.value},
        S.CLOSED.value: {},
        S.DISMISSED.value: {},
    },
)

I, IA = InstitutionStatus, InstitutionAction
INSTITUTION_MACHINE = StateMachine(
    "institution",
    {
        I.SUBMITTED.value: {IA.REGISTER.value: I.REGISTERED.value, IA.WITHDRAW.value: I.WITHDRAWN.value},
        I.REGISTERED.value: {IA.SUSPEND.value: I.SUSPENDED.value, IA.REVOKE.value: I.REVOKED.value, IA.WITHDRAW.value: I.WITHDRAWN.value},
        I.SUSPENDED.value: {IA.REINSTATE.value: I.REGISTERED.value, IA.REVOKE.value: I.REVOKED.value, IA.WITHDRAW.value: I.WITHDRAWN.value},
        I.REVOKED.value: {},
        I.WITHDRAWN.value: {},
    },
)

#: Violation states in which the case is still being worked on.
ACTIVE_STATES = (S.OPEN.value, S.DUE.value, S.SUBMITTED.value)
#: States that may fold further detections (a closed case is not reopened: a new one is).
FOLDABLE_STATES = (S.OPEN.value, S.DUE.value, S.SUBMITTED.value, S.DISMISSED.value)
#: States whose deadline can pass (the site, not the inspector, has to act).
ESCALATABLE_STATES = (S.OPEN.value, S.DUE.value)
FINAL_STATES = (S.CLOSED.value, S.DISMISSED.value)
