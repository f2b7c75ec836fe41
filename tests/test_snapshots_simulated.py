"""The simulated cameras themselves: their digest/basic server side and odd endpoints."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from requests.auth import HTTPDigestAuth

from snapshots.digest import NONCE_TTL_SECONDS, Authenticator, parse_auth_params
from snapshots.frames import ImageFolderFrames, SyntheticKitchen, VideoFrames, write_synthetic_video
from snapshots.simulated import SimulatedCameraServer, provider_from_args
from tests.conftest_snapshots import PASSWORD, USER, digest_server  # noqa: F401 - fixture


def _digest_header(auth: Authenticator, uri: str, nonce: str, password: str = PASSWORD) -> str:
    import hashlib

    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731, S324
    ha1, ha2 = md5(f"{USER}:{auth.realm}:{password}"), md5(f"GET:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:abc123:auth:{ha2}")
    return f'Digest username="{USER}", realm="{auth.realm}", nonce="{nonce}", uri="{uri}", qop=auth, nc=00000001, cnonce="abc123", response="{response}"'


def test_digest_check() -> None:
    auth = Authenticator(USER, PASSWORD, "digest")
    challenge = parse_auth_params(auth.challenge())
    assert challenge["qop"] == "auth" and challenge["algorithm"] == "MD5"
    nonce = challenge["nonce"]
    assert auth.check("GET", "/c/p", _digest_header(auth, "/c/p", nonce)) == (True, False)
    assert auth.check("GET", "/c/p", _digest_header(auth, "/c/p", nonce, "bad")) == (False, False)
    assert auth.check("GET", "/other", _digest_header(auth, "/c/p", nonce)) == (False, False)  # uri mismatch
    forged = base64.b64encode(b"1.000:" + b"0" * 32).decode()
    assert auth.check("GET", "/c/p", _digest_header(auth, "/c/p", forged)) == (False, False)
    old = auth.new_nonce(now=time.time() - NONCE_TTL_SECONDS - 5)
    assert auth.check("GET", "/c/p", _digest_header(auth, "/c/p", old)) == (False, True)  # stale
    assert "stale=true" in auth.challenge(stale=True)
    assert auth.check("GET", "/c/p", None) == (False, False)


def test_basic_check() -> None:
    auth = Authenticator(USER, PASSWORD, "basic")
    good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    bad = "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()
    assert auth.check("GET", "/x", good) == (True, False)
    assert auth.check("GET", "/x", bad) == (False, False)
    assert auth.challenge().startswith('Basic realm="IP Camera"')


def test_server_speaks_digest_with_requests(digest_server: SimulatedCameraServer) -> None:
    url = digest_server.url_for("cam-9")
    unauthenticated = requests.get(url, timeout=5)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Digest ")
    ok = requests.get(url, auth=HTTPDigestAuth(USER, PASSWORD), timeout=5)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(ok.content, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)
    assert requests.get(f"{digest_server.base_url}/cam-9/other", auth=HTTPDigestAuth(USER, PASSWORD), timeout=5).status_code == 404


def test_hang_endpoint_never_answers(digest_server: SimulatedCameraServer) -> None:
    with socket.create_connection(("127.0.0.1", digest_server.port), timeout=0.5) as conn:
        conn.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(TimeoutError):
            conn.recv(1)


def test_url_for() -> None:
    with SimulatedCameraServer(username=None) as server:
        assert server.url_for("cam-1") == f"http://127.0.0.1:{server.port}/cam-1/ISAPI/Streaming/channels/101/picture"
        assert server.url_for("cam-1", "stream").endswith("/cam-1/stream.mjpg")
        assert server.url_for("hang").endswith("/hang")
        assert requests.get(server.url_for("cam-1"), timeout=5).status_code == 200  # no auth configured
        with pytest.raises(ValueError):
            server.url_for("../etc")
    with pytest.raises(RuntimeError):
        _ = server.port


def test_synthetic_frames_differ_per_frame_and_camera() -> None:
    scene = SyntheticKitchen(320, 180)
    a1, a2, b1 = scene("a"), scene("a"), scene("b")
    assert a1.shape == (180, 320, 3)
    assert not np.array_equal(a1, a2) and not np.array_equal(a1, b1)


def test_folder_and_video_providers(tmp_path: Path) -> None:
    scene = SyntheticKitchen(160, 90)
    for name in ("2.png", "1.jpg"):
        cv2.imwrite(str(tmp_path / name), scene(name))
    folder = ImageFolderFrames(tmp_path)
    assert [p.name for p in folder.paths] == ["1.jpg", "2.png"]
    assert folder("x").shape == (90, 160, 3)
    video_path = write_synthetic_video(tmp_path / "v" / "clip.avi", frames=3, width=160, height=90)
    video = VideoFrames(video_path)
    frames = [video("x") for _ in range(4)]
    video.close()
    assert np.array_equal(frames[0], frames[3])  # looped
    assert isinstance(provider_from_args(None, None), SyntheticKitchen)
    with pytest.raises(ValueError):
        provider_from_args(tmp_path, video_path)
    with pytest.raises(ValueError, match="no images"):
        ImageFolderFrames(tmp_path / "v")


def test_write_synthetic_video_rejects_unknown_container(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=".mp4"):
        write_synthetic_video(tmp_path / "clip.mkv")
