"""Unit tests of the classifier building blocks (no shipped weights or data needed)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from classifiers import data as D
from classifiers.geometry import hat_box_from_face, mask_box_from_face, polygon_crop, tile_boxes
from classifiers.metrics import auroc, binary_metrics, choose_threshold
from classifiers.nets import TaskNet, load_tasknet, save_tasknet
from classifiers.registry import Registry, add_promotion_hook, remove_promotion_hook
from classifiers.reviews import class_for, export_review_set


def test_metrics_basic():
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.4, 0.2])
    m = binary_metrics(y, s, 0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 2, 1)
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert auroc(y, s) == pytest.approx(8 / 9, abs=1e-6)
    assert auroc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5


def test_threshold_favours_precision():
    y = np.array([1] * 10 + [0] * 10)
    s = np.concatenate([np.linspace(0.5, 1.0, 10), np.linspace(0.0, 0.7, 10)])
    t = choose_threshold(y, s)
    m = binary_metrics(y, s, t)
    assert m["precision"] >= 0.9
    t2 = choose_threshold(y, s, min_precision=1.0)
    assert binary_metrics(y, s, t2)["fp"] == 0


def test_tiles_cover_1080p_and_small_rat():
    boxes = tile_boxes(1920, 1080)
    assert boxes[0] == (0, 0, 1920, 1080)
    assert len(boxes) == 16
    side = boxes[1][2] - boxes[1][0]
    assert side == 540
    # a 2 %-of-frame rat (~204 px square) anywhere lies entirely inside at least one tile
    rat = int(np.sqrt(0.02 * 1920 * 1080))
    for x in range(0, 1920 - rat, 97):
        for y in range(0, 1080 - rat, 83):
            assert any(b[0] <= x and b[1] <= y and b[2] >= x + rat and b[3] >= y + rat for b in boxes[1:])
    assert tile_boxes(200, 150) == [(0, 0, 200, 150)]


def test_crop_geometry():
    hx1, hy1, hx2, hy2 = hat_box_from_face(100, 100, 140, 150)
    assert hy1 < 100 - 50  # reaches well above the face for headwear
    assert hx1 < 100 and hx2 > 140
    mx1, my1, mx2, my2 = mask_box_from_face(100, 100, 140, 150)
    assert mx2 - mx1 == pytest.approx(46)
    img = np.full((100, 200, 3), 255, np.uint8)
    crop, box = polygon_crop(img, [(0.1, 0.1), (0.5, 0.1), (0.1, 0.9)])
    assert box == (20, 10, 100, 90)
    assert crop.shape == (80, 80, 3)
    assert (crop[-2, -2] != 255).all()  # outside the triangle is greyed
    with pytest.raises(ValueError, match="too small"):
        polygon_crop(img, [(0.1, 0.1), (0.1, 0.1), (0.1, 0.1)])


def test_dhash_grouping_and_split():
    rng = np.random.default_rng(0)
    a = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    b = a.copy()
    b[0, 0] = 0  # near duplicate
    c = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    groups = D.group_near_duplicates([a, b, c])
    assert groups[0] == groups[1] != groups[2]
    labels = np.array([1, 1, 0])
    for seed in range(5):
        val = D.split_groups(groups, labels, 0.5, seed)
        assert val[0] == val[1]


def test_augment_and_synthesis_shapes():
    rng = np.random.default_rng(1)
    img = (rng.random((90, 50, 3)) * 255).astype(np.uint8)
    for _ in range(10):
        out = D.augment(img, rng)
        assert out.shape == img.shape and out.dtype == np.uint8
    for kind in ("toque", "disposable", "hairnet", "skullcap"):
        capped = D.draw_head_covering(img, rng, kind)
        assert capped.shape == img.shape
        assert np.abs(capped.astype(int) - img).mean() > 1
    sprite = np.zeros((40, 60, 4), np.uint8)
    sprite[10:30, 10:50] = (50, 60, 70, 255)
    bg = np.full((300, 300, 3), 200, np.uint8)
    pasted, box = D.paste_sprite(bg, sprite, (150, 150), 60, rng)
    assert box[2] > box[0] and (pasted != bg).any()


def _tiny_tasknet_file(tmp_path, name, task="storage", threshold=0.5):
    torch.manual_seed(0)
    net = TaskNet().eval()
    path = tmp_path / name
    save_tasknet(net, path, task, threshold, {"test": True})
    return path


def test_weight_file_roundtrip_weights_only(tmp_path):
    path = _tiny_tasknet_file(tmp_path, "w.pt")
    net, payload = load_tasknet(path)
    assert payload["task"] == "storage" and payload["threshold"] == 0.5
    assert all(v.dtype == torch.float16 for k, v in payload["state_dict"].items() if v.is_floating_point())
    out = net(torch.rand(1, 3, 64, 64) * 255)
    assert out[0].shape == (1,) and out[1].shape == (1, 1280)
    bad = tmp_path / "bad.pt"
    torch.save({"format": "nope"}, bad)
    with pytest.raises(ValueError):
        load_tasknet(bad)


def test_registry_gate_promotion_and_hook(tmp_path):
    records = []
    hook_calls = []
    add_promotion_hook(hook_calls.append)
    try:
        reg = Registry(tmp_path / "models", on_promote=records.append)
        v1 = reg.register(_tiny_tasknet_file(tmp_path, "a.pt"), "storage", {"f0_5": 0.8, "auroc": 0.9, "threshold": 0.5})
        assert reg.active("storage") is None
        r1 = reg.promote(v1)
        assert r1["promoted"] and reg.active("storage")["version"] == v1
        v2 = reg.register(_tiny_tasknet_file(tmp_path, "b.pt", threshold=0.6), "storage", {"f0_5": 0.7, "auroc": 0.95, "threshold": 0.6})
        r2 = reg.promote(v2, {"f0_5": 0.7, "auroc": 0.95}, {"f0_5": 0.8, "auroc": 0.9})
        assert not r2["promoted"] and "f0_5" in r2["reason"]
        assert reg.active("storage")["version"] == v1
        r3 = reg.promote(v2, {"f0_5": 0.8, "auroc": 0.95}, {"f0_5": 0.8, "auroc": 0.9})
        assert r3["promoted"] and reg.active("storage")["version"] == v2
        assert [r["version"] for r in records] == [v1, v2]
        assert [r["version"] for r in hook_calls] == [v1, v2]
        index = json.loads((tmp_path / "models" / "index.json").read_text())
        assert len(index["promotions"]) == 3 and index["models"][v2]["sha256"]
        assert reg.verified_path(v2).is_file()
        # tampering is detected
        p = reg.verified_path(v1)
        p.write_bytes(p.read_bytes() + b"x")
        with pytest.raises(Exception, match="sha256"):
            reg.verified_path(v1)
        assert reg.prune() == [v1]
    finally:
        remove_promotion_hook(hook_calls.append)


def test_export_review_set(tmp_path):
    img = np.full((40, 30, 3), 120, np.uint8)
    ok, jpg = cv2.imencode(".jpg", img)
    ok2, png = cv2.imencode(".png", img + 1)
    counts = export_review_set([(jpg.tobytes(), "hat", "no_hat"), (png.tobytes(), "storage", "closed"), (jpg.tobytes(), "hat", "no_hat")], tmp_path)
    assert counts == {"hat/bare": 2, "storage/closed": 1}
    assert len(list((tmp_path / "hat" / "bare").glob("*.jpg"))) == 1
    assert len(list((tmp_path / "storage" / "closed").glob("*.jpg"))) == 1
    with pytest.raises(ValueError, match="not valid"):
        class_for("mask", "banana")
    with pytest.raises(ValueError, match="not a decodable"):
        export_review_set([(b"garbage", "pest", "pest")], tmp_path)


def test_validate_frame_errors():
    from classifiers.inference import decode_image, validate_frame

    for bad, msg in [
        (None, "None"),
        ("x", "numpy array"),
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 3), np.uint8), "too small"),
        (np.zeros((100, 100, 3), np.float32), "uint8"),
        (np.zeros((100, 100, 2), np.uint8), "shape"),
        (np.zeros((40000, 20, 3), np.uint8)[:, :], "too large"),
    ]:
        with pytest.raises(ValueError, match=msg):
            validate_frame(bad)
    assert validate_frame(np.zeros((32, 32), np.uint8)).shape == (32, 32, 3)
    assert validate_frame(np.zeros((32, 32, 4), np.uint8)).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="empty"):
        decode_image(b"")
    with pytest.raises(ValueError, match="corrupt"):
        decode_image(b"\xff\xd8\xff\xe0 definitely not a jpeg")


def test_no_model_dir_gives_no_model_classifier(tmp_path):
    from classifiers.base import NoModelClassifier
    from classifiers.inference import build_classifier

    clf = build_classifier(tmp_path / "empty")
    assert isinstance(clf, NoModelClassifier)
    assert clf.classify(np.zeros((64, 64, 3), np.uint8)).status == "no_model"
