"""Evaluate a shipped task model on a class-folder image set at its shipped threshold.

Folder layout: ``DIR/<class>/*.jpg`` with the two classes of the task (hat: ``bare``/``covered``,
mask: ``without_mask``/``with_mask``, pest: ``pest``/``none``, storage: ``open``/``closed``).
The positive class is the violation.

* hat/mask with ``crops``: each image is a head/face crop and is classified directly, as it is
  (the models are trained on this framing too: mask on raw face photos with random tighter
  crops and looser paddings, hat on the dataset's head crops).
* hat/mask without ``crops``: each image is a scene; faces are detected and every person
  classified with the runtime's crops (:meth:`CanteenClassifier.people`: mask = CenterFace box
  ×1.15, hat = ``hat_box_from_face``; both framings are in training); the image is positive if
  any person is. **Fallback**: when no face is found the
  whole image is classified as one crop (counted in ``no_face_fallbacks``).
* pest: the whole frame through the tiler (frame score = max over whole frame and tiles).
* storage: the whole image is one ROI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from classifiers import data as D
from classifiers.metrics import binary_metrics
from classifiers.nets import CLASSES, TASKS


def image_scores(classifier: Any, task: str, images_dir: Path | str, crops: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Scores and labels for every decodable image of the two class folders."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    root = Path(images_dir)
    pos_cls, neg_cls = CLASSES[task]
    missing = [c for c in (pos_cls, neg_cls) if not (root / c).is_dir()]
    if missing:
        raise ValueError(f"{root}: missing class folder(s) {', '.join(missing)} for task {task}")
    items = [(p, 1) for p in D.list_images(root / pos_cls)] + [(p, 0) for p in D.list_images(root / neg_cls)]
    if not items:
        raise ValueError(f"{root}: no images in {pos_cls}/ or {neg_cls}/")
    scores, labels = [], []
    stats = {"images": 0, "unreadable": 0, "no_face_fallbacks": 0, "persons": 0}
    batch: list[tuple[np.ndarray, int]] = []

    def flush() -> None:
        if batch:
            probs, _ = classifier.score(task, [b[0] for b in batch])
            scores.extend(probs.tolist())
            labels.extend(b[1] for b in batch)
            batch.clear()

    for path, label in tqdm(items, desc=f"evaluate {task}", leave=False):
        try:
            image = D.read_image(path)
        except ValueError:
            stats["unreadable"] += 1
            continue
        stats["images"] += 1
        if task == "storage" or (task in ("hat", "mask") and crops):
            batch.append((image, label))
            if len(batch) >= 32:
                flush()
        elif task == "pest":
            _, frame_max = classifier.pests(image)
            scores.append(frame_max)
            labels.append(label)
        else:
            persons, _ = classifier.people(image)
            key = "hat_bare" if task == "hat" else "mask_absent"
            if persons:
                stats["persons"] += len(persons)
                scores.append(max(p[key] for p in persons))
                labels.append(label)
            else:
                stats["no_face_fallbacks"] += 1
                batch.append((image, label))
                flush()
    flush()
    return np.array(scores, np.float64), np.array(labels, int), stats


def evaluate_folder(task: str, images_dir: Path | str, crops: bool = False, models_dir: Path | str | None = None, threshold: float | None = None, backend: str = "auto", classifier: Any = None) -> dict[str, Any]:
    """Metrics of the active ``task`` model on ``images_dir`` at the shipped (or given) threshold."""
    if classifier is None:
        from classifiers.inference import CanteenClassifier

        classifier = CanteenClassifier(models_dir, backend=backend, tasks=(task,))
    scores, labels, stats = image_scores(classifier, task, images_dir, crops)
    thr = float(classifier.thresholds[task] if threshold is None else threshold)
    m = binary_metrics(labels, scores, thr)
    return {
        "task": task,
        "model_version": classifier.versions[task],
        "crops": bool(crops),
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "auroc": m["auroc"],
        "threshold": round(thr, 4),
        "tp": m["tp"],
        "fp": m["fp"],
        "tn": m["tn"],
        "fn": m["fn"],
        "n": m["n"],
        **stats,
    }
