"""RTSP(S) cameras through OpenCV's FFmpeg backend.

**Why the stream is opened per snapshot.** OpenCV's FFmpeg capture keeps reading into internal
buffers (FFmpeg's demuxer queue, the decoder's frame queue) only when ``read()`` is called. A
capture left open between snapshots minutes apart would return the *oldest* buffered frame,
seconds or minutes stale, and the camera may drop the idle session anyway. Draining the buffer
reliably would mean a reader thread per camera decoding every frame all day. Opening, reading one
frame and closing costs about a second (RTSP handshake + stream probe + first keyframe) and is
always fresh and correct, which suits snapshots taken every few minutes.

Options: ``rtsp_transport=tcp`` (interleaved RTP over the RTSP connection: no UDP ports through
NAT or firewalls, no lost packets smearing the picture) and a 1 s ``analyzeduration`` (FFmpeg's
default 5 s probe would dominate every open) are set through ``OPENCV_FFMPEG_CAPTURE_OPTIONS``
unless the operator has set that variable. Open and read timeouts are passed as capture
properties, so a silent camera releases the FFmpeg thread on its own shortly after
:func:`snapshots.capture.capture_frame` stopped waiting for it.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import quote, urlsplit, urlunsplit

import cv2
import numpy as np

from snapshots.sources.base import Source

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
DEFAULT_FFMPEG_OPTIONS = "rtsp_transport;tcp|analyzeduration;1000000"
_env_lock = threading.Lock()


def ensure_ffmpeg_options() -> str:
    """Set :data:`FFMPEG_OPTIONS_ENV` once (process-wide) unless already set; return its value.

    OpenCV reads the variable at every open. An operator's own value is kept, with
    ``rtsp_transport;tcp`` appended when it names no transport.
    """
    with _env_lock:
        current = os.environ.get(FFMPEG_OPTIONS_ENV)
        if current is None:
            os.environ[FFMPEG_OPTIONS_ENV] = DEFAULT_FFMPEG_OPTIONS
        elif "rtsp_transport" not in current:
            os.environ[FFMPEG_OPTIONS_ENV] = f"{current}|rtsp_transport;tcp" if current else "rtsp_transport;tcp"
        return os.environ[FFMPEG_OPTIONS_ENV]


def url_with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Put ``username``/``password`` (percent-encoded) into the URL's user-info.

    Credentials already in the URL are kept when the config gives none.
    """
    if username is None:
        return url
    parts = urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    userinfo = quote(username, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{hostport}", parts.path, parts.query, parts.fragment))


class RtspSource(Source):
    """Open the stream, decode one frame, close (see the module docstring for why)."""

    def grab(self) -> np.ndarray:
        """Return the first decoded frame of a fresh RTSP session.

        Raises:
            SourceUnavailableError: The stream cannot be opened (unreachable, refused, wrong
                path or wrong credentials — FFmpeg does not tell OpenCV which) or yields no frame.
        """
        ensure_ffmpeg_options()
        url = url_with_credentials(self.camera.source, self.camera.username, self.camera.password)
        timeout_ms = int(self.camera.timeout_seconds * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        try:
            capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        except cv2.error as exc:
            raise self.unavailable(f"{self.display_url}: OpenCV could not open the stream ({type(exc).__name__})") from None
        try:
            if not capture.isOpened():
                raise self.unavailable(f"{self.display_url}: cannot open RTSP stream (unreachable, refused, wrong path or wrong credentials)")
            ok, frame = capture.read()
            if not ok or frame is None or frame.size == 0:
                raise self.unavailable(f"{self.display_url}: stream opened but no frame was decoded")
            return frame
        finally:
            capture.release()
