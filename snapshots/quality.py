"""Snapshot quality: is the frame sharp, lit and not blocked?

All three measurements are taken on a grey copy of the frame downscaled to :data:`ANALYSIS_WIDTH`
pixels wide (aspect ratio kept, ``INTER_AREA``), so the thresholds in
:class:`~canteen_watch.config.HealthConfig` mean the same thing for a 640x360 and a 3840x2160
camera (measured on the kitchen photos: the same scene at 640, 1024 and 3840 px wide gives
sharpness within ~15 %). Frames narrower than that are measured as they are, never upscaled —
upscaling invents no detail and would make every low-resolution camera read "blurred"; such a
frame reads somewhat sharper than the same scene at 640 px (about 2-3x at 320 px).

* ``sharpness`` — variance of the Laplacian (edge energy). Defocus, motion blur, fog or a greasy
  lens lower it.
* ``brightness`` — mean grey level 0..255.
* ``contrast`` — standard deviation of the grey levels. A lens covered by a hand, tape or a
  cloth, or a camera showing a flat "no signal" screen, gives an almost uniform image.
"""

from __future__ import annotations

import cv2
import numpy as np

from canteen_watch.config import HealthConfig
from canteen_watch.core import Quality

ANALYSIS_WIDTH = 640
"""Width in pixels of the grey image the measurements are taken on."""


def analysis_grey(image_bgr: np.ndarray) -> np.ndarray:
    """Return the frame as a single-channel uint8 image at most :data:`ANALYSIS_WIDTH` wide.

    Args:
        image_bgr: BGR (H, W, 3), BGRA (H, W, 4) or grey (H, W) uint8 image.

    Raises:
        ValueError: The array is empty or not an image.
    """
    if image_bgr is None or image_bgr.size == 0 or image_bgr.ndim not in (2, 3):
        raise ValueError("not an image: empty array or wrong number of dimensions")
    if image_bgr.ndim == 2:
        grey = image_bgr
    elif image_bgr.shape[2] == 4:
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2GRAY)
    elif image_bgr.shape[2] == 3:
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    else:
        raise ValueError(f"unsupported channel count {image_bgr.shape[2]}")
    height, width = grey.shape
    if width > ANALYSIS_WIDTH:
        new_height = max(1, round(height * ANALYSIS_WIDTH / width))
        grey = cv2.resize(grey, (ANALYSIS_WIDTH, new_height), interpolation=cv2.INTER_AREA)
    return grey


def assess(image_bgr: np.ndarray, cfg: HealthConfig) -> Quality:
    """Measure a frame and flag it blurred, dark or blocked.

    Args:
        image_bgr: The decoded frame (BGR, as OpenCV returns it).
        cfg: Thresholds: ``blur_threshold`` (Laplacian variance), ``dark_threshold`` (mean grey)
            and ``uniform_threshold`` (grey standard deviation).

    Returns:
        The three measurements and the flags. Each flag is its threshold alone, so they overlap
        by nature: a covered lens is ``blocked`` and usually also ``dark`` and ``blurred`` (a flat
        image has no edges), and a very dark frame usually reads ``blurred`` too (the Laplacian
        variance scales with the square of the contrast). Consumers that want one diagnosis
        should rank them blocked > dark > blurred.

    Raises:
        ValueError: ``image_bgr`` is not an image.
    """
    grey = analysis_grey(image_bgr)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    mean, std = cv2.meanStdDev(grey)
    brightness = float(mean[0][0])
    contrast = float(std[0][0])
    return Quality(
        sharpness=sharpness,
        brightness=brightness,
        contrast=contrast,
        blurred=sharpness < cfg.blur_threshold,
        dark=brightness < cfg.dark_threshold,
        blocked=contrast < cfg.uniform_threshold,
    )
