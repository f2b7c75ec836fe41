"""Training: build group-split task data, cache frozen-stem features, fit heads, fine-tune tails.

Recipe (2 CPU cores): the MobileNetV2 stem (``features[:14]``, ImageNet weights, fp16-rounded
exactly as shipped) is frozen and run **once** per augmented view; its stride-16 output is cached
in memory. Then (A) a linear head is fitted on the frozen pooled 1280-d features, and (B) the tail
(``features[14:]``) plus head are fine-tuned for a few epochs on the cached views, BatchNorm
statistics frozen. The variant with the better validation AUROC is kept. The threshold is the
F0.5-maximising one on validation scores computed with fp16-rounded weights (what ships).

Deterministic for a given seed and thread count: every sample renders from its own seeded RNG,
shuffles use a seeded ``torch.Generator``.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from classifiers import data as D
from classifiers.geometry import clip_box, hat_box_from_face, mask_box_from_face, tile_boxes
from classifiers.metrics import binary_metrics, choose_threshold
from classifiers.nets import CLASSES, INPUT_HW, TASKS, TaskNet, imagenet_tasknet, load_tasknet, roundtrip_fp16, save_tasknet, to_input

log = logging.getLogger(__name__)
Render = Callable[[np.random.Generator | None], np.ndarray]


@dataclass
class Sample:
    """One training item: ``render(rng)`` gives an augmented BGR crop (``rng=None``: clean)."""

    render: Render
    label: int  # 1 = violation
    group: str
    source: str
    framing: str = ""  # mask/hat: how the crop was framed ("detector", "raw", "dataset"); metrics are reported per framing


@dataclass
class TaskData:
    task: str
    train: list[Sample]
    val: list[Sample]
    info: dict[str, Any] = field(default_factory=dict)
    frames_val: list[tuple[Render, int]] = field(default_factory=list)  # pest: whole frames for tiling


class _ImageCache:
    def __init__(self, max_side: int | None = None):
        self.max_side = max_side
        self._items: dict[str, np.ndarray] = {}

    def __call__(self, path: Path | str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
        key = f"{path}|{flags}"
        if key not in self._items:
            image = D.read_image(path, flags)
            if self.max_side and max(image.shape[:2]) > self.max_side:
                s = self.max_side / max(image.shape[:2])
                image = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            self._items[key] = image
        return self._items[key]


def _limit(paths: list[Path], limit: int | None) -> list[Path]:
    if not limit or len(paths) <= limit:
        return paths
    idx = np.linspace(0, len(paths) - 1, limit).round().astype(int)
    return [paths[i] for i in sorted(set(idx))]


# -- hat ----------------------------------------------------------------------------------------
#: ``heads/scenes`` (the source's validation split) with ``stable_hash(stem) % HAT_SCENE_HOLDOUT == 0``
#: stay held out for evaluation; the others (and their dataset crops) are used for training.
HAT_SCENE_HOLDOUT = 4


def hat_scene_is_heldout(stem: str) -> bool:
    return D.stable_hash(stem) % HAT_SCENE_HOLDOUT == 0


def _scene_faces(paths: list[Path], cache: _ImageCache) -> dict[str, list[list[float]]]:
    """CenterFace boxes per ``heads/scenes`` image with the runtime's settings (cached on disk)."""
    store = D.cache_dir() / "hat_scene_faces.json"
    known: dict[str, list[list[float]]] = json.loads(store.read_text()) if store.is_file() else {}
    todo = [p for p in paths if p.name not in known]
    if todo:
        from classifiers.faces import CenterFaceDetector

        det = CenterFaceDetector(max_side=1280, threshold=0.5, threads=2)  # = CanteenClassifier defaults
        for p in tqdm(todo, desc="scene faces", leave=False):
            known[p.name] = [[f.x1, f.y1, f.x2, f.y2] for f in det.detect(cache(p))]
        store.write_text(json.dumps(known))
    return {p.name: known.get(p.name, []) for p in paths}


def _head_label(face: list[float], heads: list[tuple[int, float, float, float, float]]) -> int | None:
    """YOLO class (0 bare, 1 helmet) of the smallest head box containing the face centre."""
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    inside = [(b[3] - b[1]) * (b[4] - b[2]) for b in heads if b[0] in (0, 1) and b[1] <= cx <= b[3] and b[2] <= cy <= b[4]]
    if not inside:
        return None
    return [b for b in heads if b[0] in (0, 1) and b[1] <= cx <= b[3] and b[2] <= cy <= b[4]][int(np.argmin(inside))][0]


