"""``capture_frame``: one grab with a hard deadline, validated, JPEG-encoded exactly once.

**Hard timeout.** Some cameras accept the TCP connection and then never answer; socket and
FFmpeg timeouts do not always cover every phase (DNS, TLS, a trickling MJPEG stream, a wedged
driver). So the grab runs in its own daemon thread and the caller waits at most
``camera.timeout_seconds`` for it. A thread cannot be killed, so an abandoned grab keeps running
until its own socket/FFmpeg timeouts (also ``timeout_seconds``) end it. To keep such threads from
piling up there is at most **one grab in flight per camera**: while a previous grab of the camera
is still running, the next ``capture_frame`` fails at once with :class:`SourceUnavailableError`
("previous grab still running") instead of starting another thread.

**Encoding once.** HTTP cameras and JPEG folders give JPEG bytes: those exact bytes are stored
(and decoded once to validate them and produce ``image``). Sources that give pixels (RTSP, video
files, local devices) are encoded once with ``cv2.imencode`` at ``jpeg_quality``. The SHA-256 is
computed once, by :meth:`canteen_watch.core.Frame.from_jpeg`.

**Sources are kept per camera id** (an HTTP session, a video file position, a folder cursor) and
replaced when the camera's config changes; :func:`close_sources` releases them all.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

from canteen_watch.config import CameraConfig
from canteen_watch.core import Frame, utcnow
from snapshots.errors import (
    AuthenticationError,
    CaptureError,
    CaptureTimeoutError,
    CorruptFrameError,
    SourceUnavailableError,
)
from snapshots.redact import mask_url, scrub, url_secrets
from snapshots.sources import Grabbed, Source, open_source

log = logging.getLogger(__name__)

__all__ = [
    "AuthenticationError",
    "CaptureError",
    "CaptureTimeoutError",
    "CapturedFrame",
    "CorruptFrameError",
    "SourceUnavailableError",
    "capture_frame",
    "close_sources",
    "decode_jpeg",
    "encode_jpeg",
]


@dataclass(frozen=True)
class CapturedFrame:
    """A validated snapshot.

    Attributes:
        frame: The stored form: JPEG bytes, their SHA-256, size and capture time.
        image: The decoded BGR pixels, for quality checks and classifiers.
        timings_ms: ``grab``, ``decode`` and/or ``encode`` durations in milliseconds.
    """

    frame: Frame
    image: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)


# -- validation and encoding -------------------------------------------------------------------
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"


def decode_jpeg(camera_id: str, data: bytes) -> np.ndarray:
    """Check that ``data`` is one whole JPEG and decode it to BGR.

    Raises:
        CorruptFrameError: Zero bytes, not a JPEG (wrong magic), truncated (no end-of-image
            marker), or OpenCV cannot decode it; the message says which.
    """
    if not data:
        raise CorruptFrameError(camera_id, "zero-byte frame (the camera sent an empty body)")
    if not data.startswith(_JPEG_SOI):
        raise CorruptFrameError(camera_id, f"not a JPEG: {len(data)} bytes starting {data[:8].hex(' ')} (expected ff d8 ff)")
    # Some cameras pad the body after the end-of-image marker with NULs or a line break.
    if not data.rstrip(b"\x00\r\n ").endswith(_JPEG_EOI):
        raise CorruptFrameError(camera_id, f"truncated JPEG: {len(data)} bytes without the end-of-image marker (ff d9)")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise CorruptFrameError(camera_id, f"undecodable JPEG: OpenCV could not decode {len(data)} bytes")
    return image


def _as_bgr(camera_id: str, image: np.ndarray) -> np.ndarray:
    """Validate a grabbed array and convert grey/BGRA/16-bit to 8-bit BGR."""
    if not isinstance(image, np.ndarray) or image.size == 0 or image.ndim not in (2, 3):
        raise CorruptFrameError(camera_id, f"source returned no image ({type(image).__name__} {getattr(image, 'shape', '')})")
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            raise CorruptFrameError(camera_id, f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 3:
        return image
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    raise CorruptFrameError(camera_id, f"unsupported channel count {channels}")


def encode_jpeg(camera_id: str, image: np.ndarray, quality: int) -> bytes:
    """Encode a BGR image as JPEG at ``quality`` (1-100).

    Raises:
        ValueError: ``quality`` is outside 1..100.
        CorruptFrameError: OpenCV refuses to encode the image.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100, got {quality}")
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CorruptFrameError(camera_id, f"OpenCV could not encode a {image.shape} image as JPEG")
    return buffer.tobytes()


