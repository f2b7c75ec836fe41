"""Quality flags on real kitchen photos and on synthetic blurred, dark and covered versions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from canteen_watch.config import HealthConfig
from snapshots.frames import SyntheticKitchen
from snapshots.quality import ANALYSIS_WIDTH, analysis_grey, assess
from tests.conftest_snapshots import kitchen_images  # noqa: F401 - fixture

CFG = HealthConfig()


def blurred(image: np.ndarray) -> np.ndarray:
    """Out of focus: a Gaussian blur with sigma 4 px at 1024 px width."""
    sigma = 4.0 * image.shape[1] / 1024
    return cv2.GaussianBlur(image, (0, 0), sigma)


def dark(image: np.ndarray) -> np.ndarray:
    """Lights off: 15 % of the brightness."""
    return cv2.convertScaleAbs(image, alpha=0.15)


def covered(image: np.ndarray) -> np.ndarray:
    """A hand or cloth over the lens: dim, almost flat, a faint smear of what is behind."""
    return cv2.GaussianBlur(cv2.convertScaleAbs(image, alpha=0.05, beta=60), (0, 0), 25)


VARIANTS = {
    "blurred": (blurred, {"blurred"}),
    "dark": (dark, {"dark"}),
    "covered": (covered, {"blocked"}),
    "grey-screen": (lambda img: np.full_like(img, 128), {"blocked"}),
}


def test_sharp_synthetic_frame_is_ok() -> None:
    quality = assess(SyntheticKitchen()("cam"), CFG)
    assert quality.ok, quality
    assert quality.sharpness > CFG.blur_threshold * 3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_synthetic_variants_flagged(variant: str) -> None:
    make, must = VARIANTS[variant]
    quality = assess(make(SyntheticKitchen()("cam")), CFG)
    assert must <= set(quality.flags), f"{variant}: {quality}"


def _sample(images: list[Path], count: int = 8) -> list[np.ndarray]:
    picks = [images[i] for i in np.linspace(0, len(images) - 1, count).astype(int)]
    return [cv2.imread(str(path)) for path in picks]


def test_real_kitchens_are_ok(kitchen_images: list[Path]) -> None:
    for image in _sample(kitchen_images):
        quality = assess(image, CFG)
        assert quality.ok, quality


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_real_kitchen_variants_flagged(kitchen_images: list[Path], variant: str) -> None:
    make, must = VARIANTS[variant]
    for image in _sample(kitchen_images):
        quality = assess(make(image), CFG)
        assert must <= set(quality.flags), f"{variant}: {quality}"


def test_flags_follow_thresholds() -> None:
    image = SyntheticKitchen()("cam")
    base = assess(image, CFG)
    strict = HealthConfig(blur_threshold=base.sharpness + 1, dark_threshold=base.brightness + 1, uniform_threshold=base.contrast + 1)
    assert set(assess(image, strict).flags) == {"blurred", "dark", "blocked"}


def test_sharpness_does_not_depend_on_resolution(kitchen_images: list[Path]) -> None:
    """Downscaling to a fixed width makes a 4K and a 1024 px copy of a scene read alike."""
    image = cv2.imread(str(kitchen_images[0]))
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    small, large = assess(image, CFG).sharpness, assess(big, CFG).sharpness
    assert abs(large - small) / small < 0.35, (small, large)
    raw_small = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    raw_large = cv2.Laplacian(cv2.cvtColor(big, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert raw_large < raw_small / 5  # without the fixed width the measure would collapse


@pytest.mark.parametrize(("shape", "width"), [((2160, 3840, 3), ANALYSIS_WIDTH), ((360, 640, 3), 640), ((240, 320), 320), ((100, 200, 4), 200)])
def test_analysis_grey_width(shape: tuple[int, ...], width: int) -> None:
    grey = analysis_grey(np.zeros(shape, np.uint8))
    assert grey.ndim == 2 and grey.shape[1] == width
    assert abs(grey.shape[0] - round(shape[0] * width / shape[1])) <= 1


def test_assess_rejects_non_images() -> None:
    with pytest.raises(ValueError):
        assess(np.zeros((0, 0, 3), np.uint8), CFG)
