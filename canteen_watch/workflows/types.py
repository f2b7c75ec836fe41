"""Typed results of the workflow services (ORM rows never leave the service layer)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list.

    Attributes:
        items: The rows of this page.
        total: Rows matching the filters on all pages.
        page: 1-based page number.
        per_page: Page size.
    """

    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_next(self) -> bool:
        """True when a later page exists."""
        return self.page < self.pages


@dataclass(frozen=True)
class Violation:
    """A case: detections of one label on one camera folded together, and where it stands.

    Attributes:
        id: Case number.
        site_id: Site (school canteen or care institution) the camera belongs to.
        district: The site's district.
        camera_id: Camera that saw it.
        label: ``pest``, ``open_storage``, ``no_mask`` or ``no_hat``.
        tier: Severity tier (1 most severe).
        state: A :class:`~canteen_watch.workflows.states.ViolationState` value.
        opened_at: When the case was opened (recording time).
        first_seen_at: Capture time of the first folded detection.
        last_seen_at: Capture time of the latest folded detection.
        due_at: Rectification deadline (first seen + tier deadline; reset by a rejected re-check).
        closed_at: When it was closed (accepted) or dismissed (false positive).
        detection_count: Detections folded in.
        max_score: Highest classifier score among them.
        escalation_level: 0 none, 1 yellow (overdue), 2 red (escalated).
        review_outcome: ``confirmed``, ``false_positive`` or None before review.
        rectification_round: Rectifications submitted so far.
        evidence_hold: Evidence is kept indefinitely (legal hold).
    """

    id: int
    site_id: str
    district: str
    camera_id: str
    label: str
    tier: int
    state: str
    opened_at: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    due_at: datetime
    closed_at: datetime | None
    detection_count: int
    max_score: float
    escalation_level: int
    review_outcome: str | None
    rectification_round: int
    evidence_hold: bool

    def overdue_days(self, now: datetime) -> int:
        """Days past the deadline, rounded up, while the site still has to act (0 when not overdue)."""
        if self.state not in ("open", "rectification_due") or now <= self.due_at:
            return 0
        return math.ceil((now - self.due_at).total_seconds() / 86400)

    @property
    def escalation(self) -> str:
        """``none``, ``yellow`` or ``red``."""
        return ("none", "yellow", "red")[min(self.escalation_level, 2)]


@dataclass(frozen=True)
class Review:
    """One review of a case: who (id and role, never a name), the outcome and why."""

    user_id: int | None
    role: str
    outcome: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class EvidenceObject:
    """An object in S3 that is evidence of a case.

    Attributes:
        kind: ``snapshot`` or ``rectification_photo``.
        ref: Snapshot id or rectification id.
        bucket: S3 bucket.
        key: Object key.
        version_id: Object version (buckets with object lock are versioned).
        sha256: Recorded SHA-256 of the bytes.
        at: Capture or submission time.
        expired: True when retention already deleted the object.
    """

    kind: str
    ref: int
    bucket: str | None
    key: str | None
    version_id: str | None
    sha256: str | None
    at: datetime | None
    expired: bool = False


@dataclass(frozen=True)
class Rectification:
    """One round of rectification and its re-check."""

    id: int
    violation_id: int
    round: int
    submitted_by: int | None
    submitted_at: datetime
    note: str
    photo: EvidenceObject
    checked_by: int | None
    checked_at: datetime | None
    outcome: str | None
    check_note: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """A ledger entry about a case (its tamper-evident history)."""

    seq: int
    ts: str
    actor: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class ViolationDetail:
    """Everything the dashboard shows on a case page."""

    violation: Violation
    site_name: str
    site_kind: str
    reviews: list[Review]
    rectifications: list[Rectification]
    evidence: list[EvidenceObject]
    history: list[HistoryEntry]
    allowed_actions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ViolationStats:
    """Aggregates for one district or site.

    Attributes:
        key: District name or site id.
        open_by_tier: Tier -> cases still being worked on (open, due or submitted).
        open_total: Sum of ``open_by_tier``.
        overdue: Cases past their deadline that the site still has to act on.
        red: Cases escalated to red.
        confirmed: Cases confirmed by review (whatever happened next).
        closed: Confirmed cases closed after an accepted re-check.
        dismissed: Cases dismissed as false positives.
        total: All cases opened in the period.
        rectification_rate: ``closed / confirmed`` (None when nothing was confirmed).
    """

    key: str
    open_by_tier: dict[int, int]
    open_total: int
    overdue: int
    red: int
    confirmed: int
    closed: int
    dismissed: int
    total: int
    rectification_rate: float | None


@dataclass(frozen=True)
class EvidenceCheck:
    """Result of re-hashing one evidence object (see ``verify_evidence``)."""

    object: EvidenceObject
    ok: bool
    detail: str
