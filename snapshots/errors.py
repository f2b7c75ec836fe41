"""Capture errors. Every message names the camera and says what went wrong, never a password."""

from __future__ import annotations


class CaptureError(RuntimeError):
    """A snapshot could not be taken.

    Attributes:
        camera_id: The camera that failed.
        reason: What went wrong, without the camera id (for health records and UIs).
    """

    def __init__(self, camera_id: str, reason: str) -> None:
        self.camera_id = camera_id
        self.reason = reason
        super().__init__(f"camera {camera_id!r}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Keep the two-argument constructor picklable (process pools, job stores).
        return (type(self), (self.camera_id, self.reason))


class CaptureTimeoutError(CaptureError):
    """The grab did not finish within the camera's ``timeout_seconds``."""


class SourceUnavailableError(CaptureError):
    """The camera could not be reached, refused us, or has nothing to give (no file, no images)."""


class AuthenticationError(SourceUnavailableError):
    """The camera rejected the credentials, or asked for some and none are configured."""


class CorruptFrameError(CaptureError):
    """The camera answered, but not with a usable image (zero bytes, not JPEG, truncated, undecodable)."""
