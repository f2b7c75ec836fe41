"""Frame providers for the simulated cameras: synthetic kitchen scenes, a folder, a video file.

A provider is any callable ``provider(camera_name) -> BGR ndarray``; it is called once per
snapshot or stream frame and must be thread-safe (the simulated server answers in threads).
"""

from __future__ import annotations

import itertools
import threading
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

FramesProvider = Callable[[str], np.ndarray]
"""``provider(camera_name) -> BGR uint8 image``."""


class SyntheticKitchen:
    """Kitchen-like frames drawn with OpenCV: tiled wall, shelves with containers, a steel
    counter with pots, a worker in a white coat walking along it, a tray sliding the other way,
    sensor noise, and a camera name + UTC timestamp + frame number overlay.

    Each camera gets its own layout (seeded from its name) and frame counter, so consecutive
    frames of one camera always differ and two cameras never look the same.
    """

    def __init__(self, width: int = 640, height: int = 360, noise: float = 3.0) -> None:
        self.width = width
        self.height = height
        self.noise = noise
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}
        self._backgrounds: dict[str, np.ndarray] = {}

    def _background(self, camera: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(camera.encode()))
        w, h = self.width, self.height
        img = np.empty((h, w, 3), np.uint8)
        wall = np.array([200, 205, 210]) + rng.integers(-20, 20, 3)
        img[:] = np.clip(wall, 0, 255).astype(np.uint8)
        tile = max(12, w // 24)
        for x in range(0, w, tile):
            cv2.line(img, (x, 0), (x, int(h * 0.62)), (165, 170, 175), 1)
        for y in range(0, int(h * 0.62), tile):
            cv2.line(img, (0, y), (w, y), (165, 170, 175), 1)
        # floor
        cv2.rectangle(img, (0, int(h * 0.82)), (w, h), (95, 105, 120), -1)
        for x in range(-h, w, tile * 2):
            cv2.line(img, (x, h), (x + int(h * 0.18), int(h * 0.82)), (80, 88, 100), 1)
        # shelves with containers
        for row, y in enumerate((int(h * 0.14), int(h * 0.32))):
            cv2.rectangle(img, (int(w * 0.05), y), (int(w * 0.55), y + 6), (90, 110, 130), -1)
            x = int(w * 0.07)
            while x < int(w * 0.52):
                cw, ch = int(rng.integers(tile, tile * 2)), int(rng.integers(tile, int(tile * 1.8)))
                colour = tuple(int(c) for c in rng.integers(40, 230, 3))
                cv2.rectangle(img, (x, y - ch), (x + cw, y), colour, -1)
                cv2.rectangle(img, (x, y - ch), (x + cw, y), (30, 30, 30), 1)
                if rng.random() < 0.7:  # a lid
                    cv2.rectangle(img, (x - 2, y - ch - 4), (x + cw + 2, y - ch), (240, 240, 240), -1)
                x += cw + int(rng.integers(4, 12))
        # fridge
        fx = int(w * 0.78)
        cv2.rectangle(img, (fx, int(h * 0.08)), (int(w * 0.97), int(h * 0.82)), (215, 220, 222), -1)
        cv2.rectangle(img, (fx, int(h * 0.08)), (int(w * 0.97), int(h * 0.82)), (120, 120, 120), 2)
        cv2.line(img, (fx, int(h * 0.38)), (int(w * 0.97), int(h * 0.38)), (120, 120, 120), 2)
        cv2.line(img, (fx + 8, int(h * 0.18)), (fx + 8, int(h * 0.30)), (60, 60, 60), 3)
        # stainless counter with pots
        top = int(h * 0.58)
        counter = np.linspace(150, 215, int(h * 0.82) - top).astype(np.uint8)[:, None, None]
        img[top:int(h * 0.82), : int(w * 0.75)] = np.repeat(np.repeat(counter, int(w * 0.75), axis=1), 3, axis=2)
        cv2.line(img, (0, top), (int(w * 0.75), top), (90, 90, 90), 2)
        for i in range(3):
            cx = int(w * (0.12 + 0.2 * i))
            cv2.ellipse(img, (cx, top - 2), (tile * 2, tile // 2), 0, 0, 360, (60, 60, 70), -1)
            cv2.rectangle(img, (cx - tile * 2, top - tile * 2), (cx + tile * 2, top - 2), (105, 105, 115), -1)
            cv2.ellipse(img, (cx, top - tile * 2), (tile * 2, tile // 2), 0, 0, 360, (150, 150, 160), -1)
        return img

    def __call__(self, camera: str) -> np.ndarray:
        """Draw the next frame of ``camera``."""
        with self._lock:
            if camera not in self._backgrounds:
                self._backgrounds[camera] = self._background(camera)
                self._counters[camera] = itertools.count()
            background = self._backgrounds[camera]
            n = next(self._counters[camera])
        img = background.copy()
        w, h = self.width, self.height
        # worker walking back and forth along the counter
        span = int(w * 0.6)
        step = (n * 9) % (2 * span)
        x = int(w * 0.1) + (step if step < span else 2 * span - step)
        floor = int(h * 0.82)
        cv2.rectangle(img, (x - 18, floor - int(h * 0.42)), (x + 18, floor - int(h * 0.12)), (245, 245, 245), -1)
        cv2.rectangle(img, (x - 18, floor - int(h * 0.42)), (x + 18, floor - int(h * 0.12)), (150, 150, 150), 1)
        cv2.rectangle(img, (x - 14, floor - int(h * 0.12)), (x + 14, floor), (50, 50, 60), -1)
        head = (x, floor - int(h * 0.42) - 14)
        cv2.circle(img, head, 13, (140, 170, 205), -1)
        cv2.rectangle(img, (x - 13, head[1] - 16), (x + 13, head[1] - 8), (250, 250, 250), -1)  # hat
        # tray sliding the other way
        tx = w - 1 - ((n * 13) % w)
        cv2.rectangle(img, (tx - 25, int(h * 0.56)), (tx + 25, int(h * 0.58)), (40, 120, 200), -1)
        if self.noise > 0:
            noise = np.empty(img.shape, np.int16)
            cv2.randn(noise, 0, self.noise)
            img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        stamp = f"{camera}  {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S.%f}"[:-3] + f"Z  #{n}"
        cv2.rectangle(img, (0, 0), (min(w, 9 * len(stamp)), 24), (0, 0, 0), -1)
        cv2.putText(img, stamp, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return img


class ImageFolderFrames:
    """Cycle through a folder's images (sorted by name), independently per camera."""

    SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in self.SUFFIXES)
        if not self.paths:
            raise ValueError(f"no images ({', '.join(sorted(self.SUFFIXES))}) in {self.folder}")
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}

    def __call__(self, camera: str) -> np.ndarray:
        """Read the camera's next image."""
        with self._lock:
            n = next(self._counters.setdefault(camera, itertools.count()))
        path = self.paths[n % len(self.paths)]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot decode {path}")
        return image


class VideoFrames:
    """Play a video file, looping; all cameras share one playback position."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._capture = self._open()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise ValueError(f"cannot open video {self.path}")
        return capture

    def __call__(self, camera: str) -> np.ndarray:
        """Return the next frame of the video."""
        with self._lock:
            ok, frame = self._capture.read()
            if not ok:
                self._capture.release()
                self._capture = self._open()
                ok, frame = self._capture.read()
            if not ok or frame is None:
                raise ValueError(f"{self.path} has no decodable frame")
            return frame

    def close(self) -> None:
        """Release the video file."""
        with self._lock:
            self._capture.release()


VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
"""Container suffix → FourCC that the pip OpenCV build can both write and read back."""


def write_synthetic_video(path: Path | str, *, frames: int = 30, fps: float = 10.0, width: int = 640, height: int = 360, camera: str = "video") -> Path:
    """Write a short synthetic kitchen video for a ``file://`` demo camera.

    ``.mp4`` uses MPEG-4 Part 2 (``mp4v``) and ``.avi`` uses Motion-JPEG — both are written and read
    back by OpenCV's bundled FFmpeg (H.264 ``avc1`` is not: the wheel has no H.264 encoder).

    Args:
        path: Target file, ``.mp4`` or ``.avi``.
        frames: Number of frames.
        fps: Frame rate stored in the container.
        width: Frame width.
        height: Frame height.
        camera: Name drawn in the overlay.

    Returns:
        ``path``, after checking that it reads back with ``frames`` frames.

    Raises:
        ValueError: Unsupported suffix.
        RuntimeError: OpenCV could not write or read the file back.
    """
    path = Path(path)
    codec = VIDEO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"use one of {', '.join(VIDEO_CODECS)} for a synthetic video, not {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {codec} into {path}")
    scene = SyntheticKitchen(width, height)
    try:
        for _ in range(frames):
            writer.write(scene(camera))
    finally:
        writer.release()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    if count != frames:
        raise RuntimeError(f"{path} reads back {count} of {frames} frames")
    return path
