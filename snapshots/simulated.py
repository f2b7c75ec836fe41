"""Simulated IP cameras for the demo and the tests: a real HTTP server on 127.0.0.1.

Per camera name ``<cam>`` it serves, behind real basic or digest authentication:

* ``/<cam>/ISAPI/Streaming/channels/101/picture`` — one JPEG, the Hikvision snapshot path;
* ``/<cam>/stream.mjpg`` — an MJPEG stream (``multipart/x-mixed-replace``).

And, without authentication, three misbehaving endpoints for tests:

* ``/hang`` — accepts the request and never answers (until the server stops);
* ``/corrupt`` — ``200 image/jpeg`` with a JPEG cut in half;
* ``/empty`` — ``200 image/jpeg`` with zero bytes.

Frames come from a provider (:mod:`snapshots.frames`): synthetic kitchen scenes by default,
the user's images (``--images DIR``) or a video (``--video FILE``). Run standalone with
``python -m snapshots.simulated --cameras cam-1,cam-2`` to point a real config at it.
"""

from __future__ import annotations

import argparse
import logging
import re
import socket
import sys
import threading
import time
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import cv2

from snapshots.digest import Authenticator
from snapshots.frames import FramesProvider, ImageFolderFrames, SyntheticKitchen, VideoFrames

log = logging.getLogger(__name__)

SNAPSHOT_PATH = "ISAPI/Streaming/channels/101/picture"
STREAM_PATH = "stream.mjpg"
BOUNDARY = "canteenwatchframe"
_CAMERA = re.compile(r"^/([A-Za-z0-9_-]{1,64})/(.+)$")


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; ``server`` is a :class:`_Server`."""

    server: "_Server"
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections are dropped after this

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle + delayed ACK add
        # ~40-90 ms to every response on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("simulated camera %s: " + format, self.client_address[0], *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        self.server.owner.requests.append(path)
        if path in ("/hang", "/corrupt", "/empty"):
            getattr(self, f"_{path[1:]}")()
            return
        match = _CAMERA.match(path)
        if not match or match.group(2) not in (SNAPSHOT_PATH, STREAM_PATH):
            self._send(404, b"not found\n", "text/plain")
            return
        if not self._authorised():
            return
        camera, what = match.groups()
        if what == SNAPSHOT_PATH:
            self._send(200, self.server.owner.jpeg_for(camera), "image/jpeg")
        else:
            self._stream(camera)

    # -- auth -----------------------------------------------------------------------------------
    def _authorised(self) -> bool:
        auth = self.server.owner.authenticator
        if auth is None:
            return True
        ok, stale = auth.check(self.command, self.path, self.headers.get("Authorization"))
        if ok:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", auth.challenge(stale=stale))
        body = b"401 Unauthorized\n"
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return False

    # -- responses ------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, camera: str) -> None:
        owner = self.server.owner
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            while not owner.stopping.is_set():
                jpeg = owner.jpeg_for(camera)
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
                owner.stopping.wait(1.0 / owner.stream_fps)

    def _hang(self) -> None:
        self.close_connection = True
        self.server.owner.stopping.wait()

    def _corrupt(self) -> None:
        jpeg = self.server.owner.jpeg_for("corrupt")
        self._send(200, jpeg[: len(jpeg) // 2], "image/jpeg")

    def _empty(self) -> None:
        self._send(200, b"", "image/jpeg")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: "SimulatedCameraServer"

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """Clients hanging up (timeouts, closed streams) are normal for cameras: log quietly."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("simulated camera: client %s went away", client_address[0])
            return
        super().handle_error(request, client_address)


class SimulatedCameraServer:
    """Simulated HTTP cameras on ``127.0.0.1`` (see the module docstring for the endpoints).

    Args:
        frames_provider: ``provider(camera_name) -> BGR image``; synthetic kitchen scenes when
            None.
        username: Required user; None serves without authentication.
        password: Its password.
        auth: ``"digest"`` or ``"basic"``.
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        jpeg_quality: Quality of the JPEGs served.
        stream_fps: Frames per second on the MJPEG streams.
    """

    def __init__(
        self,
        frames_provider: FramesProvider | None = None,
        username: str | None = "admin",
        password: str | None = "admin123",
        auth: str = "digest",
        *,
        port: int = 0,
        jpeg_quality: int = 90,
        stream_fps: float = 5.0,
    ) -> None:
        self.frames_provider = frames_provider or SyntheticKitchen()
        self.username = username
        self.password = password
        self.authenticator = Authenticator(username, password or "", auth) if username is not None else None
        self.jpeg_quality = jpeg_quality
        self.stream_fps = stream_fps
        self.stopping = threading.Event()
        self.requests: list[str] = []
        """Paths requested so far, in order (for tests)."""
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "SimulatedCameraServer":
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self.stopping.clear()
        server = _Server(("127.0.0.1", self._requested_port), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="simulated-cameras", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hung and streaming handlers, and close the socket."""
        if self._server is None:
            return
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "SimulatedCameraServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port actually bound (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the simulated camera server is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, cam: str, kind: str = "snapshot") -> str:
        """URL of camera ``cam``: ``kind`` is ``"snapshot"`` or ``"stream"`` (MJPEG).

        ``cam`` may also be ``"hang"``, ``"corrupt"`` or ``"empty"`` for the misbehaving
        endpoints. Credentials are not embedded; put them in the camera config.
        """
        if cam in ("hang", "corrupt", "empty"):
            return f"{self.base_url}/{cam}"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cam):
            raise ValueError(f"camera name {cam!r} must match [A-Za-z0-9_-]{{1,64}}")
        if kind == "snapshot":
            return f"{self.base_url}/{cam}/{SNAPSHOT_PATH}"
        if kind == "stream":
            return f"{self.base_url}/{cam}/{STREAM_PATH}"
        raise ValueError(f"kind must be snapshot or stream, got {kind!r}")

    # -- frames -----------------------------------------------------------------------------------
    def jpeg_for(self, camera: str) -> bytes:
        """Encode the provider's next frame for ``camera``."""
        image = self.frames_provider(camera)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"cannot encode a frame for {camera}")
        return buffer.tobytes()


def provider_from_args(images: Path | None, video: Path | None) -> FramesProvider:
    """The frames provider a demo asked for: a folder, a video, or synthetic scenes."""
    if images is not None and video is not None:
        raise ValueError("give --images or --video, not both")
    if images is not None:
        return ImageFolderFrames(images)
    if video is not None:
        return VideoFrames(video)
    return SyntheticKitchen()


def main(argv: list[str] | None = None) -> int:
    """Serve simulated cameras until Ctrl-C; prints one URL per camera."""
    parser = argparse.ArgumentParser(description="Simulated HTTP/MJPEG cameras on 127.0.0.1.")
    parser.add_argument("--cameras", default="cam-1,cam-2", help="comma-separated camera names")
    parser.add_argument("--images", type=Path, help="serve this folder of images")
    parser.add_argument("--video", type=Path, help="serve this video file")
    parser.add_argument("--port", type=int, default=0, help="port (0 = any free one)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin123")
    parser.add_argument("--auth", choices=("digest", "basic"), default="digest")
    args = parser.parse_args(argv)
    provider = provider_from_args(args.images, args.video)
    with SimulatedCameraServer(provider, args.user, args.password, args.auth, port=args.port) as server:
        print(f"simulated cameras ({args.auth} auth, user {args.user!r}):", flush=True)
        for cam in filter(None, (c.strip() for c in args.cameras.split(","))):
            print(f"  {cam}: {server.url_for(cam)}  stream: {server.url_for(cam, 'stream')}", flush=True)
        with suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
