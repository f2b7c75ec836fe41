"""Crop geometry shared by training and inference.

Face → head crop: calibrated on ``heads/scenes`` by matching CenterFace faces to the labelled
head boxes (median head box: 1.6 face widths wide, from 0.7 face heights above the face top to
0.22 below its bottom), then framed like ``heads/crops`` (head box ×1.5 wide, ×1.8 tall, 0.53
head heights above, 0.27 below). Face → mask crop: the face box ×1.15, so framing does not
depend on how loosely the source photo was cropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

BoxT = tuple[float, float, float, float]


def hat_box_from_face(x1: float, y1: float, x2: float, y2: float) -> BoxT:
    """Head-and-headwear crop box for a face box (may extend outside the frame)."""
    fw, fh = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    head_w = 1.6 * fw
    head_top, head_bottom = y1 - 0.7 * fh, y2 + 0.22 * fh
    head_h = head_bottom - head_top
    return cx - 0.75 * head_w, head_top - 0.53 * head_h, cx + 0.75 * head_w, head_bottom + 0.27 * head_h


def mask_box_from_face(x1: float, y1: float, x2: float, y2: float, scale: float = 1.15) -> BoxT:
    fw, fh = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return cx - fw * scale / 2, cy - fh * scale / 2, cx + fw * scale / 2, cy + fh * scale / 2


def clip_box(box: BoxT, width: int, height: int) -> BoxT:
    x1, y1, x2, y2 = box
    return max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)


def tile_boxes(width: int, height: int, tile_fraction: float = 0.5, overlap: float = 0.25, min_tile: int = 160) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles plus the whole frame (listed first).

    The tile side is ``tile_fraction`` of the shorter side (at least ``min_tile`` px); a 1080p
    frame gives 15 tiles of 540 px (5×3) — a rat covering 2 % of the frame fills ~37 % of a
    tile's side. Frames whose shorter side is below ``2 * min_tile`` get the whole frame only.
    """
    boxes = [(0, 0, width, height)]
    short = min(width, height)
    if short < 2 * min_tile:
        return boxes
    side = max(min_tile, int(round(short * tile_fraction)))
    stride = side * (1.0 - overlap)

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = math.ceil((length - side) / stride) + 1
        return [int(round(i * (length - side) / (n - 1))) for i in range(n)]

    for y in starts(height):
        for x in starts(width):
            boxes.append((x, y, min(width, x + side), min(height, y + side)))
    return boxes


def polygon_crop(image: np.ndarray, polygon: Sequence[tuple[float, float]], fill_outside: bool = True) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop the bounding rectangle of a normalised polygon; pixels outside it are greyed.

    Returns the crop and its pixel box. Raises ValueError when the polygon has no area in pixels.
    """
    h, w = image.shape[:2]
    pts = np.array([[x * w, y * h] for x, y in polygon], np.float32)
    x1, y1 = int(np.floor(max(0.0, pts[:, 0].min()))), int(np.floor(max(0.0, pts[:, 1].min())))
    x2, y2 = int(np.ceil(min(float(w), pts[:, 0].max()))), int(np.ceil(min(float(h), pts[:, 1].max())))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ValueError(f"ROI polygon covers {x2 - x1}×{y2 - y1} px: too small to classify")
    crop = image[y1:y2, x1:x2].copy()
    if fill_outside:
        mask = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(pts - [x1, y1]).astype(np.int32)], 255)
        if mask.mean() < 254.0:
            grey = np.array([124, 116, 104], np.uint8)  # ImageNet mean, BGR
            crop[mask == 0] = grey
    return crop, (x1, y1, x2, y2)
