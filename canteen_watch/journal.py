"""Record journal: slot outcomes written to disk while the database is unreachable.

When the database is down, a slot is still captured and stored (S3 or the spool); its record is
written here as one JSON file named by the slot key. :func:`replay_journal` writes them into the
database when it is back, idempotently: a slot already recorded is skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from canteen_watch.core import Box, ClassifierResult, Detection, Frame, Quality, Slot, StoredObject


@dataclass(frozen=True)
class JournalRecord:
    """Everything needed to record one slot later."""

    camera_id: str
    slot_time: datetime
    frame: dict[str, Any] | None
    stored: StoredObject | None
    quality: Quality | None
    result: ClassifierResult | None
    failure: str | None = None

    @property
    def slot(self) -> Slot:
        """The slot this record belongs to."""
        return Slot(self.camera_id, self.slot_time)

    def frame_stub(self) -> Frame:
        """A Frame carrying the recorded hash and size (the bytes are in S3 or the spool)."""
        assert self.frame is not None
        stub = Frame(jpeg=b"", sha256=self.frame["sha256"], width=self.frame["width"], height=self.frame["height"], captured_at=datetime.fromisoformat(self.frame["captured_at"]))
        return stub


def record_from_outcome(camera_id: str, slot_time: datetime, *, frame: Frame | None = None, stored: StoredObject | None = None, quality: Quality | None = None, result: ClassifierResult | None = None, failure: str | None = None) -> JournalRecord:
    """Build a record (the frame's bytes are not kept: they are in S3 or the spool)."""
    frame_info = None
    if frame is not None:
        frame_info = {"sha256": frame.sha256, "size": len(frame.jpeg), "width": frame.width, "height": frame.height, "captured_at": frame.captured_at.isoformat()}
    return JournalRecord(camera_id, slot_time, frame_info, stored, quality, result, failure)


def _encode(record: JournalRecord) -> dict[str, Any]:
    data = asdict(record)
    data["slot_time"] = record.slot_time.isoformat()
    return data


def _decode(data: dict[str, Any]) -> JournalRecord:
    result = None
    if data["result"] is not None:
        raw = data["result"]
        detections = [Detection(**{**d, "box": Box(**d["box"])}) for d in raw["detections"]]
        result = ClassifierResult(**{**raw, "detections": detections})
    return JournalRecord(
        camera_id=data["camera_id"],
        slot_time=datetime.fromisoformat(data["slot_time"]),
        frame=data["frame"],
        stored=StoredObject(**data["stored"]) if data["stored"] else None,
        quality=Quality(**data["quality"]) if data["quality"] else None,
        result=result,
        failure=data["failure"],
    )


class Journal:
    """A folder of pending records, one file per slot (so a slot is never journalled twice)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, slot: Slot) -> Path:
        return self.root / f"{slot.key.replace('@', '_')}.json"

    def write(self, record: JournalRecord) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        path = self._path(record.slot)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(_encode(record), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def records(self) -> list[JournalRecord]:
        """Pending records, oldest slot first."""
        return sorted((_decode(json.loads(p.read_text(encoding="utf-8"))) for p in self.root.glob("*.json")), key=lambda r: r.slot_time)

    def remove(self, record: JournalRecord) -> None:
        """Forget a record once it is in the database."""
        self._path(record.slot).unlink(missing_ok=True)

    def depth(self) -> int:
        """Number of pending records."""
        return sum(1 for _ in self.root.glob("*.json"))
