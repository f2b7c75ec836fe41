"""The small interface the pipeline's classify stage talks to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from canteen_watch.config import RegionOfInterest
from canteen_watch.core import ClassifierResult


@runtime_checkable
class FrameClassifier(Protocol):
    """Anything that classifies one decoded BGR frame."""

    def classify(self, image_bgr: np.ndarray, rois: Sequence[RegionOfInterest] = (), camera_id: str | None = None) -> ClassifierResult:
        """Return detections for ``image_bgr`` (H×W×3 uint8, BGR), the camera's ROIs and its id (for per-ROI heads)."""
        ...


class NoModelClassifier:
    """Reports honestly that no model is installed; never invents detections."""

    def classify(self, image_bgr: np.ndarray, rois: Sequence[RegionOfInterest] = (), camera_id: str | None = None) -> ClassifierResult:
        return ClassifierResult(detections=[], model_version=None, status="no_model", detail="no classifier model is installed")
