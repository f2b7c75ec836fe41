"""Inference API: one BGR frame + the camera's ROIs → :class:`canteen_watch.core.ClassifierResult`.

Stages (each batched, under ``torch.inference_mode()`` or ONNX Runtime):

* **people** — CenterFace finds faces; each face gives a head crop (enlarged upward to include
  headwear) scored by the hat model and a face crop scored by the mask model. Each person yields
  one box (the head-and-headwear box) with both scores in ``Detection.extra``: one detection per
  violation (``no_hat``, ``no_mask``; a person with both gets two detections with the same box)
  and, when ``observations`` is on, a ``person`` observation for a compliant person.
* **pest** — the whole frame plus overlapping square tiles (:func:`geometry.tile_boxes`); each
  tile above the threshold is reported with the tile's box (overlapping positive tiles are
  suppressed in favour of the best one).
* **storage** — each ROI polygon is cropped (outside greyed) and scored by the generic open/closed
  model and, when a per-ROI few-shot head exists for (camera, ROI), by that head, whose verdict
  then decides. ``open_storage`` for open; ``storage_closed`` observation otherwise.

Every detection carries the version of the model that produced it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from canteen_watch.config import RegionOfInterest
from canteen_watch.core import Box, ClassifierResult, Detection
from classifiers.base import FrameClassifier, NoModelClassifier
from classifiers.data import cache_dir
from classifiers.geometry import clip_box, hat_box_from_face, mask_box_from_face, polygon_crop, tile_boxes
from classifiers.nets import INPUT_HW, TASKS, VIOLATION_LABEL, TaskNet, as_bgr, load_tasknet, to_input
from classifiers.registry import Registry, RegistryError

MIN_SIDE = 16
MAX_SIDE = 30000
MAX_PIXELS = 250_000_000
WORK_MAX_SIDE = 1920  # larger frames are processed on a downscaled copy; boxes are mapped back


def validate_frame(image: Any) -> np.ndarray:
    """Return a 3-channel uint8 BGR frame or raise ``ValueError`` naming the problem."""
    if image is None:
        raise ValueError("frame is None")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"frame dtype is {image.dtype}; expected uint8 (decoded 8-bit image)")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"frame shape {image.shape} is not H×W, H×W×1, H×W×3 or H×W×4")
    if image.size == 0:
        raise ValueError(f"frame is empty (shape {image.shape})")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"frame is too small ({w}×{h} px); need at least {MIN_SIDE} px on each side")
    if max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise ValueError(f"frame is too large ({w}×{h} px); at most {MAX_SIDE} px a side and {MAX_PIXELS // 1_000_000} MP")
    return np.ascontiguousarray(as_bgr(image))


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to BGR; raises ``ValueError`` for empty or corrupt data."""
    if not data:
        raise ValueError("image data is empty")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image data ({len(data)} bytes) is corrupt or not a supported image format")
    return image


class _TorchRunner:
    def __init__(self, net: TaskNet):
        self.net = net.eval()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, emb = self.net(torch.from_numpy(x))
        return logits.numpy(), emb.numpy()


class _OnnxRunner:
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, emb = self.session.run(["logit", "embedding"], {"image": x})
        return logits, emb


