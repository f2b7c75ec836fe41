"""Per-ROI few-shot open/closed heads on frozen storage-model features.

A site labels a few snapshots of one camera ROI as ``open`` or ``closed``; :func:`train_roi_head`
embeds each ROI crop (several augmented views) with the active storage network's pooled 1280-d
features (frozen) and fits an L2-regularised logistic regression — seconds on a CPU. The head is
saved as a small ``.pt`` dict (``torch.load(weights_only=True)``) at
``<heads_dir>/<camera_id>/<roi_id>.pt`` and used by :class:`classifiers.inference.CanteenClassifier`
for that (camera, ROI) instead of the generic model, as long as it was trained on the same
storage model version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classifiers import data as D
from classifiers.geometry import polygon_crop

FORMAT = "canteen-watch/roi-head/1"
OPEN_LABELS = {"open", "open_storage", "1", "true", "yes"}
CLOSED_LABELS = {"closed", "storage_closed", "0", "false", "no"}


def roi_head_path(heads_dir: Path | str, camera_id: str, roi_id: str) -> Path:
    for name, value in (("camera_id", camera_id), ("roi_id", roi_id)):
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"invalid {name} {value!r}")
    return Path(heads_dir) / camera_id / f"{roi_id}.pt"


@dataclass
class RoiHead:
    """Logistic regression on L2-normalised 1280-d embeddings."""

    weight: np.ndarray
    bias: float
    threshold: float
    base_version: str
    n_open: int
    n_closed: int
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    train_accuracy: float = float("nan")

    @property
    def version(self) -> str:
        digest = hashlib.sha256(self.weight.astype(np.float32).tobytes() + np.float32(self.bias).tobytes()).hexdigest()
        return digest[:8]

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Open probability per embedding row."""
        e = np.asarray(embeddings, np.float64)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)
        return 1.0 / (1.0 + np.exp(-(e @ self.weight.astype(np.float64) + self.bias)))

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "weight": torch.from_numpy(self.weight.astype(np.float32)), "bias": float(self.bias), "threshold": float(self.threshold), "base_version": self.base_version, "n_open": int(self.n_open), "n_closed": int(self.n_closed), "created": self.created, "train_accuracy": float(self.train_accuracy)}
        tmp = path.with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "RoiHead":
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a canteen-watch ROI head")
        return cls(payload["weight"].numpy(), payload["bias"], payload["threshold"], payload["base_version"], payload["n_open"], payload["n_closed"], payload["created"], payload.get("train_accuracy", float("nan")))


def _label(value: str) -> int:
    v = str(value).strip().lower()
    if v in OPEN_LABELS:
        return 1
    if v in CLOSED_LABELS:
        return 0
    raise ValueError(f"ROI label {value!r}: expected 'open' or 'closed'")


def train_roi_head(
    examples: Sequence[tuple[np.ndarray, str]],
    classifier: Any = None,
    *,
    polygon: Sequence[tuple[float, float]] | None = None,
    views: int = 6,
    seed: int = 0,
    l2: float = 1e-2,
    models_dir: Path | str | None = None,
) -> RoiHead:
    """Fit a per-ROI open/closed head from labelled examples.

    Args:
        examples: ``(BGR image, "open"|"closed")`` pairs: ROI crops, or whole snapshots when
            ``polygon`` is given (each is then cropped by the ROI polygon).
        classifier: A loaded :class:`~classifiers.inference.CanteenClassifier` (its storage
            network embeds the crops); loaded from ``models_dir`` when None.
        polygon: The ROI polygon in normalised coordinates, for whole snapshots.
        views: Augmented views per example (the first is un-augmented).

    Raises:
        ValueError: No examples, a class missing, a bad label or an unusable image.
    """
    if not examples:
        raise ValueError("no labelled examples")
    if classifier is None:
        from classifiers.inference import CanteenClassifier

        classifier = CanteenClassifier(models_dir, backend="torch")
    from classifiers.inference import validate_frame

    crops, labels = [], []
    for i, (image, label) in enumerate(examples):
        y = _label(label)
        try:
            image = validate_frame(image)
        except ValueError as exc:
            raise ValueError(f"example {i}: {exc}") from exc
        crop = polygon_crop(image, polygon)[0] if polygon else image
        crops.append(crop)
        labels.append(y)
    y = np.array(labels)
    if y.min() == y.max():
        raise ValueError(f"need examples of both classes; got only {'open' if y[0] else 'closed'}")
    rendered, ys = [], []
    for i, (crop, label) in enumerate(zip(crops, y)):
        for v in range(max(1, views)):
            if v == 0:
                rendered.append(crop)
            else:
                rng = np.random.default_rng([seed, i, v])
                rendered.append(D.augment(D.random_resized_crop(crop, rng, 0.75, (0.85, 1.2)), rng))
            ys.append(label)
    _, emb = classifier.score("storage", rendered)
    e = torch.from_numpy(emb.astype(np.float32))
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-9)
    t = torch.tensor(ys, dtype=torch.float32)
    torch.manual_seed(seed)
    w = torch.zeros(e.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    pos = float(t.sum())
    pos_weight = torch.tensor((len(t) - pos) / max(pos, 1.0))
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def closure():
        opt.zero_grad()
        loss = loss_fn(e @ w * 10.0 + b, t) + l2 * (w * 10.0).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    weight = (w.detach() * 10.0).numpy()
    head = RoiHead(weight, float(b.detach()), 0.5, classifier.versions["storage"], int(y.sum()), int((1 - y).sum()))
    head.train_accuracy = float(((head.predict(emb) >= 0.5) == np.array(ys)).mean())
    return head