def hat_data(root: Path, limit: int | None = None, seed: int = 0, scene_crops: bool = True) -> TaskData:
    """``heads/crops`` bare (violation) vs hard-hat (covered) + synthetic caps on bare heads.

    The source's own train/valid split keeps every scene's crops together; train scenes with a
    crop whose dHash is within 3 bits of a validation crop are dropped as well.
    """
    cache = _ImageCache()
    base = root / "heads" / "crops"
    split = {s: {c: _limit(D.list_images(base / s / c), limit) for c in ("bare", "covered")} for s in ("train", "valid")}
    if not any(split["train"].values()):
        raise FileNotFoundError(f"{base}: no head crops found")
    scene_dir = root / "heads" / "scenes"
    scenes = _limit(D.list_images(scene_dir / "images"), limit) if scene_crops else []
    train_scenes = {p.stem for p in scenes if not hat_scene_is_heldout(p.stem)}
    moved = 0
    for c in ("bare", "covered"):  # dataset crops of training scenes leave validation for training
        mv = [p for p in split["valid"][c] if p.stem.rsplit("_", 1)[0] in train_scenes]
        split["valid"][c] = [p for p in split["valid"][c] if p.stem.rsplit("_", 1)[0] not in train_scenes]
        split["train"][c] = split["train"][c] + mv
        moved += len(mv)
    val_hashes = np.array([D.dhash(cache(p)) for c in ("bare", "covered") for p in split["valid"][c]], np.uint64)
    dropped_scenes: set[str] = set()
    for c in ("bare", "covered"):
        for p in split["train"][c]:
            h = np.uint64(D.dhash(cache(p)))
            if len(val_hashes) and int(D._popcount(val_hashes ^ h).min()) <= 3:
                dropped_scenes.add(p.stem.rsplit("_", 1)[0])
    aug = D.AugmentConfig()

    def real(path: Path) -> Render:
        def render(rng: np.random.Generator | None) -> np.ndarray:
            img = cache(path)
            if rng is None:
                return img
            return D.augment(D.random_resized_crop(img, rng, 0.7, (0.8, 1.25)), rng, aug)

        return render

    def synthetic(path: Path, sid: int) -> Render:
        def render(rng: np.random.Generator | None) -> np.ndarray:
            img = cache(path)
            capped = D.draw_head_covering(img, rng if rng is not None else np.random.default_rng(sid))
            if rng is None:
                return capped
            return D.augment(D.random_resized_crop(capped, rng, 0.7, (0.8, 1.25)), rng, aug)

        return render

    out: dict[str, list[Sample]] = {"train": [], "valid": []}
    counts: dict[str, int] = {}
    for s in ("train", "valid"):
        for c in ("bare", "covered"):
            label = 1 if c == "bare" else 0
            kept = [p for p in split[s][c] if not (s == "train" and p.stem.rsplit("_", 1)[0] in dropped_scenes)]
            out[s] += [Sample(real(p), label, p.stem.rsplit("_", 1)[0], f"heads/{s}/{c}") for p in kept]
            counts[f"{s}/{c}"] = len(kept)
        bare = [p for p in split[s]["bare"] if not (s == "train" and p.stem.rsplit("_", 1)[0] in dropped_scenes)]
        synth = [p for i, p in enumerate(bare) if i % 2 == 0]
        out[s] += [Sample(synthetic(p, seed * 100003 + D.stable_hash(str(p)) % 100000), 0, p.stem.rsplit("_", 1)[0], f"synthetic/{s}/covered") for p in synth]
        counts[f"{s}/synthetic_covered"] = len(synth)
    for smp in out["train"] + out["valid"]:
        smp.framing = "dataset"
    info: dict[str, Any] = {"counts": counts, "dropped_train_scenes_near_duplicate_of_valid": len(dropped_scenes)}
    if scenes:
        faces = _scene_faces(scenes, cache)

        def scene_crop(path: Path, face: list[float], sid: int, synth: bool) -> Render:
            def render(rng: np.random.Generator | None) -> np.ndarray:
                b = hat_box_from_face(*face)  # the runtime's head box
                if rng is not None:
                    b = D.jitter_box(b, rng, 0.06, 0.12)
                crop = D.crop_box(cache(path), b)
                if synth:
                    crop = D.draw_head_covering(crop, rng if rng is not None else np.random.default_rng(sid))
                return crop if rng is None else D.augment(crop, rng, aug)

            return render

        unmatched, n_bare = 0, 0
        for p in scenes:
            if p.stem in dropped_scenes:
                continue
            img = cache(p)
            heads = D.read_yolo(scene_dir / "labels" / (p.stem + ".txt"), img.shape[1], img.shape[0])
            side = "valid" if hat_scene_is_heldout(p.stem) else "train"
            for k, face in enumerate(faces[p.name]):
                cls = _head_label(face, heads)
                if cls is None:
                    unmatched += 1
                    continue
                label = 1 if cls == 0 else 0
                out[side].append(Sample(scene_crop(p, face, 0, False), label, p.stem, f"scenes/{side}/detector", "detector"))
                counts[f"{side}/detector_{'bare' if label else 'covered'}"] = counts.get(f"{side}/detector_{'bare' if label else 'covered'}", 0) + 1
                if side == "train" and label == 1:
                    n_bare += 1
                    if n_bare % 2 == 0:
                        out[side].append(Sample(scene_crop(p, face, seed * 100003 + D.stable_hash(f"{p}|{k}") % 100000, True), 0, p.stem, "synthetic/scenes/covered", "detector"))
                        counts["train/detector_synthetic_covered"] = counts.get("train/detector_synthetic_covered", 0) + 1
        info.update(
            scenes_train=len(train_scenes),
            scenes_heldout=len(scenes) - len(train_scenes),
            valid_crops_of_train_scenes_moved_to_train=moved,
            scene_faces_without_head_box=unmatched,
            validation_set="heads/crops/valid of the held-out scenes and of scenes outside heads/scenes (dataset framing, + synthetic caps) + CenterFace head crops of held-out heads/scenes (detector framing)",
        )
    return TaskData("hat", out["train"], out["valid"], info)


