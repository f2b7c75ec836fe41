"""Learning from review: export reviewed snapshots as a class-folder set and fine-tune from it.

The lead's DB side supplies ``(image_bytes, task, label)`` triples. For ``hat``/``mask`` the
image should be the person crop (:func:`review_crop` cuts the right one from a frame and a
Detection); for ``storage`` the ROI crop; for ``pest`` the tile (the Detection box) or frame.

Layout written: ``<out_dir>/<task>/<class>/<sha256[:16]>.jpg`` (classes as in
:data:`classifiers.nets.CLASSES`); identical images are written once.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from classifiers import data as D
from classifiers.nets import CLASSES, INPUT_HW, TASKS, VIOLATION_LABEL

#: Reviewer labels accepted per task → class folder.
LABEL_ALIASES: dict[str, dict[str, str]] = {
    "hat": {"bare": "bare", "no_hat": "bare", "covered": "covered", "hat": "covered", "ok": "covered"},
    "mask": {"without_mask": "without_mask", "no_mask": "without_mask", "with_mask": "with_mask", "mask": "with_mask", "ok": "with_mask"},
    "pest": {"pest": "pest", "none": "none", "no_pest": "none", "ok": "none"},
    "storage": {"open": "open", "open_storage": "open", "closed": "closed", "storage_closed": "closed", "ok": "closed"},
}


def class_for(task: str, label: str) -> str:
    """Class folder for a reviewer label; ValueError for an unknown task or label."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    key = str(label).strip().lower()
    if key not in LABEL_ALIASES[task]:
        raise ValueError(f"label {label!r} is not valid for task {task!r}; use one of {', '.join(sorted(LABEL_ALIASES[task]))}")
    return LABEL_ALIASES[task][key]


