"""Typed core objects that travel between the pipeline stages.

ORM rows stay inside :mod:`canteen_watch.db`; stages exchange these plain dataclasses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as aware UTC (naive values are taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Slot:
    """One scheduled capture: its identity is (camera id, slot time)."""

    camera_id: str
    slot_time: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot_time", as_utc(self.slot_time).replace(microsecond=0))

    @property
    def key(self) -> str:
        """Idempotency key, e.g. ``cam-1@20261204T101500Z``."""
        return f"{self.camera_id}@{self.slot_time.strftime('%Y%m%dT%H%M%SZ')}"


@dataclass(frozen=True)
class Frame:
    """A captured frame, JPEG-encoded exactly once.

    Attributes:
        jpeg: The encoded bytes that are stored.
        sha256: Hex SHA-256 of ``jpeg``, computed once when the frame is made.
        width: Pixel width.
        height: Pixel height.
        captured_at: When the grab returned.
    """

    jpeg: bytes
    sha256: str
    width: int
    height: int
    captured_at: datetime

    @classmethod
    def from_jpeg(cls, jpeg: bytes, width: int, height: int, captured_at: datetime | None = None) -> "Frame":
        """Wrap encoded bytes, hashing them once."""
        return cls(jpeg=jpeg, sha256=hashlib.sha256(jpeg).hexdigest(), width=width, height=height, captured_at=captured_at or utcnow())


@dataclass(frozen=True)
class Quality:
    """OpenCV quality measurements of one frame."""

    sharpness: float
    brightness: float
    contrast: float
    blurred: bool
    dark: bool
    blocked: bool

    @property
    def ok(self) -> bool:
        """True when no quality flag is raised."""
        return not (self.blurred or self.dark or self.blocked)

    @property
    def flags(self) -> list[str]:
        """Names of the raised flags."""
        return [name for name in ("blurred", "dark", "blocked") if getattr(self, name)]


@dataclass(frozen=True)
class StoredObject:
    """Where a snapshot's bytes live in S3."""

    bucket: str
    key: str
    sha256: str
    size: int
    version_id: str | None = None
    spooled: bool = False


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Detection:
    """One finding of a classifier.

    Attributes:
        label: Violation label (``no_hat``, ``no_mask``, ``open_storage``, ``pest``) or an
            observation label.
        score: Probability of ``label`` in 0..1.
        box: Where in the frame.
        model_version: Which model said so.
        roi_id: The camera ROI this finding belongs to, if any.
        extra: Other scores (e.g. both hat and mask scores of one person).
    """

    label: str
    score: float
    box: Box
    model_version: str
    roi_id: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassifierResult:
    """What the classify stage returns for one frame."""

    detections: list[Detection]
    model_version: str | None
    status: str = "ok"  # "ok" | "no_model" | "error"
    detail: str = ""
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class SlotOutcome:
    """Result of :func:`canteen_watch.pipeline.process_slot`."""

    slot: Slot
    status: str  # stored | spooled | failed | duplicate
    snapshot_id: int | None = None
    sha256: str | None = None
    key: str | None = None
    reason: str = ""
    detections: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
