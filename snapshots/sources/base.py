"""What every source is: something a camera config opens and :meth:`Source.grab` reads from."""

from __future__ import annotations

import abc
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

from canteen_watch.config import CameraConfig
from snapshots.errors import SourceUnavailableError
from snapshots.redact import mask_url

Grabbed = bytes | np.ndarray
"""What a grab returns: encoded JPEG bytes kept as the camera sent them, or a BGR image."""


class Source(abc.ABC):
    """One camera's source. Instances may keep state between grabs (a session, a file position).

    :func:`snapshots.capture.capture_frame` never runs two grabs of one source at the same time,
    so implementations need no locking of their own.
    """

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera

    @property
    def display_url(self) -> str:
        """The source URL with any password masked, for messages and logs."""
        return mask_url(self.camera.source)

    @abc.abstractmethod
    def grab(self) -> Grabbed:
        """Take one frame.

        Returns:
            JPEG bytes exactly as received, or a BGR ``uint8`` image.

        Raises:
            snapshots.errors.CaptureError: A subclass saying what went wrong.
        """

    def close(self) -> None:
        """Release what the source holds open (sessions, file handles). Safe to call twice."""

    def unavailable(self, reason: str) -> SourceUnavailableError:
        """Build the error for a source that cannot deliver, naming this camera."""
        return SourceUnavailableError(self.camera.id, reason)


def local_path(source_url: str) -> Path:
    """The filesystem path of a ``file://`` or ``folder://`` URL.

    ``file:///abs/video.mp4`` and ``file://localhost/abs/video.mp4`` are absolute;
    ``file://video.mp4`` and ``file://demo/video.mp4`` are taken relative to the working directory
    (the convenient, if non-standard, spelling used in configs).
    """
    parts = urlsplit(source_url)
    netloc = "" if parts.netloc.lower() == "localhost" else parts.netloc
    return Path(unquote(netloc + parts.path))
