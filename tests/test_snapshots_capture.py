"""capture_frame against real sockets: simulated HTTP cameras, hung and trickling servers, files."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from canteen_watch.core import utcnow
from snapshots.capture import (
    AuthenticationError,
    CaptureError,
    CaptureTimeoutError,
    CorruptFrameError,
    SourceUnavailableError,
    capture_frame,
    decode_jpeg,
    grabs_in_flight,
)
from snapshots.digest import Authenticator
from snapshots.frames import SyntheticKitchen, write_synthetic_video
from snapshots.redact import mask_url, scrub
from snapshots.simulated import SimulatedCameraServer
from snapshots.sources import SOURCES, open_source
from snapshots.sources.device import DeviceSource
from snapshots.sources.folder import FolderSource
from snapshots.sources.http import HttpSource
from snapshots.sources.rtsp import RtspSource
from snapshots.sources.video import VideoFileSource
from tests.conftest_snapshots import (  # noqa: F401 - fixtures
    PASSWORD,
    USER,
    TrickleServer,
    digest_server,
    make_camera,
    sim_server,
    silent_port,
    trickle_server,
)


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def _assert_valid(captured, width: int, height: int) -> None:
    frame = captured.frame
    assert frame.jpeg[:3] == b"\xff\xd8\xff"
    assert frame.sha256 == hashlib.sha256(frame.jpeg).hexdigest()
    assert (frame.width, frame.height) == (width, height)
    assert captured.image.shape == (height, width, 3) and captured.image.dtype == np.uint8
    assert utcnow() - frame.captured_at < timedelta(seconds=10)


# -- HTTP snapshots and auth ---------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["auto", "configured"])
def test_http_snapshot_with_auth(sim_server: SimulatedCameraServer, auth: str) -> None:
    """Basic and digest servers both work, with auto-negotiation or the scheme configured."""
    scheme = sim_server.authenticator.scheme
    camera = make_camera(sim_server.url_for("kitchen-1"), username=USER, password=PASSWORD, auth=scheme if auth == "configured" else "auto")
    first = capture_frame(camera)
    second = capture_frame(camera)
    _assert_valid(first, 640, 360)
    assert first.frame.sha256 != second.frame.sha256, "consecutive snapshots should differ (moving scene)"
    assert "grab" in first.timings_ms and "decode" in first.timings_ms


def test_http_keeps_camera_bytes(digest_server: SimulatedCameraServer) -> None:
    """A JPEG from an HTTP camera is stored exactly as sent, not re-encoded."""
    still = SyntheticKitchen(noise=0)("still")
    with SimulatedCameraServer(lambda cam: still, USER, PASSWORD, "digest", jpeg_quality=93) as server:
        captured = capture_frame(make_camera(server.url_for("cam"), username=USER, password=PASSWORD), jpeg_quality=40)
    assert captured.frame.jpeg == _jpeg(still, 93)


def test_credentials_in_url_are_used(digest_server: SimulatedCameraServer) -> None:
    """``http://user:pass@host/...`` works when the config has no username."""
    url = digest_server.url_for("kitchen-1").replace("http://", f"http://{USER}:{PASSWORD.replace(':', '%3A').replace('@', '%40')}@")
    _assert_valid(capture_frame(make_camera(url)), 640, 360)


@pytest.mark.parametrize("auth", ["auto", "configured"])
def test_wrong_password_fails_clearly(sim_server: SimulatedCameraServer, auth: str) -> None:
    scheme = sim_server.authenticator.scheme
    camera = make_camera(sim_server.url_for("kitchen-1"), username=USER, password="not-the-password-42", auth=scheme if auth == "configured" else "auto")
    with pytest.raises(AuthenticationError) as info:
        capture_frame(camera)
    message = str(info.value)
    assert camera.id in message and "401" in message and "wrong username or password" in message
    assert "not-the-password-42" not in message
    assert isinstance(info.value, SourceUnavailableError)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"auth": "none", "username": USER, "password": PASSWORD}, "authentication required .*and none sent"),
        ({"auth": "auto"}, "no username/password is configured"),
        ({"auth": "basic", "username": USER, "password": PASSWORD}, "basic authentication failed"),
    ],
    ids=["auth-none", "no-credentials", "basic-against-digest"],
)
def test_auth_misconfiguration(digest_server: SimulatedCameraServer, fields: dict, expected: str) -> None:
    with pytest.raises(AuthenticationError, match=expected):
        capture_frame(make_camera(digest_server.url_for("kitchen-1"), **fields))


