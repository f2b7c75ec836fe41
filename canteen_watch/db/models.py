"""ORM models for sites, cameras, snapshots, detections and camera health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from canteen_watch.core import utcnow
from canteen_watch.db.base import Base

BigId = BigInteger().with_variant(Integer, "sqlite")


class SiteRow(Base):
    """A school canteen or care institution (mirrors the configuration)."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(100), index=True)


class CameraRow(Base):
    """A camera (mirrors the configuration; the source URL is stored without credentials)."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    room: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    rois: Mapped[list[Any]] = mapped_column(JSON, default=list)


class SnapshotRow(Base):
    """One slot of one camera: claimed, then stored, spooled or failed.

    ``(camera_id, slot_time)`` is unique: that is the slot's idempotency key.
    """

    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("camera_id", "slot_time", name="uq_snapshots_camera_slot"),
        Index("ix_snapshots_site_slot", "site_id", "slot_time"),
        Index("ix_snapshots_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    slot_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # pending | stored | spooled | failed
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    captured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    bucket: Mapped[str | None] = mapped_column(String(63))
    key: Mapped[str | None] = mapped_column(String(500))
    version_id: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    sharpness: Mapped[float | None] = mapped_column(Float)
    brightness: Mapped[float | None] = mapped_column(Float)
    contrast: Mapped[float | None] = mapped_column(Float)
    blurred: Mapped[bool | None] = mapped_column(Boolean)
    dark: Mapped[bool | None] = mapped_column(Boolean)
    blocked: Mapped[bool | None] = mapped_column(Boolean)
    classifier_status: Mapped[str | None] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(100))

    detections: Mapped[list["DetectionRow"]] = relationship(back_populates="snapshot", cascade="all, delete-orphan")


class DetectionRow(Base):
    """One classifier finding on a snapshot, with its box and model version."""

    __tablename__ = "detections"
    __table_args__ = (Index("ix_detections_label", "label"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(100))
    roi_id: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    snapshot: Mapped[SnapshotRow] = relationship(back_populates="detections")


class CameraHealthRow(Base):
    """Debounced health state of one camera."""

    __tablename__ = "camera_health"

    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_successes: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_bad_quality: Mapped[int] = mapped_column(Integer, default=0)
    quality_alert: Mapped[str | None] = mapped_column(String(64))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CameraEventRow(Base):
    """A health event: offline, online, quality problem raised or cleared."""

    __tablename__ = "camera_events"
    __table_args__ = (Index("ix_camera_events_camera_at", "camera_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    detail: Mapped[str | None] = mapped_column(Text)
