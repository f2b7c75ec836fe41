"""Fixtures for the snapshot tests: simulated cameras, misbehaving sockets, an RTSP server.

Test modules import what they use (``from tests.conftest_snapshots import sim_server``), so
nothing here depends on ``tests/conftest.py``. The lead may instead list this module in
``pytest_plugins`` there.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from canteen_watch.config import CameraConfig
from snapshots.simulated import SimulatedCameraServer

REPO = Path(__file__).resolve().parents[1]
KITCHENS = Path(os.environ.get("CANTEEN_WATCH_DATA", REPO.parent / "shared" / "data")) / "kitchens"
USER = "admin"
PASSWORD = "Kit:chen@2024!"  # ':' and '@' make URL-quoting mistakes visible
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
RTSP_APT = (
    "apt-get install -y --no-install-recommends gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-rtsp "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav"
)

CameraFactory = Callable[..., CameraConfig]


def make_camera(source: str, **fields: Any) -> CameraConfig:
    """A camera with a unique id (captures keep per-id state), 2 s timeout unless given."""
    fields.setdefault("id", f"t-{uuid.uuid4().hex[:10]}")
    fields.setdefault("site", "site-a")
    fields.setdefault("timeout_seconds", 2.0)
    return CameraConfig(source=source, **fields)


@pytest.fixture(scope="session", params=["digest", "basic"])
def sim_server(request: pytest.FixtureRequest) -> Iterator[SimulatedCameraServer]:
    """Simulated cameras with real ``digest``, then ``basic``, authentication."""
    with SimulatedCameraServer(username=USER, password=PASSWORD, auth=request.param) as server:
        yield server


@pytest.fixture(scope="session")
def digest_server() -> Iterator[SimulatedCameraServer]:
    """Simulated cameras with digest authentication only."""
    with SimulatedCameraServer(username=USER, password=PASSWORD, auth="digest") as server:
        yield server


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener completes TCP handshakes but never reads nor answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


class TrickleServer:
    """An HTTP 'camera' that sends headers, then one body byte every ``interval`` seconds.

    Each byte resets a client's read timeout, so only a hard deadline stops waiting for it.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n\xff\xd8")
                while not self.stopped.wait(self.interval):
                    conn.sendall(b"\x00")
            except OSError:
                pass

    def stop(self) -> None:
        """Close every connection and the listener."""
        self.stopped.set()
        self._accepting.join(timeout=2)
        for thread in self._threads:
            thread.join(timeout=2)
        self._listener.close()


@pytest.fixture
def trickle_server() -> Iterator[TrickleServer]:
    """A camera that trickles bytes forever (until the test stops it)."""
    server = TrickleServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kitchen_images() -> list[Path]:
    """The shared real kitchen photos (skips when the data folder is absent)."""
    if not KITCHENS.is_dir():
        pytest.skip(f"real kitchen images not available at {KITCHENS} (set CANTEEN_WATCH_DATA)")
    images = sorted(KITCHENS.rglob("*.jpg"))
    if not images:
        pytest.skip(f"no .jpg images under {KITCHENS}")
    return images


def _gst_rtsp_available() -> str | None:
    """None when the system python can run the RTSP server, else why not."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"{SYSTEM_PYTHON} cannot import gi.repository.GstRtspServer; install with: {RTSP_APT}"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RtspProcess:
    """``tests/rtsp_server.py`` running under the system python."""

    def __init__(self, *extra: str) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        line = ""
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.process.stdout.readline()
            if line.startswith("READY ") or not line:
                break
        if not line.startswith("READY "):
            self.stop()
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"RTSP server did not start: {line!r} {stderr[-2000:]}")
        self.url = line.split()[1]

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspProcess]:
    """A real GStreamer RTSP server at ``rtsp://127.0.0.1:PORT/test`` (no authentication)."""
    reason = _gst_rtsp_available()
    if reason:
        pytest.skip(reason)
    server = RtspProcess()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rtsp_auth_server() -> Iterator[RtspProcess]:
    """A real RTSP server requiring basic auth as ``USER``/``PASSWORD``."""
    reason = _gst_rtsp_available()
    if reason:
        pytest.skip(reason)
    server = RtspProcess("--user", USER, "--password", PASSWORD)
    yield server
    server.stop()


__all__ = [
    "KITCHENS",
    "PASSWORD",
    "USER",
    "digest_server",
    "kitchen_images",
    "make_camera",
    "rtsp_auth_server",
    "rtsp_server",
    "sim_server",
    "silent_port",
    "trickle_server",
]
