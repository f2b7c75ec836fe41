"""Errors raised by the workflow, registry and user services.

Every error carries a message meant for a person (the dashboard shows it as is) and, where it
helps, structured attributes for code (``TransitionError.state``, ``InputError.field``).
"""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of every error the service layer raises on purpose."""


class NotFoundError(WorkflowError, LookupError):
    """The named violation, institution, user or endpoint does not exist (or is not visible)."""


class InputError(WorkflowError, ValueError):
    """A value given by a person or a file is refused.

    Attributes:
        field: The field that is wrong (``credit_code``, ``note``…), or None for the whole input.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class PermissionDenied(WorkflowError, PermissionError):
    """The acting user's role or jurisdiction does not allow the action.

    Attributes:
        role: The user's role.
        action: The action that was refused.
    """

    def __init__(self, message: str, *, role: str | None = None, action: str | None = None) -> None:
        super().__init__(message)
        self.role = role
        self.action = action


class TransitionError(WorkflowError):
    """An action is not allowed in the current state.

    Attributes:
        kind: What changes state (``violation``, ``institution``).
        state: The current state.
        action: The refused action.
        allowed: Actions that are allowed in ``state``.
    """

    def __init__(self, kind: str, state: str, action: str, allowed: tuple[str, ...]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none (final state)"
        super().__init__(f"cannot {action} a{'n' if kind[:1] in 'aeiou' else ''} {kind} that is {state}; allowed actions: {allowed_text}")
        self.kind = kind
        self.state = state
        self.action = action
        self.allowed = allowed


class EvidenceError(WorkflowError):
    """Evidence could not be stored, held or released in object storage."""


class ConflictError(WorkflowError):
    """The change conflicts with existing data (a duplicate credit code, user name…)."""
