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
    from canteen_watch.pipeline import decode_jpeg
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
            yield decode_jpeg(store.get(key, version_id)), label
