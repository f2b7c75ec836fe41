"""``file://`` video files: each grab returns the next frame; at the end the file starts over.

Useful for demos and for replaying a recorded kitchen through the whole pipeline. The capture
stays open between grabs (that is what makes "next frame" cheap); a file that cannot be read
back after rewinding is reported, not looped on forever.
"""

from __future__ import annotations

import cv2
import numpy as np

from canteen_watch.config import CameraConfig
from snapshots.errors import CorruptFrameError
from snapshots.sources.base import Source, local_path


class VideoFileSource(Source):
    """Step through a video file one frame per grab, looping."""

    def __init__(self, camera: CameraConfig) -> None:
        super().__init__(camera)
        self.path = local_path(camera.source)
        self._capture: cv2.VideoCapture | None = None
        self.position = 0
        """Index of the next frame a grab returns (0 after a loop)."""

    def _open(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise self.unavailable(f"video file {self.path} not found")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise self.unavailable(f"cannot open video file {self.path} (unsupported container or codec?)")
        return capture

    def grab(self) -> np.ndarray:
        """Return the next frame, rewinding to the first one after the last.

        Raises:
            SourceUnavailableError: The file is missing or cannot be opened.
            CorruptFrameError: Not even the first frame decodes.
        """
        if self._capture is None:
            self._capture = self._open()
        ok, frame = self._capture.read()
        if not ok or frame is None:
            self.close()
            self._capture = self._open()
            self.position = 0
            ok, frame = self._capture.read()
            if not ok or frame is None:
                self.close()
                raise CorruptFrameError(self.camera.id, f"video file {self.path} has no decodable frame")
        self.position += 1
        return frame

    def close(self) -> None:
        """Release the capture; the next grab reopens at the start."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
            self.position = 0
