"""Labelled ROI snapshots for ``canteen-watch train-roi``: the reviewers' verdicts become labels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from canteen_watch.config import Settings


def roi_polygon(settings: Settings, camera_id: str, roi_id: str) -> Sequence[tuple[float, float]] | None:
    """The configured polygon of ``roi_id`` on ``camera_id`` (KeyError naming what is missing)."""
    camera = settings.camera(camera_id)
    for roi in camera.rois:
        if roi.id == roi_id:
            return roi.polygon
    raise KeyError(f"camera {camera_id!r} has no ROI {roi_id!r}")


def roi_examples(settings: Settings, camera_id: str, roi_id: str) -> Iterator[tuple[np.ndarray, str]]:
    """Whole snapshots of the camera with the label reviewers gave this ROI (open/closed)."""
    from canteen_watch.workflows.labels import labelled_roi_snapshots

    roi_polygon(settings, camera_id, roi_id)
    yield from labelled_roi_snapshots(settings, camera_id, roi_id)
