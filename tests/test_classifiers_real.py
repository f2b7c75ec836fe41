"""The shipped models on real images from the shared data folder, at the shipped thresholds.

Fixed samples (every k-th file of validation-side folders, sorted by name) must be labelled
correctly at least at the stated share. Skipped with a reason when the data folder or the
shipped weights are absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from classifiers import data as D
from classifiers.registry import Registry

ROOT = D.data_root()
pytestmark = [
    pytest.mark.skipif(not ROOT.is_dir(), reason=f"data folder {ROOT} not present (set CANTEEN_WATCH_DATA)"),
    pytest.mark.skipif(not Registry().has_all_active(), reason="no shipped classifier weights"),
]

#: Minimum share of the fixed sample that must get the right label (balanced accuracy per class pair).
REQUIRED = {"hat": 0.85, "mask": 0.9, "storage": 0.8, "pest": 0.8}


@pytest.fixture(scope="module")
def clf():
    from classifiers.inference import CanteenClassifier

    return CanteenClassifier(threads=2)


def _every(paths, n):
    step = max(1, len(paths) // n)
    return paths[::step][:n]


def _accuracy(clf, task, pos_paths, neg_paths):
    thr = clf.thresholds[task]
    imgs = [D.read_image(p) for p in pos_paths + neg_paths]
    labels = np.array([1] * len(pos_paths) + [0] * len(neg_paths))
    if task == "pest":
        probs = np.array([clf.pests(im)[1] for im in imgs])
    else:
        probs, _ = clf.score(task, imgs)
    pred = probs >= thr
    return float(((pred == 1) & (labels == 1)).sum() / max(1, (labels == 1).sum()) + ((pred == 0) & (labels == 0)).sum() / max(1, (labels == 0).sum())) / 2


def test_hat_on_real_validation_head_crops(clf):
    bare = _every(D.list_images(ROOT / "heads/crops/valid/bare"), 30)
    covered = _every(D.list_images(ROOT / "heads/crops/valid/covered"), 30)
    assert _accuracy(clf, "hat", bare, covered) >= REQUIRED["hat"]


def test_mask_on_real_faces(clf):
    # the classifier sees face crops; these images are already tight face photos
    without = _every(D.list_images(ROOT / "mask/without_mask"), 30)
    with_ = _every(D.list_images(ROOT / "mask/with_mask"), 30)
    assert _accuracy(clf, "mask", without, with_) >= REQUIRED["mask"]


def test_storage_on_real_fridges(clf):
    opened = _every(D.list_images(ROOT / "storage/open"), 15)
    closed = _every(D.list_images(ROOT / "storage/closed"), 15)
    assert _accuracy(clf, "storage", opened, closed) >= REQUIRED["storage"]


def test_pest_on_real_rat_photos_and_kitchens(clf):
    rats = _every(D.list_images(ROOT / "pests/rat_detector/images/valid"), 8)
    kitchens = _every(D.list_images(ROOT / "kitchens/real_home"), 8)
    assert _accuracy(clf, "pest", rats, kitchens) >= REQUIRED["pest"]


def test_scene_people_on_real_construction_scene(clf):
    """Detector-then-classifier on a real scene: faces found, one box per person with both scores."""
    scenes = D.list_images(ROOT / "heads/scenes/images")
    found = 0
    for p in scenes[:6]:
        result = clf.classify(D.read_image(p))
        people = [d for d in result.detections if d.label in ("no_hat", "no_mask", "person")]
        for d in people:
            assert 0 <= d.extra["hat_bare"] <= 1 and 0 <= d.extra["mask_absent"] <= 1
        found += len({d.extra["person_index"] for d in people})
    assert found >= 3