def test_auto_auth_renegotiates_when_camera_changes_scheme() -> None:
    """A camera switched from digest to basic (firmware reset) keeps working under auth=auto."""
    with SimulatedCameraServer(None, USER, PASSWORD, "digest") as server:
        camera = make_camera(server.url_for("cam"), username=USER, password=PASSWORD)
        capture_frame(camera)
        server.authenticator = Authenticator(USER, PASSWORD, "basic")
        _assert_valid(capture_frame(camera), 640, 360)
        server.authenticator = Authenticator(USER, PASSWORD, "digest")
        _assert_valid(capture_frame(camera), 640, 360)


def test_http_error_status_is_reported(digest_server: SimulatedCameraServer) -> None:
    camera = make_camera(f"{digest_server.base_url}/kitchen-1/wrong/path", username=USER, password=PASSWORD)
    with pytest.raises(SourceUnavailableError, match="HTTP 404"):
        capture_frame(camera)


def test_connection_refused_masks_password(silent_port: int) -> None:
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    camera = make_camera(f"http://{USER}:{PASSWORD.replace('@', '%40')}@127.0.0.1:{closed_port}/snap.jpg", password=PASSWORD, username=USER)
    with pytest.raises(SourceUnavailableError, match="cannot connect") as info:
        capture_frame(camera)
    assert PASSWORD not in str(info.value) and "%40" not in str(info.value)
    assert camera.id in str(info.value)


# -- MJPEG ---------------------------------------------------------------------------------------
def test_mjpeg_stream_grab(sim_server: SimulatedCameraServer) -> None:
    camera = make_camera(sim_server.url_for("kitchen-2", "stream"), username=USER, password=PASSWORD)
    started = time.perf_counter()
    first = capture_frame(camera)
    second = capture_frame(camera)
    elapsed = time.perf_counter() - started
    _assert_valid(first, 640, 360)
    _assert_valid(second, 640, 360)
    assert first.frame.sha256 != second.frame.sha256
    assert elapsed < 1.5, f"two MJPEG grabs took {elapsed:.2f}s; a grab must read one part, not wait on the stream"


# -- hard timeout --------------------------------------------------------------------------------
@pytest.mark.timeout(20)
def test_hung_cameras_time_out_while_others_complete(digest_server: SimulatedCameraServer, silent_port: int) -> None:
    """Hung cameras give up at their deadline; cameras captured alongside finish on time."""
    timeout = 1.0
    hung = [
        make_camera(digest_server.url_for("hang"), timeout_seconds=timeout),  # HTTP server that never answers
        make_camera(f"http://127.0.0.1:{silent_port}/snapshot.jpg", timeout_seconds=timeout),  # socket never read
    ]
    healthy = [make_camera(digest_server.url_for(f"ok-{i}"), username=USER, password=PASSWORD, timeout_seconds=timeout) for i in range(3)]

    def timed(camera):
        started = time.perf_counter()
        try:
            return capture_frame(camera), time.perf_counter() - started
        except CaptureError as exc:
            return exc, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=len(hung) + len(healthy)) as pool:
        results = list(pool.map(timed, hung + healthy))
    for (outcome, elapsed), camera in zip(results[: len(hung)], hung):
        assert isinstance(outcome, CaptureTimeoutError), outcome
        assert camera.id in str(outcome) and "within 1s" in str(outcome)
        assert timeout - 0.05 <= elapsed <= timeout + 0.5, f"hung camera returned after {elapsed:.2f}s"
    for outcome, elapsed in results[len(hung):]:
        assert not isinstance(outcome, Exception), outcome
        assert elapsed < timeout, f"healthy camera took {elapsed:.2f}s next to hung ones"


