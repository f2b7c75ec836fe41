"""Inference API contract, bad inputs, ONNX-vs-PyTorch agreement, few-shot ROI heads (shipped weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canteen_watch.config import RegionOfInterest
from canteen_watch.core import ClassifierResult, Detection
from classifiers.base import FrameClassifier
from classifiers.registry import Registry

pytestmark = pytest.mark.skipif(not Registry().has_all_active(), reason="no shipped classifier weights in classifiers/models")

VIOLATIONS = {"no_hat", "no_mask", "open_storage", "pest"}
OBSERVATIONS = {"person", "storage_closed"}
# ONNX Runtime and PyTorch run the same fp32 graph; kernels differ in summation order only.
ONNX_ATOL_PROB = 1e-3
ONNX_RTOL_EMB = 1e-3


@pytest.fixture(scope="module")
def clf():
    from classifiers.inference import build_classifier

    c = build_classifier(threads=2)
    assert not isinstance(c, type(None))
    return c


@pytest.fixture(scope="module")
def torch_clf():
    from classifiers.inference import CanteenClassifier

    return CanteenClassifier(backend="torch", threads=2)


def _frame(h=1080, w=1920, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2_resize((rng.random((h // 40 + 1, w // 40 + 1, 3)) * 255).astype(np.uint8), w, h)
    return base


def cv2_resize(img, w, h):
    import cv2

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _check(result: ClassifierResult, h: int, w: int):
    assert isinstance(result, ClassifierResult)
    assert result.status == "ok" and result.model_version and result.elapsed_ms > 0
    for d in result.detections:
        assert isinstance(d, Detection)
        assert d.label in VIOLATIONS | OBSERVATIONS
        assert 0.0 <= d.score <= 1.0 and d.model_version
        assert -1 <= d.box.x1 < d.box.x2 <= w + 1 and -1 <= d.box.y1 < d.box.y2 <= h + 1
        if d.label in ("no_hat", "no_mask", "person"):
            assert {"hat_bare", "mask_absent"} <= set(d.extra)


def test_build_classifier_is_real(clf):
    from classifiers.inference import CanteenClassifier

    assert isinstance(clf, CanteenClassifier) and isinstance(clf, FrameClassifier)
    assert set(clf.versions) == {"hat", "mask", "pest", "storage"}
    assert all(0.0 < t <= 1.0 for t in clf.thresholds.values())


def test_classify_contract_with_rois(clf):
    frame = _frame()
    rois = [RegionOfInterest(id="fridge", polygon=[(0.1, 0.1), (0.4, 0.1), (0.4, 0.8), (0.1, 0.8)]), RegionOfInterest(id="shelf", kind="container", polygon=[(0.5, 0.5), (0.9, 0.5), (0.7, 0.95)])]
    result = clf.classify(frame, rois)
    _check(result, 1080, 1920)
    storage = [d for d in result.detections if d.roi_id is not None]
    assert sorted(d.roi_id for d in storage) == ["fridge", "shelf"]
    assert all(d.label in ("open_storage", "storage_closed") and d.model_version.startswith("storage-") for d in storage)
    assert "pest_ms" in result.detail


@pytest.mark.parametrize(
    "frame",
    [
        np.full((16, 16, 3), 128, np.uint8),  # tiny
        np.full((480, 640), 90, np.uint8),  # greyscale 2-D
        np.full((480, 640, 1), 90, np.uint8),  # greyscale 3-D
        np.zeros((300, 400, 4), np.uint8),  # BGRA
        np.zeros((2, 2, 3), np.uint8)[:0],  # empty
        np.zeros((8, 4000, 3), np.uint8),  # degenerate strip
    ],
    ids=["tiny", "grey2d", "grey3d", "bgra", "empty", "strip"],
)
def test_bad_or_odd_inputs_never_crash(clf, frame):
    try:
        result = clf.classify(frame)
    except ValueError as exc:
        assert str(exc)
    else:
        _check(result, frame.shape[0], frame.shape[1])


def test_huge_frame_boxes_in_original_pixels(clf):
    frame = _frame(3000, 4000, seed=3)
    roi = RegionOfInterest(id="r", polygon=[(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)])
    result = clf.classify(frame, [roi])
    _check(result, 3000, 4000)
    d = [d for d in result.detections if d.roi_id == "r"][0]
    assert d.box.x1 == pytest.approx(2000, abs=4) and d.box.y2 == pytest.approx(3000, abs=4)


def test_invalid_inputs_raise_value_error(clf):
    for bad in (None, np.zeros((100, 100, 3), np.float32), np.zeros((100, 100, 5), np.uint8), [[1, 2]]):
        with pytest.raises(ValueError):
            clf.classify(bad)


def test_onnx_matches_pytorch(clf, torch_clf):
    if type(clf.runners["hat"]).__name__ != "_OnnxRunner":
        pytest.skip("ONNX backend not in use")
    rng = np.random.default_rng(5)
    for task, shape in (("hat", (90, 50, 3)), ("mask", (120, 110, 3)), ("pest", (540, 540, 3)), ("storage", (400, 300, 3))):
        crops = [(rng.random(shape) * 255).astype(np.uint8) for _ in range(3)]
        p1, e1 = clf.score(task, crops)
        p2, e2 = torch_clf.score(task, crops)
        np.testing.assert_allclose(p1, p2, atol=ONNX_ATOL_PROB)
        np.testing.assert_allclose(e1, e2, rtol=ONNX_RTOL_EMB, atol=1e-3 * float(np.abs(e2).max()))


def test_people_from_a_drawn_face_frame(clf):
    """A frame with no faces yields no people; the person stage returns both scores when it finds one."""
    persons, timings = clf.people(np.full((480, 640, 3), 200, np.uint8))
    assert persons == [] and "faces_ms" in timings


def test_roi_head_few_shot(tmp_path, clf):
    from classifiers.roi_heads import RoiHead, roi_head_path, train_roi_head

    rng = np.random.default_rng(0)
    open_imgs = [np.clip(np.full((200, 160, 3), 230) + rng.normal(0, 10, (200, 160, 3)), 0, 255).astype(np.uint8) for _ in range(3)]
    for im in open_imgs:
        im[40:60, 20:140] = (30, 120, 200)  # "shelf contents"
    closed_imgs = [np.clip(np.full((200, 160, 3), 90) + rng.normal(0, 10, (200, 160, 3)), 0, 255).astype(np.uint8) for _ in range(3)]
    examples = [(im, "open") for im in open_imgs] + [(im, "closed") for im in closed_imgs]
    head = train_roi_head(examples, clf, views=3)
    assert head.n_open == 3 and head.n_closed == 3 and head.train_accuracy >= 0.9
    path = head.save(roi_head_path(tmp_path, "cam1", "fridge"))
    loaded = RoiHead.load(path)
    np.testing.assert_allclose(loaded.weight, head.weight, rtol=1e-6)
    with pytest.raises(ValueError, match="both classes"):
        train_roi_head([(open_imgs[0], "open")], clf)
    with pytest.raises(ValueError, match="label"):
        train_roi_head([(open_imgs[0], "ajar")], clf)
    # the classifier uses the head for that camera's ROI
    clf.roi_heads_dir = tmp_path
    try:
        frame = np.zeros((400, 640, 3), np.uint8)
        frame[:200, :160] = open_imgs[0]
        roi = RegionOfInterest(id="fridge", polygon=[(0, 0), (0.25, 0), (0.25, 0.5), (0, 0.5)])
        d = [d for d in clf.classify(frame, [roi], camera_id="cam1").detections if d.roi_id == "fridge"][0]
        assert "roi_head_open" in d.extra and "+roi:" in d.model_version
        d2 = [d for d in clf.classify(frame, [roi], camera_id="other").detections if d.roi_id == "fridge"][0]
        assert "roi_head_open" not in d2.extra
    finally:
        clf.roi_heads_dir = None


def test_inference_mode_threads(clf):
    assert torch.get_num_threads() == 2