# -- mask ---------------------------------------------------------------------------------------
def _face_boxes(paths: list[Path], cache: _ImageCache) -> dict[str, list[float] | None]:
    """CenterFace box per mask image (cached on disk); None when no face is found."""
    store = D.cache_dir() / "mask_faces.json"
    known: dict[str, list[float] | None] = json.loads(store.read_text()) if store.is_file() else {}
    todo = [p for p in paths if p.name not in known]
    if todo:
        from classifiers.faces import CenterFaceDetector

        det = CenterFaceDetector(threshold=0.3, max_side=384, min_side=0, threads=2)  # portraits: faces are large
        for p in tqdm(todo, desc="mask faces", leave=False):
            img = cache(p)
            h, w = img.shape[:2]
            pad = int(max(h, w) * 0.6)
            big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
            faces = det.detect(big)
            if faces:
                f = faces[0]
                known[p.name] = [f.x1 - pad, f.y1 - pad, f.x2 - pad, f.y2 - pad]
            else:
                known[p.name] = None
        store.write_text(json.dumps(known))
    return {p.name: known.get(p.name) for p in paths}


def _pad_loose(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A looser crop than the photo: random borders (replicated, mirrored or flat grey/black)."""
    h, w = img.shape[:2]
    t, b, l, r = (int(rng.uniform(0.0, 0.3) * s) for s in (h, h, w, w))
    mode = int(rng.integers(0, 3))
    if mode == 0:
        return cv2.copyMakeBorder(img, t, b, l, r, cv2.BORDER_REPLICATE)
    if mode == 1:
        return cv2.copyMakeBorder(img, t, b, l, r, cv2.BORDER_REFLECT_101)
    v = int(rng.choice([0, 128, 200, 255]))
    return cv2.copyMakeBorder(img, t, b, l, r, cv2.BORDER_CONSTANT, value=(v, v, v))


#: Mask framings: "detector" = the runtime's scene path (CenterFace box ×1.15, clipped, as in
#: :meth:`classifiers.inference.CanteenClassifier.people`); "raw" = the photo itself, classified
#: directly (``evaluate --crops``), trained with random tighter crops and looser paddings.
MASK_FRAMINGS = ("detector", "raw")


def mask_data(root: Path, limit: int | None = None, seed: int = 0, val_fraction: float = 0.2) -> TaskData:
    """``mask/`` faces in two framings, dHash-grouped split.

    Every image gives two samples: the detector-reframed face crop (CenterFace box ×1.15,
    clipped; the whole image when no face is found — the runtime's fallback) and the raw photo
    (training: random resized crops 50–100 % of the area and random paddings up to 30 % a side).
    Validation holds both framings of every validation image, clean, so the threshold is chosen
    on both and each framing's metrics can be reported separately.
    """
    cache = _ImageCache()
    paths, labels = [], []
    for c, label in (("without_mask", 1), ("with_mask", 0)):
        ps = _limit(D.list_images(root / "mask" / c), limit)
        paths += ps
        labels += [label] * len(ps)
    if not paths:
        raise FileNotFoundError(f"{root / 'mask'}: no face images found")
    labels_a = np.array(labels)
    groups = D.group_near_duplicates([cache(p) for p in paths])
    is_val = D.split_groups(groups, labels_a, val_fraction, seed)
    boxes = _face_boxes(paths, cache)
    aug = D.AugmentConfig()

    def detector_fn(path: Path) -> Render:
        def render(rng: np.random.Generator | None) -> np.ndarray:
            img = cache(path)
            h, w = img.shape[:2]
            box = boxes.get(path.name)
            if box is not None:
                b = mask_box_from_face(*box)
                if rng is not None:
                    b = D.jitter_box(b, rng, 0.06, 0.15)
                x1, y1, x2, y2 = clip_box(b, w, h)
                if x2 - x1 >= 8 and y2 - y1 >= 8:
                    img = img[int(y1) : int(y2), int(x1) : int(x2)]
            if rng is None:
                return img
            return D.augment(img, rng, aug)

        return render

    def raw_fn(path: Path) -> Render:
        def render(rng: np.random.Generator | None) -> np.ndarray:
            img = cache(path)
            if rng is None:
                return img
            u = rng.random()
            if u < 0.45:
                img = D.random_resized_crop(img, rng, 0.5, (0.75, 1.33))
            elif u < 0.8:
                img = _pad_loose(img, rng)
            return D.augment(img, rng, aug)

        return render

    samples: list[tuple[Sample, bool]] = []
    for p, l, g, v in zip(paths, labels_a, groups, is_val):
        src = f"mask/{CLASSES['mask'][1 - l]}"
        samples.append((Sample(detector_fn(p), int(l), f"g{g}", src, "detector"), bool(v)))
        samples.append((Sample(raw_fn(p), int(l), f"g{g}", src, "raw"), bool(v)))
    train = [s for s, v in samples if not v]
    val = [s for s, v in samples if v]
    info = {
        "counts": {"train/without_mask": int(((~is_val) & (labels_a == 1)).sum()), "train/with_mask": int(((~is_val) & (labels_a == 0)).sum()), "valid/without_mask": int((is_val & (labels_a == 1)).sum()), "valid/with_mask": int((is_val & (labels_a == 0)).sum())},
        "framings": "each image twice: detector-reframed face crop + raw photo (train: random crops/paddings)",
        "validation_set": "validation images in both framings: detector-reframed face crop and raw photo (clean)",
        "groups": int(len(np.unique(groups))),
        "no_face_found": int(sum(1 for v in boxes.values() if v is None)),
    }
    return TaskData("mask", train, val, info)


# -- storage ------------------------------------------------------------------------------------
def _random_polygon_mask(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    pts = []
    for cx, cy in ((0, 0), (1, 0), (1, 1), (0, 1)):
        pts.append((abs(cx - rng.uniform(0, 0.2)) * w, abs(cy - rng.uniform(0, 0.2)) * h))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.array(pts, np.int32)], 255)
    out = img.copy()
    out[mask == 0] = (124, 116, 104)
    return out


def storage_data(root: Path, limit: int | None = None, seed: int = 0, val_fraction: float = 0.25) -> TaskData:
    """``storage/`` fridges open (violation) vs closed; whole images + door-box crops; dHash groups."""
    cache = _ImageCache(max_side=640)
    paths, labels = [], []
    for c, label in (("open", 1), ("closed", 0)):
        ps = _limit(D.list_images(root / "storage" / c), limit)
        paths += ps
        labels += [label] * len(ps)
    if not paths:
        raise FileNotFoundError(f"{root / 'storage'}: no fridge images found")
    labels_a = np.array(labels)
    groups = D.group_near_duplicates([cache(p) for p in paths])
    is_val = D.split_groups(groups, labels_a, val_fraction, seed)
    aug = D.AugmentConfig()

    def render_fn(path: Path) -> Render:
        def render(rng: np.random.Generator | None) -> np.ndarray:
            img = cache(path)
            if rng is None:
                return img
            h, w = img.shape[:2]
            doors = [b for b in D.read_yolo(root / "storage" / "labels" / (path.stem + ".txt"), w, h) if b[0] in (0, 3)]
            if doors and rng.random() < 0.35:
                _, x1, y1, x2, y2 = doors[int(rng.integers(0, len(doors)))]
                s = rng.uniform(1.2, 1.7)
                cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * s, (y2 - y1) * s
                x1, y1, x2, y2 = clip_box((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), w, h)
                if x2 - x1 > 32 and y2 - y1 > 32:
                    img = img[int(y1) : int(y2), int(x1) : int(x2)]
            else:
                img = D.random_resized_crop(img, rng, 0.5, (0.7, 1.4))
            if rng.random() < 0.3:
                img = _random_polygon_mask(img, rng)
            return D.augment(img, rng, aug)

        return render

    samples = [Sample(render_fn(p), int(l), f"g{g}", f"storage/{'open' if l else 'closed'}") for p, l, g in zip(paths, labels_a, groups)]
    info = {"counts": {"train/open": int(((~is_val) & (labels_a == 1)).sum()), "train/closed": int(((~is_val) & (labels_a == 0)).sum()), "valid/open": int((is_val & (labels_a == 1)).sum()), "valid/closed": int((is_val & (labels_a == 0)).sum())}, "groups": int(len(np.unique(groups)))}
    return TaskData("storage", [s for s, v in zip(samples, is_val) if not v], [s for s, v in zip(samples, is_val) if v], info)


# -- pest ---------------------------------------------------------------------------------------
def _rat_cutouts(root: Path, split: str, cache: _ImageCache) -> list[np.ndarray]:
    """GrabCut cut-outs (BGRA) of labelled rats, cached as PNG under the cache folder."""
    out_dir = D.cache_dir() / "rat_cutouts" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    cutouts = []
    for p in D.list_images(root / "pests" / "rat_detector" / "images" / split):
        img = cache(p)
        h, w = img.shape[:2]
        for k, (_, x1, y1, x2, y2) in enumerate(D.read_yolo(root / "pests" / "rat_detector" / "labels" / split / (p.stem + ".txt"), w, h)):
            if (x2 - x1) < 12 or (y2 - y1) < 12:
                continue
            f = out_dir / f"{p.stem}_{k}.png"
            if f.is_file():
                cut = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            else:
                cut = D.grabcut_cutout(img, (int(x1), int(y1), int(x2), int(y2)), seed=k)
                cv2.imwrite(str(f), cut)
            if cut is not None and cut.ndim == 3 and cut.shape[2] == 4:
                cutouts.append(cut)
    return cutouts


def pest_data(root: Path, limit: int | None = None, seed: int = 0, n_train: int = 5600, n_val: int = 1600, n_frames: int = 160) -> TaskData:
    """Tiles: kitchen/storage/people backgrounds with and without pasted pests, real rat photos.

    Groups: kitchens split by dHash group; sprites by file (every 4th held out); rat photos by the
    source's train/valid split; storage negatives follow the storage split; ``heads/scenes``
    negatives split by scene index.
    """
    if limit:
        n_train, n_val, n_frames = min(n_train, 8 * limit), min(n_val, 4 * limit), min(n_frames, 2 * limit)
    cache = _ImageCache(max_side=1280)
    kitchens = D.list_images(root / "kitchens" / "ai_commercial") + D.list_images(root / "kitchens" / "real_home")
    if not kitchens:
        raise FileNotFoundError(f"{root / 'kitchens'}: no kitchen backgrounds found")
    kgroups = D.group_near_duplicates([cache(p) for p in kitchens])
    k_val = D.split_groups(kgroups, np.zeros(len(kitchens), int), 0.2, seed)
    storage_all = D.list_images(root / "storage" / "open") + D.list_images(root / "storage" / "closed")
    s_val = np.array([D.stable_hash(p.name) % 4 == 0 for p in storage_all])
    scenes = D.list_images(root / "heads" / "scenes" / "images")
    bg = {
        "train": [p for p, v in zip(kitchens, k_val) if not v],
        "valid": [p for p, v in zip(kitchens, k_val) if v],
    }
    extra_neg = {
        "train": [p for p, v in zip(storage_all, s_val) if not v] + scenes[: int(len(scenes) * 0.75)],
        "valid": [p for p, v in zip(storage_all, s_val) if v] + scenes[int(len(scenes) * 0.75) :],
    }
    sprites: dict[str, list[np.ndarray]] = {"train": [], "valid": []}
    for kind in ("rat", "mouse", "cockroach"):
        for i, p in enumerate(D.list_images(root / "pests" / "sprites" / kind)):
            sp = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if sp is not None and sp.ndim == 3 and sp.shape[2] == 4:
                sprites["valid" if i % 4 == 3 else "train"].append(sp)
    cutouts = {s: _rat_cutouts(root, s, cache) for s in ("train", "valid")}
    rat_photos = {s: [(p, D.read_yolo(root / "pests" / "rat_detector" / "labels" / s / (p.stem + ".txt"), *cache(p).shape[1::-1])) for p in D.list_images(root / "pests" / "rat_detector" / "images" / s)] for s in ("train", "valid")}
    rat_photos = {s: [(p, b) for p, b in v if b] for s, v in rat_photos.items()}
    aug = D.AugmentConfig(infrared=0.2, grey=0.2, blur=0.35, lowres=0.35)

    def pick_pest(split: str, rng: np.random.Generator) -> np.ndarray:
        pool_cut, pool_sp = cutouts[split], sprites[split]
        if pool_cut and (not pool_sp or rng.random() < 0.7):
            return pool_cut[int(rng.integers(0, len(pool_cut)))]
        return pool_sp[int(rng.integers(0, len(pool_sp)))]

    def background_crop(split: str, rng: np.random.Generator, negative_pool: bool) -> np.ndarray:
        pool = extra_neg[split] if negative_pool and extra_neg[split] else bg[split]
        img = cache(pool[int(rng.integers(0, len(pool)))])
        h, w = img.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        if rng.random() < 0.15:  # whole frame (the full-frame view of the tiler)
            return img
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        return img[y : y + side, x : x + side]

    def synth_tile(split: str, sid: int, positive: bool) -> Render:
        def render(rng: np.random.Generator | None) -> np.ndarray:
            r = np.random.default_rng(sid) if rng is None else rng
            tile = background_crop(split, r, negative_pool=r.random() < (0.2 if positive else 0.35))  # pests on every background kind: no background shortcut
            if positive:
                side = min(tile.shape[:2])
                size = side * float(np.exp(r.uniform(np.log(0.09), np.log(0.6))))  # log-uniform: more small pests
                cx = r.uniform(size / 2, tile.shape[1] - size / 2)
                cy = r.uniform(size / 2, tile.shape[0] - size / 2)
                tile, _ = D.paste_sprite(tile, pick_pest(split, r), (cx, cy), size, r)
            return D.augment(tile, r, aug) if (rng is not None or r.random() < 0.5) else tile

        return render

    def rat_photo(split: str, sid: int) -> Render:
        def render(rng: np.random.Generator | None) -> np.ndarray:
            r = np.random.default_rng(sid) if rng is None else rng
            path, boxes = rat_photos[split][int(r.integers(0, len(rat_photos[split])))]
            img = cache(path)
            h, w = img.shape[:2]
            _, x1, y1, x2, y2 = boxes[int(r.integers(0, len(boxes)))]
            if r.random() < 0.3:
                crop = img
            else:
                side = min(max(x2 - x1, y2 - y1) / r.uniform(0.35, 0.95), min(h, w))
                cx, cy = (x1 + x2) / 2 + r.uniform(-0.2, 0.2) * side, (y1 + y2) / 2 + r.uniform(-0.2, 0.2) * side
                bx1, by1 = int(np.clip(cx - side / 2, 0, w - side)), int(np.clip(cy - side / 2, 0, h - side))
                crop = img[by1 : by1 + int(side), bx1 : bx1 + int(side)]
            return D.augment(crop, r, aug) if (rng is not None or r.random() < 0.5) else crop

        return render

    def make(split: str, n: int, base: int) -> list[Sample]:
        out = []
        for i in range(n):
            sid = seed * 1_000_003 + base + i
            kind = i % 10
            if kind < 4:
                out.append(Sample(synth_tile(split, sid, True), 1, f"{split}-synth", "synthetic pest tile"))
            elif kind < 6 and rat_photos[split]:
                out.append(Sample(rat_photo(split, sid), 1, f"{split}-ratphoto", "rat_detector photo"))
            else:
                out.append(Sample(synth_tile(split, sid, False), 0, f"{split}-bg", "background tile"))
        return out

    train, val = make("train", n_train, 0), make("valid", n_val, 500_000)

    # whole frames for frame-level validation through the tiler (threshold is chosen on these)
    frames: list[tuple[Render, int]] = []

    def synth_frame(fid: int, positive: bool) -> Render:
        def render(_rng: np.random.Generator | None) -> np.ndarray:
            r = np.random.default_rng(fid)
            img = cache(bg["valid"][int(r.integers(0, len(bg["valid"])))])
            frame = cv2.resize(img, (1920, 1080), interpolation=cv2.INTER_LINEAR)
            if positive:
                area = r.uniform(0.005, 0.03) * 1920 * 1080
                size = float(np.sqrt(area) * 1.2)
                frame, _ = D.paste_sprite(frame, pick_pest("valid", r), (r.uniform(size, 1920 - size), r.uniform(size, 1080 - size)), size, r)
            return D.augment(frame, r, D.AugmentConfig(flip=0.5, lowres=0.15, blur=0.15)) if r.random() < 0.5 else frame

        return render

    for i in range(n_frames):
        frames.append((synth_frame(seed * 7919 + 900_000 + i, i % 2 == 0), int(i % 2 == 0)))
    for p, _ in rat_photos["valid"]:
        frames.append(((lambda _r, p=p: cache(p)), 1))
    for p in extra_neg["valid"][:: max(1, len(extra_neg["valid"]) // 60)]:
        frames.append(((lambda _r, p=p: cache(p)), 0))
    info = {
        "counts": {"train_tiles": len(train), "valid_tiles": len(val), "valid_frames": len(frames), "kitchens_train": len(bg["train"]), "kitchens_valid": len(bg["valid"]), "rat_cutouts_train": len(cutouts["train"]), "rat_cutouts_valid": len(cutouts["valid"]), "sprites_train": len(sprites["train"]), "sprites_valid": len(sprites["valid"]), "rat_photos_train": len(rat_photos["train"]), "rat_photos_valid": len(rat_photos["valid"])},
    }
    return TaskData("pest", train, val, info, frames_val=frames)


BUILDERS = {"hat": hat_data, "mask": mask_data, "storage": storage_data, "pest": pest_data}


# -- feature caching and fitting ----------------------------------------------------------------
@torch.no_grad()
def extract_mid(net: TaskNet, samples: list[Sample], hw: tuple[int, int], views: int, seed: int, augment_views: bool, desc: str, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the frozen stem on ``views`` renders of every sample; returns fp16 features and labels."""
    feats, labels = [], []
    jobs = [(i, v) for v in range(views) for i in range(len(samples))]
    for start in tqdm(range(0, len(jobs), batch), desc=desc, unit="batch", leave=False):
        crops, ys = [], []
        for i, v in jobs[start : start + batch]:
            rng = np.random.default_rng([seed, i, v]) if augment_views else None
            crops.append(samples[i].render(rng))
            ys.append(samples[i].label)
        feats.append(net.stem(torch.from_numpy(to_input(crops, hw))).half())
        labels += ys
    return torch.cat(feats), torch.tensor(labels, dtype=torch.float32)


def _scores(net: TaskNet, mid: torch.Tensor, batch: int = 512) -> np.ndarray:
    net.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(mid), batch):
            out.append(torch.sigmoid(net.head(net.tail(mid[s : s + batch].float())).squeeze(1).double()))
    return torch.cat(out).numpy()


def _pos_weight(y: torch.Tensor) -> torch.Tensor:
    pos = float(y.sum())
    return torch.tensor(max(1e-3, (len(y) - pos) / max(pos, 1.0)))


def fit_head(net: TaskNet, mid_tr: torch.Tensor, y_tr: torch.Tensor, seed: int, weight_decay: float = 1e-3, steps: int = 300) -> None:
    """Fit the linear head on frozen pooled features (full-batch Adam, class-balanced BCE)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        emb = torch.cat([net.tail(mid_tr[s : s + 512].float()) for s in range(0, len(mid_tr), 512)])
    emb = emb.clone()
    head = net.head
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=0.01, weight_decay=0.0)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=_pos_weight(y_tr))
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(head(emb).squeeze(1), y_tr) + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        opt.step()


def finetune_tail(net: TaskNet, mid_tr: torch.Tensor, y_tr: torch.Tensor, mid_va: torch.Tensor, y_va: torch.Tensor, epochs: int, seed: int, lr: float = 3e-4, batch: int = 128, desc: str = "fine-tune") -> tuple[TaskNet, list[dict[str, float]]]:
    """Fine-tune ``features[SPLIT:]`` + head on cached stem features (BatchNorm frozen); keep the best epoch by validation AUROC."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tail_params = [p for n, p in net.named_parameters() if n.startswith("features.") and int(n.split(".")[1]) >= 14]
    opt = torch.optim.AdamW([{"params": tail_params, "lr": lr}, {"params": net.head.parameters(), "lr": lr * 3}], weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=_pos_weight(y_tr))
    total = max(1, epochs * ((len(mid_tr) + batch - 1) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr, lr * 3], total_steps=total, pct_start=0.15)
    history, best, best_auc = [], copy.deepcopy(net.state_dict()), -1.0
    from classifiers.metrics import auroc

    for epoch in range(epochs):
        net.eval()  # BatchNorm statistics stay frozen (small, shifted data)
        for p in tail_params:
            p.requires_grad_(True)
        perm = torch.randperm(len(mid_tr), generator=gen)
        bar = tqdm(range(0, len(perm), batch), desc=f"{desc} {epoch + 1}/{epochs}", unit="batch", leave=False)
        running = 0.0
        for k, s in enumerate(bar):
            idx = perm[s : s + batch]
            logits = net.head(net.tail(mid_tr[idx].float())).squeeze(1)
            loss = loss_fn(logits, y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            running = 0.9 * running + 0.1 * loss.item() if k else loss.item()
            bar.set_postfix(loss=f"{running:.3f}")
        scores = _scores(net, mid_va)
        auc = auroc(y_va.numpy(), scores)
        history.append({"epoch": epoch + 1, "val_auroc": round(auc, 4), "train_loss": round(running, 4)})
        log.info("%s epoch %d val AUROC %.4f", desc, epoch + 1, auc)
        if auc > best_auc:
            best_auc, best = auc, copy.deepcopy(net.state_dict())
    net.load_state_dict(best)
    return net, history


# -- pest frame scoring ---------------------------------------------------------------------------
@torch.inference_mode()
def score_frames(net: TaskNet, frames: list[tuple[Render, int]], desc: str = "pest frames") -> tuple[np.ndarray, np.ndarray]:
    """Frame-level pest score = max over the tiler's boxes (whole frame + tiles)."""
    hw = INPUT_HW["pest"]
    scores, labels = [], []
    for render, label in tqdm(frames, desc=desc, leave=False):
        frame = render(None)
        h, w = frame.shape[:2]
        crops = [frame[y1:y2, x1:x2] for x1, y1, x2, y2 in tile_boxes(w, h)]
        logits, _ = net(torch.from_numpy(to_input(crops, hw)))
        scores.append(float(torch.sigmoid(logits.double()).max()))
        labels.append(label)
    return np.array(scores), np.array(labels)


# -- the whole task -------------------------------------------------------------------------------
#: Defaults = what the shipped models were trained with (sized for 2 CPU cores: minutes per task).
VIEWS = {"hat": 1, "mask": 2, "storage": 12, "pest": 1}
EPOCHS = {"hat": 1, "mask": 2, "storage": 6, "pest": 2}
#: Threshold rule per task: the lowest threshold reaching this validation precision (most recall
#: at that precision); tasks not listed use the F0.5-maximising threshold.
MIN_PRECISION: dict[str, float] = {"pest": 0.95}


def train_task(task: str, *, data_root: Path | None = None, models_dir: Path | None = None, seed: int = 0, epochs: int | None = None, views: int | None = None, limit: int | None = None, finetune: bool = True, promote: bool = True, tolerance: float = 0.0, register: bool = True, out_file: Path | None = None) -> dict[str, Any]:
    """Train one task end to end, register the weights and apply the promotion gate.

    Returns a summary: version, metrics, promotion record, timings.
    """
    from classifiers.registry import Registry

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    t0 = time.time()
    torch.manual_seed(seed)
    root = Path(data_root) if data_root else D.data_root()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} not found (set CANTEEN_WATCH_DATA)")
    td = BUILDERS[task](root, limit=limit, seed=seed)
    hw = INPUT_HW[task]
    net = roundtrip_fp16(imagenet_tasknet())
    v = views or VIEWS[task]
    mid_tr, y_tr = extract_mid(net, td.train, hw, v, seed, True, f"{task} train features")
    mid_va, y_va = extract_mid(net, td.val, hw, 1, seed, False, f"{task} valid features")
    t_feat = time.time() - t0

    fit_head(net, mid_tr, y_tr, seed)
    frozen_scores = _scores(net, mid_va)
    frozen = binary_metrics(y_va.numpy(), frozen_scores, choose_threshold(y_va.numpy(), frozen_scores))
    variant, history = "frozen", []
    if finetune:
        tuned = copy.deepcopy(net)
        tuned, history = finetune_tail(tuned, mid_tr, y_tr, mid_va, y_va, epochs or EPOCHS[task], seed, desc=f"{task} fine-tune")
        tuned_scores = _scores(tuned, mid_va)
        tuned_m = binary_metrics(y_va.numpy(), tuned_scores, choose_threshold(y_va.numpy(), tuned_scores))
        if tuned_m["auroc"] >= frozen["auroc"]:
            net, variant = tuned, "fine-tuned tail"
    roundtrip_fp16(net)
    if task == "pest":
        val_scores, val_labels = score_frames(net, td.frames_val)
        eval_set = "frame-level (whole frame + tiles), synthetic 1080p kitchen frames + rat photos + negatives"
    else:
        val_scores, val_labels = _scores(net, mid_va), y_va.numpy()
        eval_set = str(td.info.get("validation_set", "validation crops"))
    threshold = choose_threshold(val_labels, val_scores, MIN_PRECISION.get(task))
    metrics = binary_metrics(val_labels, val_scores, threshold)
    if task == "pest":
        tile_scores = _scores(net, mid_va)
        metrics["tile_level"] = binary_metrics(y_va.numpy(), tile_scores, threshold)
    framing = np.array([s.framing for s in td.val]) if task != "pest" else np.array([])
    by_framing = {f: binary_metrics(val_labels[framing == f], val_scores[framing == f], threshold) for f in sorted(set(framing.tolist()) - {""})} if len(framing) else {}
    summary: dict[str, Any] = {
        "task": task,
        "variant": variant,
        "metrics": metrics,
        "metrics_by_framing": by_framing,
        "frozen_head_metrics": frozen,
        "finetune_history": history,
        "validation_set": eval_set,
        "data": td.info,
        "seed": seed,
        "views": v,
        "epochs": epochs or EPOCHS[task],
        "input_hw": list(hw),
        "feature_seconds": round(t_feat, 1),
        "train_seconds": round(time.time() - t0, 1),
        "limit": limit,
    }
    meta = {k: summary[k] for k in ("task", "variant", "seed", "views", "input_hw", "validation_set")}
    out_file = out_file or (D.cache_dir() / f"candidate-{task}.pt")
    save_tasknet(net, out_file, task, threshold, meta)
    if not register:
        summary["file"] = str(out_file)
        return summary
    reg = Registry(models_dir)
    # re-score the active model on this very validation set (same frames / crops / framings) for a fair gate
    active = reg.active(task)
    active_metrics, active_by_framing = None, {}
    if active is not None:
        active_net, payload = load_tasknet(reg.verified_path(active["version"]))
        if task == "pest":
            a_scores, a_labels = score_frames(active_net, td.frames_val, desc="active pest frames")
        else:
            a_scores, a_labels = _scores_full(active_net, td.val, hw), y_va.numpy()
        a_thr = float(payload["threshold"])
        active_metrics = binary_metrics(a_labels, a_scores, a_thr)
        if by_framing:
            active_by_framing = {f: binary_metrics(a_labels[framing == f], a_scores[framing == f], a_thr) for f in by_framing}
        summary["active_version"] = active["version"]
        summary["active_metrics"] = active_metrics
        summary["active_metrics_by_framing"] = active_by_framing
    info = {"variant": variant, "data": td.info, "seed": seed, "views": v, "epochs": summary["epochs"], "input_hw": list(hw), "frozen_head_metrics": frozen, "validation_set": eval_set, "train_seconds": summary["train_seconds"]}
    if by_framing:
        info["metrics_by_framing"] = by_framing
    if active is not None:
        info["gate_reference"] = {"version": active["version"], "metrics": active_metrics, **({"metrics_by_framing": active_by_framing} if active_by_framing else {})}
    version = reg.register(out_file, task, metrics, info)
    summary["version"] = version
    if promote:
        summary["promotion"] = reg.promote(version, metrics, active_metrics, tolerance)
    return summary


@torch.inference_mode()
def _scores_full(net: TaskNet, samples: list[Sample], hw: tuple[int, int], batch: int = 64) -> np.ndarray:
    out = []
    for s in range(0, len(samples), batch):
        x = torch.from_numpy(to_input([smp.render(None) for smp in samples[s : s + batch]], hw))
        out.append(torch.sigmoid(net(x)[0].double()))
    return torch.cat(out).numpy()