@pytest.mark.timeout(20)
def test_hung_grab_is_not_piled_up(trickle_server: TrickleServer) -> None:
    """While an abandoned grab still runs, the next one fails fast instead of starting a thread."""
    camera = make_camera(f"http://127.0.0.1:{trickle_server.port}/picture", timeout_seconds=0.5)
    started = time.perf_counter()
    with pytest.raises(CaptureTimeoutError):
        capture_frame(camera)
    assert time.perf_counter() - started < 1.0

    for _ in range(3):
        started = time.perf_counter()
        with pytest.raises(SourceUnavailableError, match="previous grab still running") as info:
            capture_frame(camera)
        assert time.perf_counter() - started < 0.2
        assert camera.id in str(info.value)
    assert grabs_in_flight().count(camera.id) == 1
    assert sum(t.name == f"grab-{camera.id}" for t in threading.enumerate()) == 1

    trickle_server.stop()  # the camera finally hangs up: the abandoned grab ends on its own
    deadline = time.monotonic() + 3
    while camera.id in grabs_in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert camera.id not in grabs_in_flight()
    with pytest.raises(SourceUnavailableError) as info:  # a new grab is attempted again
        capture_frame(camera)
    assert "previous grab" not in str(info.value)


# -- corrupt frames ------------------------------------------------------------------------------
@pytest.mark.parametrize(("endpoint", "reason"), [("corrupt", "truncated JPEG"), ("empty", "zero-byte frame")])
def test_server_bad_frames_rejected(digest_server: SimulatedCameraServer, endpoint: str, reason: str) -> None:
    camera = make_camera(digest_server.url_for(endpoint))
    with pytest.raises(CorruptFrameError, match=reason) as info:
        capture_frame(camera)
    assert camera.id in str(info.value)


_GOOD = _jpeg(SyntheticKitchen(320, 180)("x"))
_PNG = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "zero-byte"),
        (_PNG, "not a JPEG"),
        (b"<html>login</html>", "not a JPEG"),
        (_GOOD[: len(_GOOD) // 2], "truncated JPEG"),
        (_GOOD[:-2], "truncated JPEG"),
        (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20 + b"\xff\xd9", "undecodable JPEG"),
    ],
    ids=["empty", "png", "html", "half", "no-eoi", "garbage"],
)
def test_decode_jpeg_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(CorruptFrameError, match=reason) as info:
        decode_jpeg("cam-x", data)
    assert "'cam-x'" in str(info.value)


def test_decode_jpeg_accepts_padding() -> None:
    """Cameras that pad after the end-of-image marker are fine."""
    assert decode_jpeg("cam-x", _GOOD + b"\x00\x00\r\n").shape == (180, 320, 3)