def export_onnx(net: TaskNet, path: Path, hw: tuple[int, int]) -> Path:
    """Export a task network to ONNX (dynamic batch, height, width; outputs ``logit``, ``embedding``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    dummy = torch.rand(2, 3, *hw) * 255
    torch.onnx.export(
        net.eval(),
        (dummy,),
        str(tmp),
        input_names=["image"],
        output_names=["logit", "embedding"],
        dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "logit": {0: "n"}, "embedding": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    tmp.replace(path)
    return path


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


class CanteenClassifier:
    """The real frame classifier (implements :class:`classifiers.base.FrameClassifier`).

    Args:
        models_dir: Models folder (default: ``$CANTEEN_WATCH_MODELS`` or ``classifiers/models``).
        backend: ``"onnx"`` (exported once into the cache folder), ``"torch"``, or ``"auto"``
            (ONNX Runtime, which measured faster here; falls back to torch if export fails).
        threads: Threads for torch and ONNX Runtime.
        face_max_side: Longer side the face detector works at (1080p frames are scaled to it).
        roi_heads_dir: Folder of per-ROI few-shot heads (``<camera>/<roi>.pt``).
        observations: Also report ``person`` and ``storage_closed`` observations.
        thresholds: Override shipped thresholds per task.
    """

    def __init__(self, models_dir: Path | str | None = None, *, backend: str = "auto", threads: int = 2, face_max_side: int = 1280, face_threshold: float = 0.5, roi_heads_dir: Path | str | None = None, observations: bool = True, thresholds: dict[str, float] | None = None, tasks: Sequence[str] = TASKS):
        torch.set_num_threads(max(1, int(threads)))
        self.threads = max(1, int(threads))
        self.registry = Registry(models_dir)
        self.versions: dict[str, str] = {}
        self.thresholds: dict[str, float] = {}
        self.nets: dict[str, TaskNet] = {}
        self.runners: dict[str, Any] = {}
        self.backend = backend
        self.tasks = tuple(t for t in TASKS if t in tasks)
        for task in self.tasks:
            rec = self.registry.active(task)
            if rec is None:
                raise RegistryError(f"no active {task} model in {self.registry.root}")
            path = self.registry.verified_path(rec["version"])
            net, payload = load_tasknet(path)
            self.nets[task] = net
            self.versions[task] = rec["version"]
            self.thresholds[task] = float((thresholds or {}).get(task, payload["threshold"]))
            self.runners[task] = self._runner(task, net, rec["sha256"], backend)
        from classifiers.faces import CenterFaceDetector

        self.faces = CenterFaceDetector(max_side=face_max_side, threshold=face_threshold, threads=self.threads)
        self.roi_heads_dir = Path(roi_heads_dir) if roi_heads_dir else None
        self.observations = observations
        self._roi_cache: dict[Path, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _runner(self, task: str, net: TaskNet, sha: str, backend: str):
        if backend == "torch":
            return _TorchRunner(net)
        path = cache_dir() / "onnx" / f"{task}-{sha[:16]}.onnx"
        try:
            if not path.is_file():
                export_onnx(net, path, INPUT_HW[task])
            return _OnnxRunner(path, self.threads)
        except Exception:
            if backend == "onnx":
                raise
            return _TorchRunner(net)

    @property
    def model_version(self) -> str:
        """Combined version, e.g. ``hat=hat-2025…;mask=…;pest=…;storage=…``."""
        return ";".join(f"{t}={self.versions[t]}" for t in self.tasks)

    # -- scoring -----------------------------------------------------------------------------
    def score(self, task: str, crops: Sequence[np.ndarray], batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Violation probabilities and 1280-d embeddings for BGR crops (batched)."""
        if not len(crops):
            return np.zeros(0), np.zeros((0, 1280), np.float32)
        probs, embs = [], []
        for s in range(0, len(crops), batch):
            logits, emb = self.runners[task](to_input(list(crops[s : s + batch]), INPUT_HW[task]))
            probs.append(sigmoid(logits))
            embs.append(emb)
        return np.concatenate(probs), np.concatenate(embs)

    def people(self, frame: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Per person: face box, head box, ``hat_bare`` and ``mask_absent`` probabilities."""
        t0 = time.perf_counter()
        h, w = frame.shape[:2]
        faces = self.faces.detect(frame)
        t1 = time.perf_counter()
        hat_crops, mask_crops, persons = [], [], []
        from classifiers.data import crop_box

        for f in faces:
            if f.x2 - f.x1 < 4 or f.y2 - f.y1 < 4:
                continue
            hb = hat_box_from_face(f.x1, f.y1, f.x2, f.y2)
            mb = clip_box(mask_box_from_face(f.x1, f.y1, f.x2, f.y2), w, h)
            hat_crops.append(crop_box(frame, hb))
            mask_crops.append(frame[int(mb[1]) : max(int(mb[3]), int(mb[1]) + 1), int(mb[0]) : max(int(mb[2]), int(mb[0]) + 1)])
            persons.append({"face": (f.x1, f.y1, f.x2, f.y2), "face_score": f.score, "box": clip_box(hb, w, h)})
        hat_p = self.score("hat", hat_crops)[0] if "hat" in self.runners else np.full(len(persons), np.nan)
        mask_p = self.score("mask", mask_crops)[0] if "mask" in self.runners else np.full(len(persons), np.nan)
        for p, a, b in zip(persons, hat_p, mask_p):
            p["hat_bare"], p["mask_absent"] = float(a), float(b)
        return persons, {"faces_ms": (t1 - t0) * 1000, "people_crops_ms": (time.perf_counter() - t1) * 1000}

    def pests(self, frame: np.ndarray) -> tuple[list[tuple[tuple[int, int, int, int], float]], float]:
        """(tile box, probability) for every tiler box, and the frame-level max."""
        h, w = frame.shape[:2]
        boxes = tile_boxes(w, h)
        probs, _ = self.score("pest", [frame[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes])
        return list(zip(boxes, probs.tolist())), float(probs.max()) if len(probs) else 0.0

    def roi_head(self, camera_id: str | None, roi_id: str):
        if not camera_id or self.roi_heads_dir is None:
            return None
        from classifiers.roi_heads import RoiHead, roi_head_path

        path = roi_head_path(self.roi_heads_dir, camera_id, roi_id)
        if not path.is_file():
            return None
        mtime = path.stat().st_mtime
        cached = self._roi_cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        head = RoiHead.load(path)
        self._roi_cache[path] = (mtime, head)
        return head

    # -- the FrameClassifier call ---------------------------------------------------------------
    def classify(self, image_bgr: np.ndarray, rois: Sequence[RegionOfInterest] = (), camera_id: str | None = None) -> ClassifierResult:
        """Classify one frame. Raises ``ValueError`` for unusable frames or ROIs."""
        t0 = time.perf_counter()
        frame = validate_frame(image_bgr)
        H, W = frame.shape[:2]
        scale = 1.0
        if max(H, W) > WORK_MAX_SIDE:
            scale = WORK_MAX_SIDE / max(H, W)
            frame = cv2.resize(frame, (max(MIN_SIDE, round(W * scale)), max(MIN_SIDE, round(H * scale))), interpolation=cv2.INTER_AREA)
        sx, sy = W / frame.shape[1], H / frame.shape[0]

        def box(b) -> Box:
            return Box(float(b[0]) * sx, float(b[1]) * sy, float(b[2]) * sx, float(b[3]) * sy)

        detections: list[Detection] = []
        timings: dict[str, float] = {}
        with self._lock:
            persons, t = self.people(frame) if {"hat", "mask"} <= set(self.tasks) else ([], {})
            timings.update(t)
            for i, p in enumerate(persons):
                extra = {"hat_bare": round(p["hat_bare"], 4), "mask_absent": round(p["mask_absent"], 4), "face_score": round(p["face_score"], 4), "person_index": float(i), "face_x1": p["face"][0] * sx, "face_y1": p["face"][1] * sy, "face_x2": p["face"][2] * sx, "face_y2": p["face"][3] * sy}
                flagged = False
                if p["hat_bare"] >= self.thresholds["hat"]:
                    detections.append(Detection("no_hat", p["hat_bare"], box(p["box"]), self.versions["hat"], None, dict(extra)))
                    flagged = True
                if p["mask_absent"] >= self.thresholds["mask"]:
                    detections.append(Detection("no_mask", p["mask_absent"], box(p["box"]), self.versions["mask"], None, dict(extra)))
                    flagged = True
                if not flagged and self.observations:
                    detections.append(Detection("person", p["face_score"], box(p["box"]), f"{self.versions['hat']}+{self.versions['mask']}", None, dict(extra)))
            t1 = time.perf_counter()
            tiles, frame_max = self.pests(frame) if "pest" in self.tasks else ([], 0.0)
            timings["pest_ms"] = (time.perf_counter() - t1) * 1000
            positives = sorted((tp for tp in tiles if tp[1] >= self.thresholds["pest"]), key=lambda tp: -tp[1])
            kept: list[tuple[tuple[int, int, int, int], float]] = []
            for b, p in positives:
                if b == (0, 0, frame.shape[1], frame.shape[0]) and kept:
                    continue  # whole frame adds nothing once a tile localises the pest
                if any(_overlap(b, k[0]) > 0.0 and not _is_full(k[0], frame) for k in kept):
                    continue
                kept.append((b, p))
            for b, p in kept:
                detections.append(Detection("pest", p, box(b), self.versions["pest"], None, {"frame_max": round(frame_max, 4), "tiles": float(len(tiles))}))
            t2 = time.perf_counter()
            if rois and "storage" in self.tasks:
                crops, boxes = [], []
                for roi in rois:
                    crop, b = polygon_crop(frame, roi.polygon)
                    crops.append(crop)
                    boxes.append(b)
                probs, embs = self.score("storage", crops)
                for roi, b, p, e in zip(rois, boxes, probs, embs):
                    extra = {"generic_open": round(float(p), 4)}
                    score, thr, version = float(p), self.thresholds["storage"], self.versions["storage"]
                    head = self.roi_head(camera_id, roi.id)
                    if head is not None and head.base_version == self.versions["storage"]:
                        hp = head.predict(e[None])[0]
                        extra["roi_head_open"] = round(float(hp), 4)
                        score, thr, version = float(hp), head.threshold, f"{self.versions['storage']}+roi:{head.version}"
                    if score >= thr:
                        detections.append(Detection("open_storage", score, box(b), version, roi.id, extra))
                    elif self.observations:
                        detections.append(Detection("storage_closed", 1.0 - score, box(b), version, roi.id, extra))
            timings["rois_ms"] = (time.perf_counter() - t2) * 1000
        elapsed = (time.perf_counter() - t0) * 1000
        detail = " ".join(f"{k}={v:.1f}" for k, v in timings.items())
        return ClassifierResult(detections=detections, model_version=self.model_version, status="ok", detail=detail, elapsed_ms=elapsed)


def _overlap(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return float(ix * iy)


def _is_full(b, frame) -> bool:
    return b == (0, 0, frame.shape[1], frame.shape[0])


def build_classifier(models_dir: Path | str | None = None, **kwargs: Any) -> FrameClassifier:
    """The real classifier when every task has an active, intact weight file; else ``NoModelClassifier``."""
    registry = Registry(models_dir)
    if not registry.has_all_active():
        return NoModelClassifier()
    try:
        return CanteenClassifier(models_dir, **kwargs)
    except (RegistryError, FileNotFoundError, ValueError):
        return NoModelClassifier()


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
