"""ORM tables of the closed loop, the institution registry, users and retention.

One module holds every table added by migration ``0003_workflows`` so that importing it registers
them all on ``Base.metadata`` (the migration imports it for that reason). Rows stay inside the
service layer; callers get the dataclasses of :mod:`canteen_watch.workflows.types`.

Times are stored as UTC (``DateTime(timezone=True)``; SQLite keeps them naive, so every value is
normalised to UTC before it is written and after it is read).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from canteen_watch.core import utcnow
from canteen_watch.db.base import Base
from canteen_watch.db import models as _core_models  # noqa: F401  (sites, cameras, snapshots, detections)

BigId = BigInteger().with_variant(Integer, "sqlite")

#: Row lock for read-modify-write: ``FOR NO KEY UPDATE`` on PostgreSQL, which does not conflict
#: with the ``KEY SHARE`` locks that inserts of referencing rows take (``FOR UPDATE`` would deadlock
#: two transactions that both inserted a snapshot of one camera and then lock that camera).
#: SQLite ignores it: ``BEGIN IMMEDIATE`` already serialises writers.
ROW_LOCK = {"key_share": True}


# ------------------------------------------------------------------------------------- users


class UserRow(Base):
    """A person who uses the service layer, with their role and login-throttling state."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(24))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    failure_window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserScopeRow(Base):
    """One node of the jurisdiction tree a user acts in: the city, a district or a site."""

    __tablename__ = "user_scopes"
    __table_args__ = (UniqueConstraint("user_id", "level", "ref", name="uq_user_scopes_user_level_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(16))  # city | district | site
    ref: Mapped[str] = mapped_column(String(100))


# ------------------------------------------------------------------------------------- registry


class InstitutionRow(Base):
    """An off-campus care institution (校外托管机构); it is the site ``site_id`` of kind care_institution."""

    __tablename__ = "care_institutions"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    licence_no: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    district: Mapped[str] = mapped_column(String(100), index=True)
    legal_rep: Mapped[str] = mapped_column(String(50))
    contact_phone: Mapped[str] = mapped_column(String(24))
    capacity: Mapped[int] = mapped_column(Integer)
    serves_meals: Mapped[bool] = mapped_column(Boolean)
    opening_hours: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InstitutionEventRow(Base):
    """One change of an institution: registration, edit or status transition, with reason and actor."""

    __tablename__ = "institution_events"
    __table_args__ = (Index("ix_institution_events_site_at", "site_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("care_institutions.site_id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    changed_fields: Mapped[list[Any]] = mapped_column(JSON, default=list)


class InspectionRow(Base):
    """An on-site inspection of a site (care institution or school canteen) with its findings."""

    __tablename__ = "inspections"
    __table_args__ = (Index("ix_inspections_site_at", "site_id", "inspected_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    inspected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # pass | rectify | fail
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ------------------------------------------------------------------------------------- violations


class ViolationRow(Base):
    """Detections of one label on one camera, folded into one case, and the case's lifecycle."""

    __tablename__ = "violations"
    __table_args__ = (
        Index("ix_violations_fold", "camera_id", "label", "last_seen_at"),
        Index("ix_violations_state_due", "state", "due_at"),
        Index("ix_violations_site_opened", "site_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    label: Mapped[str] = mapped_column(String(32))
    tier: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detection_count: Mapped[int] = mapped_column(Integer, default=0)
    max_score: Mapped[float] = mapped_column(Float, default=0.0)
    first_snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    last_snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)  # 0 none, 1 yellow, 2 red
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review_outcome: Mapped[str | None] = mapped_column(String(16))
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rectification_round: Mapped[int] = mapped_column(Integer, default=0)
    evidence_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    hold_set_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    hold_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ViolationDetectionRow(Base):
    """Which violation a detection was folded into (a detection belongs to at most one)."""

    __tablename__ = "violation_detections"

    detection_id: Mapped[int] = mapped_column(ForeignKey("detections.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    violation_id: Mapped[int] = mapped_column(ForeignKey("violations.id"), index=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), index=True)


class ReviewRow(Base):
    """One person's review of a violation: confirmed or false positive, with the reason."""

    __tablename__ = "violation_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    violation_id: Mapped[int] = mapped_column(ForeignKey("violations.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: a system actor (CLI)
    role: Mapped[str] = mapped_column(String(24))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RectificationRow(Base):
    """One round of rectification: the site's note and photo, then the inspector's re-check."""

    __tablename__ = "rectifications"
    __table_args__ = (UniqueConstraint("violation_id", "round", name="uq_rectifications_violation_round"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    violation_id: Mapped[int] = mapped_column(ForeignKey("violations.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: a system actor
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text)
    photo_bucket: Mapped[str] = mapped_column(String(63))
    photo_key: Mapped[str] = mapped_column(String(500))
    photo_version_id: Mapped[str | None] = mapped_column(String(200))
    photo_sha256: Mapped[str] = mapped_column(String(64))
    photo_size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(32))
    checked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))  # accepted | rejected
    check_note: Mapped[str | None] = mapped_column(Text)
    photo_expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ------------------------------------------------------------------------------------- notifications


class EndpointRow(Base):
    """Where notifications for part of the jurisdiction tree go: a webhook URL or an MQTT topic."""

    __tablename__ = "notification_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    audience: Mapped[str] = mapped_column(String(16))  # manager | regulator
    scope_level: Mapped[str] = mapped_column(String(16))  # city | district | site
    scope_ref: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))  # webhook | mqtt
    target: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxRow(Base):
    """A notification waiting for (or done with) delivery; at least once, keyed for idempotency."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("notification_endpoints.id"), index=True)
    violation_id: Mapped[int | None] = mapped_column(ForeignKey("violations.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    audience: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(500))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ------------------------------------------------------------------------------------- retention


class SnapshotExpiryRow(Base):
    """Marks a snapshot whose objects retention deleted (the snapshot row itself is kept)."""

    __tablename__ = "snapshot_expiry"

    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), primary_key=True, autoincrement=False)
    expired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(32))
    versions_deleted: Mapped[int] = mapped_column(Integer, default=0)


WORKFLOW_TABLES = (
    "users",
    "user_scopes",
    "care_institutions",
    "institution_events",
    "inspections",
    "violations",
    "violation_detections",
    "violation_reviews",
    "rectifications",
    "notification_endpoints",
    "notification_outbox",
    "snapshot_expiry",
)
