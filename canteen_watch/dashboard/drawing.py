"""Draw detections and regions of interest on a snapshot (Pillow), and make thumbnails.

Pure functions over bytes, so they are tested without Streamlit. Boxes are in pixels of the
stored image; ROI polygons are normalised (0..1) and scaled to the image.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

#: Box colour per violation label (RGB); other labels are grey.
LABEL_COLOURS: dict[str, tuple[int, int, int]] = {
    "pest": (220, 38, 38),
    "open_storage": (234, 88, 12),
    "no_mask": (202, 138, 4),
    "no_hat": (37, 99, 235),
}
ROI_COLOUR = (16, 185, 129)
OTHER_COLOUR = (107, 114, 128)


#: Fonts with Chinese glyphs, tried in order (Debian/Ubuntu packages fonts-noto-cjk, fonts-wqy-*).
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


@functools.cache
def cjk_font_path() -> str | None:
    """A font file that can draw Chinese captions, or None (captions then use the label codes)."""
    return next((path for path in CJK_FONTS if Path(path).is_file()), None)


@functools.cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = cjk_font_path()
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def open_image(data: bytes) -> Image.Image | None:
    """Decode JPEG/PNG bytes into RGB (None when they are not an image)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return image.convert("RGB")


def placeholder(width: int | None, height: int | None) -> Image.Image:
    """A neutral grey canvas of the snapshot's size (for boxes when the image itself is unavailable)."""
    w = width if width and 0 < width <= 8192 else 640
    h = height if height and 0 < height <= 8192 else 480
    return Image.new("RGB", (w, h), (229, 231, 235))


def annotate(
    image: Image.Image,
    detections: Iterable[Any],
    rois: Sequence[dict[str, Any]] = (),
    *,
    highlight: str | None = None,
    captions: dict[str, str] | None = None,
) -> Image.Image:
    """A copy of ``image`` with ROI polygons and detection boxes drawn on it.

    Args:
        image: The snapshot.
        detections: Objects with ``label``, ``score``, ``x1``, ``y1``, ``x2``, ``y2`` (pixels).
        rois: The camera's ROIs (``id`` and normalised ``polygon``).
        highlight: Label drawn thicker (the case's label); others thinner.
        captions: Label -> text shown on the box (translated names; ignored without a CJK font
            for non-ASCII text); the label itself otherwise.
    """
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out, "RGBA")
    width, height = out.size
    scale = max(1, round(max(width, height) / 640))
    font = _font(12 * scale)
    for roi in rois:
        points = [(float(x) * width, float(y) * height) for x, y in roi.get("polygon", [])]
        if len(points) >= 3:
            draw.polygon(points, outline=ROI_COLOUR + (255,), fill=ROI_COLOUR + (40,), width=2 * scale)
            draw.text((points[0][0] + 3 * scale, points[0][1] + 2 * scale), f"ROI {roi.get('id', '')}", fill=ROI_COLOUR + (255,), font=font)
    for det in detections:
        colour = LABEL_COLOURS.get(det.label, OTHER_COLOUR)
        x1, y1, x2, y2 = (float(v) for v in (det.x1, det.y1, det.x2, det.y2))
        x1, x2 = sorted((max(0.0, min(x1, width - 1)), max(0.0, min(x2, width - 1))))
        y1, y2 = sorted((max(0.0, min(y1, height - 1)), max(0.0, min(y2, height - 1))))
        thick = (3 if highlight is None or det.label == highlight else 1) * scale
        draw.rectangle((x1, y1, x2, y2), outline=colour + (255,), width=thick)
        name = (captions or {}).get(det.label, det.label)
        if not name.isascii() and cjk_font_path() is None:
            name = det.label
        text = f"{name} {float(det.score):.2f}"
        box = draw.textbbox((0, 0), text, font=font)
        tw, th = box[2] - box[0], box[3] - box[1]
        ty = y1 - th - 4 * scale if y1 - th - 4 * scale >= 0 else y1
        draw.rectangle((x1, ty, x1 + tw + 4 * scale, ty + th + 4 * scale), fill=colour + (220,))
        draw.text((x1 + 2 * scale, ty + 1 * scale), text, fill=(255, 255, 255, 255), font=font)
    return out


def to_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image``."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def to_jpeg(image: Image.Image, quality: int = 85) -> bytes:
    """JPEG bytes of ``image``."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def thumbnail(data: bytes, max_side: int = 320) -> bytes | None:
    """A small JPEG of an image (None when the bytes are not an image)."""
    image = open_image(data)
    if image is None:
        return None
    image.thumbnail((max_side, max_side))
    return to_jpeg(image, quality=80)
