"""RTSP capture from a real GStreamer RTSP server (tests/rtsp_server.py under /usr/bin/python3).

Skipped, with the apt line to run, when the system python cannot import GstRtspServer.
"""

from __future__ import annotations

import time

import pytest

from snapshots.capture import SourceUnavailableError, capture_frame
from snapshots.sources.rtsp import url_with_credentials
from tests.conftest_snapshots import PASSWORD, USER, RtspProcess, make_camera, rtsp_auth_server, rtsp_server  # noqa: F401

@pytest.mark.rtsp
def test_rtsp_frame(rtsp_server: RtspProcess) -> None:
    assert rtsp_server.url.startswith("rtsp://127.0.0.1:") and rtsp_server.url.endswith("/test")
    camera = make_camera(rtsp_server.url, timeout_seconds=10)
    started = time.perf_counter()
    captured = capture_frame(camera)
    elapsed = time.perf_counter() - started
    assert (captured.frame.width, captured.frame.height) == (320, 240)
    assert captured.image.shape == (240, 320, 3)
    assert captured.image.std() > 10, "decoded a flat frame, not the test pattern"
    assert captured.frame.jpeg[:3] == b"\xff\xd8\xff" and "encode" in captured.timings_ms
    assert elapsed < 8, f"RTSP open+read took {elapsed:.2f}s"


@pytest.mark.rtsp
def test_rtsp_credentials_from_config(rtsp_auth_server: RtspProcess) -> None:
    """Username/password from the config go into the URL, percent-encoded (':' and '@' inside)."""
    camera = make_camera(rtsp_auth_server.url, username=USER, password=PASSWORD, timeout_seconds=10)
    assert capture_frame(camera).image.shape == (240, 320, 3)


@pytest.mark.rtsp
def test_rtsp_wrong_password(rtsp_auth_server: RtspProcess) -> None:
    camera = make_camera(rtsp_auth_server.url, username=USER, password="wrong-pass-77", timeout_seconds=10)
    with pytest.raises(SourceUnavailableError, match="cannot open RTSP stream") as info:
        capture_frame(camera)
    assert "wrong-pass-77" not in str(info.value) and camera.id in str(info.value)


@pytest.mark.rtsp
def test_rtsp_unknown_path(rtsp_server: RtspProcess) -> None:
    camera = make_camera(rtsp_server.url.replace("/test", "/nope"), timeout_seconds=10)
    with pytest.raises(SourceUnavailableError, match="cannot open RTSP stream"):
        capture_frame(camera)


@pytest.mark.parametrize(
    ("url", "user", "password", "expected"),
    [
        ("rtsp://cam:554/live", "admin", "p@ss:w/rd", "rtsp://admin:p%40ss%3Aw%2Frd@cam:554/live"),
        ("rtsp://old:pw@cam/live", "admin", "new", "rtsp://admin:new@cam/live"),
        ("rtsp://old:pw@cam/live", None, None, "rtsp://old:pw@cam/live"),
        ("rtsp://cam/live", "viewer", None, "rtsp://viewer@cam/live"),
    ],
)
def test_url_with_credentials(url: str, user: str | None, password: str | None, expected: str) -> None:
    assert url_with_credentials(url, user, password) == expected