def export_review_set(items: Iterable[tuple[bytes, str, str]], out_dir: Path | str) -> dict[str, int]:
    """Write reviewed images as ``<out_dir>/<task>/<class>/<sha16>.jpg``; returns counts per task/class.

    Images that cannot be decoded raise ``ValueError`` naming their position.
    """
    out = Path(out_dir)
    counts: dict[str, int] = {}
    for i, (data, task, label) in enumerate(items):
        cls = class_for(task, label)
        image = cv2.imdecode(np.frombuffer(data or b"", np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise ValueError(f"review item {i}: image bytes are empty or not a decodable image")
        folder = out / task / cls
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.jpg"
        if not target.exists():
            if data[:3] == b"\xff\xd8\xff":
                target.write_bytes(data)
            else:
                cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        key = f"{task}/{cls}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def review_crop(frame_bgr: np.ndarray, detection: Any, task: str) -> bytes:
    """JPEG bytes of the crop a reviewer label applies to (person head box, face box, tile, ROI)."""
    b = detection.box
    box = (b.x1, b.y1, b.x2, b.y2)
    extra = getattr(detection, "extra", {}) or {}
    if task == "mask" and "face_x1" in extra:
        from classifiers.geometry import mask_box_from_face

        box = mask_box_from_face(extra["face_x1"], extra["face_y1"], extra["face_x2"], extra["face_y2"])
    crop = D.crop_box(frame_bgr, box)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("could not encode the review crop")
    return buf.tobytes()


def review_samples(folder: Path, task: str, holdout_every: int = 5) -> tuple[list, list]:
    """Class-folder review set → (train, holdout) :class:`classifiers.train.Sample` lists.

    Every ``holdout_every``-th image (by sorted name, per class) is held out for the gate.
    """
    from classifiers.train import Sample

    pos_cls, neg_cls = CLASSES[task]
    train, hold = [], []
    aug = D.AugmentConfig()
    for cls, label in ((pos_cls, 1), (neg_cls, 0)):
        for k, path in enumerate(D.list_images(folder / cls)):
            img = D.read_image(path)

            def render(rng, img=img):
                return img if rng is None else D.augment(D.random_resized_crop(img, rng, 0.75, (0.85, 1.2)), rng, aug)

            (hold if holdout_every and k % holdout_every == holdout_every - 1 else train).append(Sample(render, label, path.stem, f"review/{cls}"))
    return train, hold


def finetune_from_reviews(review_dir: Path | str, task: str, *, models_dir: Path | str | None = None, data_root: Path | None = None, seed: int = 0, epochs: int = 3, views: int = 4, promote: bool = True, tolerance: float = 0.0) -> dict[str, Any]:
    """Fine-tune the active ``task`` model's tail on reviewed images (+ a replay of the original
    training data when the data folder is present), then gate it on the original validation set
    plus a held-out fifth of the reviews.
    """
    from classifiers.metrics import binary_metrics, choose_threshold
    from classifiers.registry import Registry
    from classifiers.train import BUILDERS, _scores, extract_mid, finetune_tail, score_frames
    from classifiers.nets import load_tasknet, roundtrip_fp16, save_tasknet

    review_dir = Path(review_dir)
    folder = review_dir / task if (review_dir / task).is_dir() else review_dir
    train, hold = review_samples(folder, task)
    if not train:
        raise ValueError(f"{folder}: no reviewed images in {'/'.join(CLASSES[task])} subfolders")
    reg = Registry(models_dir)
    active = reg.active(task)
    if active is None:
        raise ValueError(f"no active {task} model to fine-tune; run train first")
    net, payload = load_tasknet(reg.verified_path(active["version"]))
    hw = INPUT_HW[task]
    val, frames = list(hold), []
    root = Path(data_root) if data_root else D.data_root()
    replay = []
    if root.is_dir():
        td = BUILDERS[task](root, seed=seed)
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(td.train), size=min(len(td.train), 4 * len(train) + 200), replace=False)
        replay = [td.train[int(i)] for i in sorted(pick)]
        val += td.val if task != "pest" else []
        frames = td.frames_val
    mid_tr, y_tr = extract_mid(net, train + replay, hw, views, seed, True, f"{task} review features")
    mid_va, y_va = extract_mid(net, val, hw, 1, seed, False, f"{task} gate features") if val else (mid_tr[:0], y_tr[:0])
    before = copy.deepcopy(net)
    tuned, history = finetune_tail(copy.deepcopy(net), mid_tr, y_tr, mid_va if len(mid_va) else mid_tr, y_va if len(y_va) else y_tr, epochs, seed, lr=1e-4, desc=f"{task} review fine-tune")
    roundtrip_fp16(tuned)
    if task == "pest" and frames:
        s_new, labels = score_frames(tuned, frames)
        s_old, _ = score_frames(before, frames)
        if len(mid_va):
            s_new, s_old, labels = np.concatenate([s_new, _scores(tuned, mid_va)]), np.concatenate([s_old, _scores(before, mid_va)]), np.concatenate([labels, y_va.numpy()])
    else:
        labels = y_va.numpy() if len(y_va) else y_tr.numpy()
        s_new = _scores(tuned, mid_va if len(mid_va) else mid_tr)
        s_old = _scores(before, mid_va if len(mid_va) else mid_tr)
    threshold = choose_threshold(labels, s_new)
    metrics = binary_metrics(labels, s_new, threshold)
    active_metrics = binary_metrics(labels, s_old, float(payload["threshold"]))
    out = D.cache_dir() / f"review-candidate-{task}.pt"
    save_tasknet(tuned, out, task, threshold, {"task": task, "variant": "review fine-tune", "parent": active["version"], "seed": seed, "reviews": len(train) + len(hold)})
    version = reg.register(out, task, metrics, {"variant": "review fine-tune", "parent": active["version"], "reviews_train": len(train), "reviews_holdout": len(hold), "finetune_history": history})
    summary = {"task": task, "version": version, "metrics": metrics, "active_metrics": active_metrics, "reviews_train": len(train), "reviews_holdout": len(hold)}
    if promote:
        summary["promotion"] = reg.promote(version, metrics, active_metrics, tolerance)
    return summary


__all__ = ["export_review_set", "finetune_from_reviews", "review_crop", "class_for", "VIOLATION_LABEL"]
