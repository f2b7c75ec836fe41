"""Training data: locating the shared data folder, group-aware splits, augmentation, synthesis.

Nothing here copies data into the repository: the data folder is read in place
(``$CANTEEN_WATCH_DATA`` or ``<repo>/../shared/data``) and derived caches (face boxes, GrabCut
cut-outs, cached features) go to ``$CANTEEN_WATCH_CACHE`` or ``~/.cache/canteen-watch``.

Splits are by *group*: images whose 64-bit dHash differ by ≤ 5 bits, or whose top halves differ
by ≤ 3 bits, are joined (union-find) and a whole group goes to train or to validation, so
near-duplicates (and the mask set's synthetic pasted-mask pairs) never straddle the split.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def data_root() -> Path:
    """The shared data folder: ``$CANTEEN_WATCH_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("CANTEEN_WATCH_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def cache_dir() -> Path:
    """Folder for derived, re-computable training caches (never inside the repo)."""
    path = Path(os.environ.get("CANTEEN_WATCH_CACHE") or Path.home() / ".cache" / "canteen-watch")
    path.mkdir(parents=True, exist_ok=True)
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted (deterministic)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def read_image(path: Path | str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file; raises ValueError naming the file when it cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ValueError(f"{path}: not a decodable image")
    return image


# -- near-duplicate grouping ------------------------------------------------------------------
def dhash(image_bgr: np.ndarray, size: int = 8) -> int:
    """64-bit difference hash of a BGR or grey image."""
    grey = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    count = np.zeros(x.shape, np.int64)
    for shift in range(0, 64, 8):
        count += _POP8[((x >> np.uint64(shift)) & np.uint64(255)).astype(np.int64)]
    return count


_POP8 = np.array([bin(i).count("1") for i in range(256)], np.int64)


def group_near_duplicates(images: list[np.ndarray], full_bits: int = 5, top_bits: int = 3) -> np.ndarray:
    """Union-find group id per image: dHash ≤ ``full_bits`` or top-half dHash ≤ ``top_bits``."""
    n = len(images)
    full = np.array([dhash(im) for im in images], np.uint64)
    top = np.array([dhash(im[: max(1, im.shape[0] // 2)]) for im in images], np.uint64)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n - 1):
        near = (_popcount(full[i + 1 :] ^ full[i]) <= full_bits) | (_popcount(top[i + 1 :] ^ top[i]) <= top_bits)
        for j in np.nonzero(near)[0] + i + 1:
            a, b = find(i), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(n)])


def split_groups(groups: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation items: whole groups, about ``val_fraction`` of each label."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(groups), bool)
    unique = np.unique(groups)
    rng.shuffle(unique)
    target = {lab: val_fraction * np.sum(labels == lab) for lab in np.unique(labels)}
    taken = {lab: 0 for lab in target}
    for g in unique:
        members = groups == g
        lab = labels[members][0]
        if taken[lab] < target[lab]:
            is_val |= members
            taken[lab] += int(members.sum())
    return is_val


def stable_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


# -- augmentation -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities of each camera-like degradation."""

    flip: float = 0.5
    grey: float = 0.2
    infrared: float = 0.12
    blur: float = 0.25
    lowres: float = 0.3
    jpeg: float = 0.4
    noise: float = 0.2
    colour: float = 0.8


def to_infrared_look(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Night/IR camera look: grey, flattened contrast or glare, gamma, sensor noise."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gamma = rng.uniform(0.6, 1.6)
    grey = 255.0 * (grey / 255.0) ** gamma
    grey = grey * rng.uniform(0.6, 1.3) + rng.uniform(-30, 40)
    grey += rng.normal(0, rng.uniform(2, 10), grey.shape)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def augment(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Photometric and camera degradations (geometry is left to the caller). BGR in, BGR out."""
    out = image
    if rng.random() < cfg.flip:
        out = out[:, ::-1]
    out = np.ascontiguousarray(out)
    if rng.random() < cfg.colour:
        hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-6, 6)) % 180
        hsv[:, :, 1] *= rng.uniform(0.6, 1.3)
        hsv[:, :, 2] = hsv[:, :, 2] * rng.uniform(0.6, 1.3) + rng.uniform(-25, 25)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    r = rng.random()
    if r < cfg.infrared:
        out = to_infrared_look(out, rng)
    elif r < cfg.infrared + cfg.grey:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    h, w = out.shape[:2]
    if rng.random() < cfg.lowres and min(h, w) > 16:
        f = rng.uniform(0.25, 0.7)
        small = cv2.resize(out, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.blur:
        if rng.random() < 0.6:
            k = int(rng.choice([3, 5, 7]))
            out = cv2.GaussianBlur(out, (k, k), 0)
        else:
            k = int(rng.integers(3, 9))
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2, :] = 1.0 / k
            m = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
            kernel = cv2.warpAffine(kernel, m, (k, k))
            out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < cfg.noise:
        out = np.clip(out.astype(np.float32) + rng.normal(0, rng.uniform(2, 9), out.shape), 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 75))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, min_area: float = 0.6, ratio: tuple[float, float] = (0.8, 1.25)) -> np.ndarray:
    """Random sub-window covering ``min_area``..1 of the image area."""
    h, w = image.shape[:2]
    for _ in range(10):
        area = rng.uniform(min_area, 1.0) * h * w
        ar = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(area * ar))), int(round(np.sqrt(area / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            x = int(rng.integers(0, w - cw + 1))
            y = int(rng.integers(0, h - ch + 1))
            return image[y : y + ch, x : x + cw]
    return image


def jitter_box(box: tuple[float, float, float, float], rng: np.random.Generator, shift: float = 0.08, scale: float = 0.1) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2 + rng.uniform(-shift, shift) * w
    cy = (y1 + y2) / 2 + rng.uniform(-shift, shift) * h
    s = np.exp(rng.uniform(-scale, scale))
    w, h = w * s, h * s
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def crop_box(image: np.ndarray, box: tuple[float, float, float, float], pad_mode: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Crop ``box`` (pixels, may extend outside) padding by replication outside the image."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    px1, py1, px2, py2 = max(0, -x1), max(0, -y1), max(0, x2 - w), max(0, y2 - h)
    crop = image[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
    if crop.size == 0:
        crop = image[min(max(0, y1), h - 1) : min(max(0, y1), h - 1) + 1, min(max(0, x1), w - 1) : min(max(0, x1), w - 1) + 1]
        return cv2.resize(crop, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    if px1 or py1 or px2 or py2:
        crop = cv2.copyMakeBorder(crop, py1, py2, px1, px2, pad_mode)
    return crop


# -- synthetic head coverings -----------------------------------------------------------------
_CAP_COLOURS = [(250, 250, 250), (235, 240, 245), (245, 235, 225), (240, 220, 190), (220, 235, 215), (60, 60, 60), (30, 30, 30), (200, 60, 40)]


def draw_head_covering(crop: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """Paint a chef toque, a disposable/bouffant cap, a hairnet or a skull cap over the hair.

    Head-crop geometry (as in ``heads/crops``): the head box spans x 1/6..5/6 and y 0.294..0.85
    of the crop; hair is the top third of that box.
    """
    h, w = crop.shape[:2]
    scale = 4 if max(h, w) < 200 else 1
    big = cv2.resize(crop, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    H, W = big.shape[:2]
    hx1, hx2 = W / 6 + rng.uniform(-0.05, 0.05) * W, 5 * W / 6 + rng.uniform(-0.05, 0.05) * W
    hy1, hy2 = 0.294 * H + rng.uniform(-0.04, 0.04) * H, 0.85 * H
    hw, hh = hx2 - hx1, hy2 - hy1
    cx = (hx1 + hx2) / 2
    kind = kind or str(rng.choice(["toque", "disposable", "hairnet", "skullcap"], p=[0.3, 0.35, 0.2, 0.15]))
    colour = np.array(_CAP_COLOURS[int(rng.integers(0, 5))] if kind in ("toque", "disposable") else _CAP_COLOURS[int(rng.integers(0, len(_CAP_COLOURS)))], np.float32)
    if kind == "disposable" and rng.random() < 0.3:
        colour = np.array([230, 200, 150], np.float32) if rng.random() < 0.5 else np.array([200, 230, 200], np.float32)  # light blue / green (BGR)
    mask = np.zeros((H, W), np.float32)
    brim = hy1 + hh * rng.uniform(0.28, 0.4)  # lower edge on the forehead
    if kind == "toque":
        band_w = hw * rng.uniform(0.85, 1.0)
        top = max(0.0, hy1 - hh * rng.uniform(0.35, 0.6))
        cv2.rectangle(mask, (int(cx - band_w / 2), int(top + hh * 0.15)), (int(cx + band_w / 2), int(brim)), 1.0, -1)
        cv2.ellipse(mask, (int(cx), int(top + hh * 0.15)), (int(band_w * rng.uniform(0.55, 0.7)), int(hh * 0.18)), 0, 0, 360, 1.0, -1)
    elif kind == "disposable":
        cv2.ellipse(mask, (int(cx), int(brim)), (int(hw * rng.uniform(0.52, 0.62)), int((brim - hy1) * rng.uniform(1.05, 1.3))), 0, 180, 360, 1.0, -1)
    elif kind == "skullcap":
        cv2.ellipse(mask, (int(cx), int(brim)), (int(hw * 0.5), int((brim - hy1) * 1.0)), 0, 180, 360, 1.0, -1)
    else:  # hairnet: mesh over the hair, hair still visible underneath
        cv2.ellipse(mask, (int(cx), int(brim)), (int(hw * 0.52), int((brim - hy1) * 1.1)), 0, 180, 360, 1.0, -1)
    blur = max(3, int(0.02 * W) | 1)
    mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    # shading: brighter at the top-left, darker at the bottom; fabric pleats for caps
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    shade = 1.0 - 0.25 * (yy - yy.min()) / H + 0.08 * np.cos((xx - cx) / max(hw, 1) * np.pi)
    if kind in ("disposable", "toque"):
        freq = rng.uniform(8, 16) / max(hw, 1) * np.pi
        shade *= 1.0 - 0.08 * (0.5 + 0.5 * np.sin((xx - cx) * freq + (yy - brim) * freq * 0.3))
    lit = big.mean() / 128.0  # match scene brightness roughly
    fabric = colour[None, None, :] * shade[:, :, None] * np.clip(lit, 0.55, 1.15)
    if kind == "hairnet":
        period = max(3, int(hw / rng.uniform(8, 14)))
        net = (((xx + yy) % period) < max(1, period // 4)) | (((xx - yy) % period) < max(1, period // 4))
        alpha = mask * (0.15 + 0.55 * net.astype(np.float32))
    else:
        alpha = mask * rng.uniform(0.85, 1.0)
    out = big * (1 - alpha[:, :, None]) + fabric * alpha[:, :, None]
    out = cv2.resize(np.clip(out, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA)
    return out


# -- pest cut-outs and paste synthesis --------------------------------------------------------
def grabcut_cutout(image: np.ndarray, box: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """BGRA cut-out of the object in ``box`` using GrabCut seeded by the box."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = int(0.15 * (x2 - x1)) + 2, int(0.15 * (y2 - y1)) + 2
    X1, Y1, X2, Y2 = max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my)
    roi = np.ascontiguousarray(image[Y1:Y2, X1:X2])
    scale = min(1.0, 300.0 / max(roi.shape[:2]))
    small = cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else roi
    rect = (max(1, int((x1 - X1) * scale)), max(1, int((y1 - Y1) * scale)), max(2, int((x2 - x1) * scale) - 2), max(2, int((y2 - y1) * scale) - 2))
    mask = np.zeros(small.shape[:2], np.uint8)
    cv2.setRNGSeed(seed)
    try:
        cv2.grabCut(small, mask, rect, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), 4, cv2.GC_INIT_WITH_RECT)
        fg = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    except cv2.error:
        fg = np.zeros(small.shape[:2], np.uint8)
    if fg.mean() < 0.1 * 255:  # GrabCut failed: fall back to a soft ellipse in the box
        fg = np.zeros(small.shape[:2], np.uint8)
        cx, cy = rect[0] + rect[2] // 2, rect[1] + rect[3] // 2
        cv2.ellipse(fg, (cx, cy), (rect[2] // 2, rect[3] // 2), 0, 0, 360, 255, -1)
    fg = cv2.resize(fg, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_LINEAR)
    fg = cv2.GaussianBlur(fg, (5, 5), 0)
    ys, xs = np.nonzero(fg > 32)
    rgba = np.dstack([roi, fg])
    if len(xs):
        rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return np.ascontiguousarray(rgba)


def paste_sprite(background: np.ndarray, sprite_bgra: np.ndarray, center: tuple[float, float], size: float, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Alpha-paste ``sprite_bgra`` with its longer side ``size`` px at ``center``; returns image and box."""
    sprite = sprite_bgra
    if rng.random() < 0.5:
        sprite = sprite[:, ::-1]
    angle = float(rng.uniform(-180, 180)) if rng.random() < 0.6 else float(rng.uniform(-20, 20))
    sh, sw = sprite.shape[:2]
    diag = int(np.ceil(np.hypot(sh, sw)))
    canvas = cv2.copyMakeBorder(np.ascontiguousarray(sprite), (diag - sh) // 2 + 1, (diag - sh) // 2 + 1, (diag - sw) // 2 + 1, (diag - sw) // 2 + 1, cv2.BORDER_CONSTANT, value=(0, 0, 0, 0))
    m = cv2.getRotationMatrix2D((canvas.shape[1] / 2, canvas.shape[0] / 2), angle, 1.0)
    canvas = cv2.warpAffine(canvas, m, (canvas.shape[1], canvas.shape[0]), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    ys, xs = np.nonzero(canvas[:, :, 3] > 16)
    if len(xs) == 0:
        return background, (0, 0, 0, 0)
    canvas = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    s = size / max(canvas.shape[:2])
    nw, nh = max(2, int(canvas.shape[1] * s)), max(2, int(canvas.shape[0] * s))
    canvas = cv2.resize(canvas, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = background.copy()
    H, W = out.shape[:2]
    x1, y1 = int(center[0] - nw / 2), int(center[1] - nh / 2)
    bx1, by1, bx2, by2 = max(0, x1), max(0, y1), min(W, x1 + nw), min(H, y1 + nh)
    if bx2 <= bx1 or by2 <= by1:
        return background, (0, 0, 0, 0)
    patch = canvas[by1 - y1 : by2 - y1, bx1 - x1 : bx2 - x1].astype(np.float32)
    region = out[by1:by2, bx1:bx2].astype(np.float32)
    # match the sprite's brightness partly to the surroundings
    target = region.mean()
    rgb = patch[:, :, :3]
    rgb = rgb * (0.6 + 0.4 * np.clip(target / max(rgb.mean(), 1.0), 0.4, 1.6))
    alpha = patch[:, :, 3:4] / 255.0
    # soft contact shadow
    shadow = cv2.GaussianBlur(alpha[:, :, 0], (0, 0), max(1.0, nw / 12))[:, :, None]
    region = region * (1 - 0.35 * shadow)
    out[by1:by2, bx1:bx2] = np.clip(region * (1 - alpha) + rgb * alpha, 0, 255).astype(np.uint8)
    return out, (bx1, by1, bx2, by2)


def read_yolo(path: Path, width: int, height: int) -> list[tuple[int, float, float, float, float]]:
    """YOLO lines → (class, x1, y1, x2, y2) in pixels."""
    boxes = []
    if not path.is_file():
        return boxes
    for line in path.read_text().split("\n"):
        parts = line.split()
        if len(parts) != 5:
            continue
        c, cx, cy, bw, bh = int(float(parts[0])), *map(float, parts[1:])
        boxes.append((c, (cx - bw / 2) * width, (cy - bh / 2) * height, (cx + bw / 2) * width, (cy + bh / 2) * height))
    return boxes