# -- folder and video sources --------------------------------------------------------------------
def test_folder_source_cycles(tmp_path: Path) -> None:
    scene = SyntheticKitchen(160, 120)
    (tmp_path / "b.png").write_bytes(cv2.imencode(".png", scene("b"))[1].tobytes())
    (tmp_path / "a.jpg").write_bytes(_jpeg(scene("a")))
    (tmp_path / "c.jpeg").write_bytes(_jpeg(scene("c")))
    (tmp_path / "notes.txt").write_text("not an image")
    camera = make_camera(f"folder://{tmp_path}")

    shas = [capture_frame(camera).frame.sha256 for _ in range(4)]
    file_sha = lambda name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()  # noqa: E731
    assert shas[0] == file_sha("a.jpg")  # JPEG files are stored byte for byte
    assert shas[2] == file_sha("c.jpeg")
    assert shas[1] not in (file_sha("a.jpg"), file_sha("c.jpeg"))  # the PNG is encoded once
    assert shas[3] == shas[0]  # wrapped around

    (tmp_path / "b2.jpg").write_bytes(_jpeg(scene("b2")))  # added while running: next after "b.png"
    assert capture_frame(camera).image.shape == (120, 160, 3)  # b.png
    assert capture_frame(camera).frame.sha256 == file_sha("b2.jpg")


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_file_loops(tmp_path: Path, suffix: str) -> None:
    path = write_synthetic_video(tmp_path / f"kitchen{suffix}", frames=5, width=320, height=180)
    reader = cv2.VideoCapture(str(path))
    expected = [reader.read()[1] for _ in range(5)]
    reader.release()
    camera = make_camera(f"file://{path}")
    images = [capture_frame(camera).image for _ in range(7)]
    for index, image in enumerate(images):
        assert np.array_equal(image, expected[index % 5]), f"grab {index} is not frame {index % 5}"
    assert not np.array_equal(images[0], images[1])


def test_jpeg_quality_applies_to_pixel_sources(tmp_path: Path) -> None:
    path = write_synthetic_video(tmp_path / "q.avi", frames=2, width=320, height=180)
    low = capture_frame(make_camera(f"file://{path}", id="q-low"), jpeg_quality=30)
    high = capture_frame(make_camera(f"file://{path}", id="q-high"), jpeg_quality=95)
    assert np.array_equal(low.image, high.image)
    assert len(low.frame.jpeg) < len(high.frame.jpeg) * 0.6
    assert "encode" in low.timings_ms


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("file:///nonexistent/kitchen.mp4", "not found"),
        ("folder:///nonexistent/dir", "not found"),
        ("device://97", "cannot open local camera"),
    ],
)
def test_missing_sources(source: str, reason: str) -> None:
    with pytest.raises(SourceUnavailableError, match=reason):
        capture_frame(make_camera(source))


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailableError, match="holds no images"):
        capture_frame(make_camera(f"folder://{tmp_path}"))


@pytest.mark.parametrize(
    ("source", "cls"),
    [
        ("http://cam/ISAPI/Streaming/channels/101/picture", HttpSource),
        ("https://cam/cgi-bin/snapshot.cgi", HttpSource),
        ("rtsp://cam:554/Streaming/Channels/101", RtspSource),
        ("rtsps://cam:322/stream", RtspSource),
        ("file:///videos/kitchen.mp4", VideoFileSource),
        ("folder:///images", FolderSource),
        ("device://0", DeviceSource),
    ],
)
def test_open_source_by_scheme(source: str, cls: type) -> None:
    source_obj = open_source(make_camera(source))
    assert type(source_obj) is cls
    source_obj.close()
    assert set(SOURCES) == {"http", "https", "rtsp", "rtsps", "file", "folder", "device"}


def test_invalid_jpeg_quality() -> None:
    with pytest.raises(ValueError, match="jpeg_quality"):
        capture_frame(make_camera("folder:///x"), jpeg_quality=0)


# -- redaction -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/Streaming", "rtsp://admin:***@10.0.0.5:554/Streaming"),
        ("http://admin:p%40ss@cam/snap.jpg", "http://admin:***@cam/snap.jpg"),
        ("http://cam/cgi-bin/snapshot.cgi?user=admin&pwd=s3cret&channel=1", "http://cam/cgi-bin/snapshot.cgi?user=admin&pwd=***&channel=1"),
        ("rtsp://admin@cam/live", "rtsp://admin@cam/live"),
        ("http://cam/picture", "http://cam/picture"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_scrub_plain_and_quoted() -> None:
    assert scrub("rtsp://a:p%40ss%3Aw@h failed, p@ss:w", "p@ss:w") == "rtsp://a:***@h failed, ***"
