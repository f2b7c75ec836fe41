"""``device://N`` local cameras (USB/V4L2 webcams, capture cards) through OpenCV.

Like RTSP, the device is opened per snapshot: an open capture queues stale frames, and holding a
webcam all day blocks other users of it. The first few frames after opening are discarded because
webcams deliver them before auto-exposure and white balance settle (dark or green frames).
``device:///dev/video2`` names the device node instead of an index.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import cv2
import numpy as np

from snapshots.sources.base import Source

WARMUP_FRAMES = 5
"""Frames read and thrown away after opening, while exposure settles."""


def device_of(source_url: str) -> int | str:
    """The OpenCV device argument of a ``device://`` URL: an index or a ``/dev/...`` path.

    Raises:
        ValueError: Neither an index nor a path.
    """
    parts = urlsplit(source_url)
    if parts.netloc.isdigit() and not parts.path.strip("/"):
        return int(parts.netloc)
    if not parts.netloc and parts.path.startswith("/dev/"):
        return parts.path
    raise ValueError(f"expected device://<index> or device:///dev/videoN, got {source_url!r}")


class DeviceSource(Source):
    """Open the device, let exposure settle, return one frame, close."""

    def grab(self) -> np.ndarray:
        """Return a frame from the local camera.

        Raises:
            SourceUnavailableError: Bad URL, no such device, busy, or no frame.
        """
        try:
            device = device_of(self.camera.source)
        except ValueError as exc:
            raise self.unavailable(str(exc)) from None
        capture = cv2.VideoCapture(device, cv2.CAP_ANY)
        try:
            if not capture.isOpened():
                raise self.unavailable(f"cannot open local camera {device!r} (missing, busy or no permission)")
            frame: np.ndarray | None = None
            for _ in range(WARMUP_FRAMES + 1):
                ok, candidate = capture.read()
                if ok and candidate is not None:
                    frame = candidate
            if frame is None:
                raise self.unavailable(f"local camera {device!r} opened but gave no frame")
            return frame
        finally:
            capture.release()
