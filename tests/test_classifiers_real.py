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
#: Measured with the shipped models (hat 0.95, mask 1.0, mask via detector 0.975, hat held-out scenes 0.8875,
#: storage 0.933, pest 1.0), minus a small margin.
REQUIRED = {"hat": 0.92, "mask": 0.96, "mask_detector": 0.95, "hat_scenes": 0.85, "storage": 0.9, "pest": 0.93}


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


def test_mask_on_real_faces_through_the_detector(clf):
    """The scene path (CenterFace → face box ×1.15 → mask model) on the same photos: max over faces found."""
    without = _every(D.list_images(ROOT / "mask/without_mask"), 20)
    with_ = _every(D.list_images(ROOT / "mask/with_mask"), 20)
    thr = clf.thresholds["mask"]
    hits = []
    for paths, label in ((without, 1), (with_, 0)):
        ok = 0
        for p in paths:
            persons, _ = clf.people(D.read_image(p))
            score = max((q["mask_absent"] for q in persons), default=float(clf.score("mask", [D.read_image(p)])[0][0]))
            ok += int((score >= thr) == bool(label))
        hits.append(ok / len(paths))
    assert sum(hits) / 2 >= REQUIRED["mask_detector"]


def test_hat_on_heldout_scenes_through_the_detector(clf):
    """Held-out ``heads/scenes`` (never trained on): a scene is bare if any head is; max over faces, whole image if none."""
    from classifiers.train import hat_scene_is_heldout

    scenes = [p for p in D.list_images(ROOT / "heads/scenes/images") if hat_scene_is_heldout(p.stem)]
    thr = clf.thresholds["hat"]
    correct = {0: [], 1: []}
    for p in scenes[::3]:
        img = D.read_image(p)
        label = int(any(b[0] == 0 for b in D.read_yolo(ROOT / "heads/scenes/labels" / (p.stem + ".txt"), img.shape[1], img.shape[0])))
        persons, _ = clf.people(img)
        score = max((q["hat_bare"] for q in persons), default=float(clf.score("hat", [img])[0][0]))
        correct[label].append((score >= thr) == bool(label))
    assert len(correct[1]) >= 5 and len(correct[0]) >= 5
    assert (np.mean(correct[1]) + np.mean(correct[0])) / 2 >= REQUIRED["hat_scenes"]


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
