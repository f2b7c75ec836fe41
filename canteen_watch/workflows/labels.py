"""Reviewers' verdicts as training labels: what ``canteen-watch train-roi`` learns from.

A confirmed ``open_storage`` case says its ROI was open in the snapshots folded into it; a case
dismissed as a false positive says it was closed. The snapshots are read back from S3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import numpy as np
from sqlalchemy import select

from canteen_watch.config import Settings
from canteen_watch.db.models import DetectionRow, SnapshotRow
from canteen_watch.workflows.models import ViolationDetectionRow, ViolationRow

VERDICT_LABEL = {"confirmed": "open", "false_positive": "closed"}


def roi_verdicts(session, camera_id: str, roi_id: str) -> list[tuple[str, str | None, str]]:  # type: ignore[no-untyped-def]
    """``(key, version_id, "open"|"closed")`` for each reviewed snapshot of this ROI, oldest first."""
    query = (
        select(SnapshotRow.key, SnapshotRow.version_id, ViolationRow.review_outcome)
        .join(ViolationDetectionRow, ViolationDetectionRow.snapshot_id == SnapshotRow.id)
        .join(ViolationRow, ViolationRow.id == ViolationDetectionRow.violation_id)
        .join(DetectionRow, DetectionRow.id == ViolationDetectionRow.detection_id)
        .where(
            ViolationRow.camera_id == camera_id,
            ViolationRow.label == "open_storage",
            ViolationRow.review_outcome.in_(tuple(VERDICT_LABEL)),
            DetectionRow.roi_id == roi_id,
            SnapshotRow.key.is_not(None),
        )
        .distinct()
        .order_by(SnapshotRow.key)
    )
    return [(key, version, VERDICT_LABEL[outcome]) for key, version, outcome in session.execute(query)]


def labelled_roi_snapshots(settings: Settings, camera_id: str, roi_id: str) -> Iterator[tuple[np.ndarray, str]]:
    """Decoded whole snapshots with their reviewed open/closed label for one camera ROI."""
    from snapshots.capture import decode_jpeg
    from canteen_watch.runtime import open_database, open_storage

    with ExitStack() as stack:
        engine, sessions = open_database(settings)
        stack.callback(engine.dispose)
        with sessions() as session:
            verdicts = roi_verdicts(session, camera_id, roi_id)
        if not verdicts:
            raise LookupError(f"no reviewed open_storage cases for camera {camera_id!r} ROI {roi_id!r}: review some in the dashboard, or pass --images")
        store = open_storage(settings, stack)
        for key, version_id, label in verdicts:
            yield decode_jpeg(camera_id, store.get(key, version_id)), label


LABEL_TASK = {"no_hat": "hat", "no_mask": "mask", "pest": "pest", "open_storage": "storage"}
# A confirmed case keeps the violation class; a false positive teaches the compliant class.
TASK_CLASSES = {"hat": ("bare", "covered"), "mask": ("without_mask", "with_mask"), "pest": ("pest", "none"), "storage": ("open", "closed")}


def reviewed_detections(session, since=None):  # type: ignore[no-untyped-def]
    """``(DetectionRow, SnapshotRow, review outcome)`` for every detection in a reviewed case."""
    query = (
        select(DetectionRow, SnapshotRow, ViolationRow.review_outcome)
        .join(ViolationDetectionRow, ViolationDetectionRow.detection_id == DetectionRow.id)
        .join(ViolationRow, ViolationRow.id == ViolationDetectionRow.violation_id)
        .join(SnapshotRow, SnapshotRow.id == DetectionRow.snapshot_id)
        .where(ViolationRow.review_outcome.in_(tuple(VERDICT_LABEL)), SnapshotRow.key.is_not(None))
        .order_by(DetectionRow.id)
    )
    if since is not None:
        query = query.where(ViolationRow.reviewed_at >= since)
    return session.execute(query).all()


def export_reviews(settings: Settings, out_dir, since=None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Write reviewed detections as a class-folder training set for ``train --from-reviews``.

    Each detection's crop (head, face, tile or ROI box) is cut from its snapshot in S3 and filed
    under ``<out_dir>/<task>/<class>/``: the violation class when the reviewer confirmed the case,
    the compliant class when they dismissed it as a false positive.

    Returns:
        Images written per ``task/class``.
    """
    from classifiers.reviews import export_review_set, review_crop

    from canteen_watch.core import Box, Detection
    from snapshots.capture import decode_jpeg
    from canteen_watch.runtime import open_database, open_storage

    with ExitStack() as stack:
        engine, sessions = open_database(settings)
        stack.callback(engine.dispose)
        with sessions() as session:
            rows = [(d.label, d.x1, d.y1, d.x2, d.y2, dict(d.extra or {}), s.key, s.version_id, outcome) for d, s, outcome in reviewed_detections(session, since)]
        store = open_storage(settings, stack)
        frames: dict[tuple[str, str | None], np.ndarray] = {}

        def items():  # type: ignore[no-untyped-def]
            for label, x1, y1, x2, y2, extra, key, version_id, outcome in rows:
                task = LABEL_TASK.get(label)
                if task is None:
                    continue
                if (key, version_id) not in frames:
                    frames.clear()  # detections are ordered by id, so one snapshot's are adjacent
                    frames[(key, version_id)] = decode_jpeg(key, store.get(key, version_id))
                detection = Detection(label=label, score=1.0, box=Box(x1, y1, x2, y2), model_version="review", extra=extra)
                positive, negative = TASK_CLASSES[task]
                yield review_crop(frames[(key, version_id)], detection, task), task, positive if outcome == "confirmed" else negative

        return export_review_set(items(), out_dir)