# -- per-camera sources and in-flight grabs ----------------------------------------------------
class _Registry:
    """Sources by camera id, and the grab currently running for each camera."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[CameraConfig, Source]] = {}
        self._in_flight: dict[str, tuple[Future[tuple[Grabbed, datetime]], float]] = {}

    def start(self, camera: CameraConfig) -> Future[tuple[Grabbed, datetime]]:
        """Start a grab thread for ``camera`` once its previous grab (if any) has ended.

        A previous grab younger than the camera's timeout is waited for (grabs of one camera are
        serialised); one older than that is hung, and the call fails at once.

        Raises:
            SourceUnavailableError: The camera's previous grab is hung.
        """
        while True:
            with self._lock:
                running = self._in_flight.get(camera.id)
                if running is None or running[0].done():
                    source = self._source_for(camera)
                    future: Future[tuple[Grabbed, datetime]] = Future()
                    self._in_flight[camera.id] = (future, time.monotonic())
                    break
                age = time.monotonic() - running[1]
                if age >= camera.timeout_seconds:
                    raise SourceUnavailableError(
                        camera.id,
                        f"previous grab still running after {age:.1f}s (camera hung?); not starting another until it ends",
                    )
            futures_wait([running[0]], timeout=camera.timeout_seconds - age)
        thread = threading.Thread(target=self._run, args=(camera.id, source, future), name=f"grab-{camera.id}", daemon=True)
        thread.start()
        return future

    def _source_for(self, camera: CameraConfig) -> Source:
        cached = self._sources.get(camera.id)
        if cached is not None and cached[0] == camera:
            return cached[1]
        if cached is not None:
            cached[1].close()
        source = open_source(camera)
        self._sources[camera.id] = (camera, source)
        return source

    def _run(self, camera_id: str, source: Source, future: Future[tuple[Grabbed, datetime]]) -> None:
        future.set_running_or_notify_cancel()
        try:
            grabbed = source.grab()
            future.set_result((grabbed, utcnow()))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)
        finally:
            with self._lock:
                if self._in_flight.get(camera_id, (None,))[0] is future:
                    del self._in_flight[camera_id]

    def in_flight(self) -> list[str]:
        """Camera ids with a grab still running (including abandoned ones)."""
        with self._lock:
            return sorted(cid for cid, (future, _) in self._in_flight.items() if not future.done())

    def close_all(self) -> None:
        """Close and forget every source (running grabs finish on their own)."""
        with self._lock:
            sources = [source for _, source in self._sources.values()]
            self._sources.clear()
        for source in sources:
            try:
                source.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                log.debug("closing a source failed", exc_info=True)


_registry = _Registry()


def close_sources() -> None:
    """Release every cached source (HTTP sessions, open video files). Call at shutdown."""
    _registry.close_all()


def grabs_in_flight() -> list[str]:
    """Camera ids whose grab is still running, abandoned ones included (for status reports)."""
    return _registry.in_flight()


# -- capture -------------------------------------------------------------------------------------
def _scrubbed(camera: CameraConfig, exc: CaptureError) -> CaptureError:
    """The same error with every secret of the camera masked out of its reason."""
    reason = scrub(exc.reason, camera.password, *url_secrets(camera.source))
    if reason == exc.reason:
        return exc
    return type(exc)(exc.camera_id, reason)


def _wait(camera: CameraConfig, future: Future[tuple[Grabbed, datetime]]) -> tuple[Grabbed, datetime]:
    try:
        return future.result(timeout=camera.timeout_seconds)
    except FutureTimeoutError:
        raise CaptureTimeoutError(camera.id, f"no frame from {mask_url(camera.source)} within {camera.timeout_seconds:g}s") from None
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - any library error becomes a named capture error
        raise SourceUnavailableError(camera.id, f"{mask_url(camera.source)}: {type(exc).__name__}: {exc}") from None


def capture_frame(camera: CameraConfig, *, jpeg_quality: int = 85) -> CapturedFrame:
    """Take one snapshot of ``camera`` within ``camera.timeout_seconds``.

    Thread-safe; different cameras are captured concurrently, one grab per camera at a time.

    Args:
        camera: The camera to read.
        jpeg_quality: Quality for sources that return pixels (1-100); JPEG sources keep their
            bytes untouched.

    Returns:
        The validated frame: stored JPEG bytes with SHA-256, and the decoded BGR image.

    Raises:
        CaptureTimeoutError: No frame within the timeout (the grab is abandoned).
        SourceUnavailableError: Unreachable, refused, HTTP error, missing file/folder, or the
            previous grab of this camera is still hung. :class:`AuthenticationError` (a subclass)
            for rejected or missing credentials.
        CorruptFrameError: Zero-byte, non-JPEG, truncated or undecodable data.
    """
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
    started = time.perf_counter()
    try:
        grabbed, captured_at = _wait(camera, _registry.start(camera))
        timings = {"grab": (time.perf_counter() - started) * 1000}
        mark = time.perf_counter()
        if isinstance(grabbed, (bytes, bytearray, memoryview)):
            jpeg = bytes(grabbed)
            image = decode_jpeg(camera.id, jpeg)
            timings["decode"] = (time.perf_counter() - mark) * 1000
        else:
            image = _as_bgr(camera.id, grabbed)
            jpeg = encode_jpeg(camera.id, image, jpeg_quality)
            timings["encode"] = (time.perf_counter() - mark) * 1000
    except CaptureError as exc:
        clean = _scrubbed(camera, exc)
        log.debug("%s", clean)
        if clean is exc:
            raise
        raise clean from None
    height, width = image.shape[:2]
    frame = Frame.from_jpeg(jpeg, width=width, height=height, captured_at=captured_at)
    return CapturedFrame(frame=frame, image=image, timings_ms=timings)
