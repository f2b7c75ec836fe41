"""Benchmark the classifier stages on 1080p frames; the last line printed is one JSON object.

Measures (images/s unless noted): face detection on 1080p frames, hat+mask crop classification,
pest tiling (whole frame + 15 tiles per 1080p frame), ROI classification, the whole-frame
``classify()`` cost in ms, and the raw MobileNetV2 forward rate (224², batch 16, PyTorch) as
the ceiling. PyTorch and ONNX Runtime are timed in the same run on the same inputs.

Usage: ``python bench/classify.py [--seconds 3] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canteen_watch.config import RegionOfInterest  # noqa: E402
from classifiers import data as D  # noqa: E402
from classifiers.inference import CanteenClassifier  # noqa: E402


def rate(fn, items_per_call: int, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n * items_per_call / (time.perf_counter() - t0)


def frames_1080p() -> list[np.ndarray]:
    root = D.data_root()
    frames = []
    scenes = D.list_images(root / "heads" / "scenes" / "images")[:2] if root.is_dir() else []
    kitchens = D.list_images(root / "kitchens" / "ai_commercial")[:2] if root.is_dir() else []
    for p in scenes + kitchens:
        frames.append(cv2.resize(D.read_image(p), (1920, 1080), interpolation=cv2.INTER_LINEAR))
    if not frames:
        rng = np.random.default_rng(0)
        frames = [cv2.resize((rng.random((28, 48, 3)) * 255).astype(np.uint8), (1920, 1080)) for _ in range(2)]
    return frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sec = args.seconds
    frames = frames_1080p()
    rois = [RegionOfInterest(id=f"r{i}", polygon=[(0.05 + 0.24 * i, 0.1), (0.25 + 0.24 * i, 0.1), (0.25 + 0.24 * i, 0.9), (0.05 + 0.24 * i, 0.9)]) for i in range(4)]
    out: dict[str, float | str | int] = {"threads": args.threads, "frame": "1920x1080"}
    clfs = {"onnx": CanteenClassifier(backend="onnx", threads=args.threads), "torch": CanteenClassifier(backend="torch", threads=args.threads)}
    rng = np.random.default_rng(1)
    head_crops = [(rng.random((96, 52, 3)) * 255).astype(np.uint8) for _ in range(16)]
    face_crops = [(rng.random((110, 90, 3)) * 255).astype(np.uint8) for _ in range(16)]
    roi_crops = [(rng.random((800, 400, 3)) * 255).astype(np.uint8) for _ in range(4)]
    k = [0]

    def next_frame():
        k[0] += 1
        return frames[k[0] % len(frames)]

    c = clfs["onnx"]
    out["face_detection_frames_per_s"] = round(rate(lambda: c.faces.detect(next_frame()), 1, sec), 2)
    for name, cl in clfs.items():
        out[f"crops_per_s_{name}"] = round(rate(lambda cl=cl: (cl.score("hat", head_crops), cl.score("mask", face_crops)), 32, sec), 1)
        out[f"tiling_frames_per_s_{name}"] = round(rate(lambda cl=cl: cl.pests(next_frame()), 1, sec), 2)
        out[f"roi_per_s_{name}"] = round(rate(lambda cl=cl: cl.score("storage", roi_crops), 4, sec), 1)
        times = []
        for _ in range(max(3, int(sec))):
            t0 = time.perf_counter()
            cl.classify(next_frame(), rois)
            times.append((time.perf_counter() - t0) * 1000)
        out[f"whole_frame_ms_{name}"] = round(float(np.median(times)), 1)
    out["tiles_per_1080p_frame"] = len(c.pests(frames[0])[0])
    out["onnx_speedup_crops"] = round(out["crops_per_s_onnx"] / out["crops_per_s_torch"], 2)
    out["onnx_speedup_tiling"] = round(out["tiling_frames_per_s_onnx"] / out["tiling_frames_per_s_torch"], 2)
    out["onnx_speedup_whole_frame"] = round(out["whole_frame_ms_torch"] / out["whole_frame_ms_onnx"], 2)
    from torchvision.models import mobilenet_v2

    torch.set_num_threads(args.threads)
    net = mobilenet_v2(weights=None).eval()
    x = torch.rand(16, 3, 224, 224)

    def fwd():
        with torch.inference_mode():
            net(x)

    out["raw_mobilenetv2_224_per_s_torch"] = round(rate(fwd, 16, sec), 1)
    x160 = torch.rand(16, 3, 160, 160)

    def fwd160():
        with torch.inference_mode():
            net(x160)

    out["raw_mobilenetv2_160_per_s_torch"] = round(rate(fwd160, 16, sec), 1)
    out["pest_tiles_per_s_onnx"] = round(out["tiling_frames_per_s_onnx"] * out["tiles_per_1080p_frame"], 1)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
