"""``folder:///dir`` sources: each grab returns the next image of a folder, by file name, cycling.

The folder is listed at every grab, so images added or removed while running are picked up;
the source remembers the last *name* it returned rather than an index, so a new file does not
shift the sequence. JPEG files are returned as their bytes (stored exactly as they are); other
formats OpenCV reads (PNG, BMP, WebP, TIFF) are decoded and encoded once by the capture.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from canteen_watch.config import CameraConfig
from snapshots.errors import CorruptFrameError
from snapshots.sources.base import Grabbed, Source, local_path

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
IMAGE_SUFFIXES = JPEG_SUFFIXES | {".png", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


class FolderSource(Source):
    """Cycle through a folder's images in name order."""

    def __init__(self, camera: CameraConfig) -> None:
        super().__init__(camera)
        self.folder = local_path(camera.source)
        self.last_name: str | None = None
        """Name of the image the previous grab returned."""

    def next_path(self) -> Path:
        """The image after :attr:`last_name` in name order, wrapping to the first.

        Raises:
            SourceUnavailableError: The folder is missing or holds no images.
        """
        if not self.folder.is_dir():
            raise self.unavailable(f"folder {self.folder} not found")
        images = list_images(self.folder)
        if not images:
            raise self.unavailable(f"folder {self.folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if self.last_name is not None:
            for path in images:
                if path.name > self.last_name:
                    return path
        return images[0]

    def grab(self) -> Grabbed:
        """Return the next image: JPEG bytes as stored, or a decoded BGR array for other formats.

        Raises:
            SourceUnavailableError: No folder or no images.
            CorruptFrameError: A non-JPEG image OpenCV cannot read.
        """
        path = self.next_path()
        self.last_name = path.name
        try:
            if path.suffix.lower() in JPEG_SUFFIXES:
                return path.read_bytes()
            image: np.ndarray | None = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except OSError as exc:
            raise self.unavailable(f"cannot read {path}: {exc.strerror or exc}") from None
        if image is None:
            raise CorruptFrameError(self.camera.id, f"cannot decode image {path}")
        return image
