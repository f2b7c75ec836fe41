"""Training: a tiny smoke run (default) and the real training (``-m slow``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from classifiers import data as D

ROOT = D.data_root()
needs_data = pytest.mark.skipif(not ROOT.is_dir(), reason=f"data folder {ROOT} not present (set CANTEEN_WATCH_DATA)")


@needs_data
def test_smoke_training_registers_and_promotes(tmp_path, monkeypatch):
    from classifiers.registry import Registry
    from classifiers.train import train_task

    monkeypatch.setenv("CANTEEN_WATCH_CACHE", str(tmp_path / "cache"))
    promoted = []
    models = tmp_path / "models"
    Registry(models, on_promote=promoted.append)  # registry instances are cheap; the hook below is per call
    s1 = train_task("storage", models_dir=models, limit=6, epochs=1, views=1, seed=3)
    s2 = train_task("storage", models_dir=models, limit=6, epochs=1, views=1, seed=3, register=False, out_file=tmp_path / "again.pt")
    assert s1["metrics"]["n"] >= 2 and 0.0 <= s1["metrics"]["auroc"] <= 1.0 or np.isnan(s1["metrics"]["auroc"])
    assert s1["promotion"]["promoted"] and Registry(models).active("storage")["version"] == s1["version"]
    # deterministic for a seed: same validation scores → same metrics and threshold
    assert s1["metrics"]["threshold"] == s2["metrics"]["threshold"]
    assert s1["metrics"]["tp"] == s2["metrics"]["tp"] and s1["metrics"]["fp"] == s2["metrics"]["fp"]


@needs_data
def test_cli_evaluate_and_train_roi_standalone(tmp_path):
    from classifiers.cli import app
    from classifiers.registry import Registry

    if not Registry().has_all_active():
        pytest.skip("no shipped classifier weights")
    import shutil

    folder = tmp_path / "storage_set"
    for cls, n in (("open", 3), ("closed", 3)):
        (folder / cls).mkdir(parents=True)
        for p in D.list_images(ROOT / "storage" / cls)[:n]:
            shutil.copy(p, folder / cls / p.name)
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--task", "storage", "--images", str(folder)])
    assert res.exit_code == 0, res.output
    last = json.loads(res.output.strip().splitlines()[-1])
    assert {"precision", "recall", "f1", "auroc", "tp", "fp", "tn", "fn"} <= set(last)
    assert last["tp"] + last["fp"] + last["tn"] + last["fn"] == 6
    res = runner.invoke(app, ["train-roi", "cam1", "fridge", "--images", str(folder), "--heads-dir", str(tmp_path / "heads"), "--views", "2"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output.strip().splitlines()[-1])
    assert info["n_open"] == 3 and (tmp_path / "heads" / "cam1" / "fridge.pt").is_file()
    res = runner.invoke(app, ["evaluate", "--task", "storage", "--images", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "missing class folder" in res.output


def test_train_roi_with_lead_loader(tmp_path):
    from classifiers.cli import build_app
    from classifiers.registry import Registry

    if not Registry().has_all_active():
        pytest.skip("no shipped classifier weights")
    calls = []

    def loader(camera_id, roi_id):
        calls.append((camera_id, roi_id))
        rng = np.random.default_rng(0)
        frames = []
        for label, level in (("open", 220), ("closed", 60), ("open", 210), ("closed", 70)):
            frames.append((np.clip(np.full((240, 320, 3), level) + rng.normal(0, 8, (240, 320, 3)), 0, 255).astype(np.uint8), label))
        return frames

    app = build_app(snapshot_loader=loader, polygon_lookup=lambda c, r: [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)])
    res = CliRunner().invoke(app, ["train-roi", "cam9", "door", "--heads-dir", str(tmp_path), "--views", "2"])
    assert res.exit_code == 0, res.output
    assert calls == [("cam9", "door")] and (tmp_path / "cam9" / "door.pt").is_file()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the suite's 300 s limit is for the default run
@needs_data
def test_full_training_all_tasks(tmp_path):
    """The real training run (≈15–20 min on 2 free cores). Gate: each task's validation AUROC ≥ 0.9."""
    from classifiers.cli import train

    results = train("all", models_dir=tmp_path / "models", seed=0)
    for r in results:
        assert r["metrics"]["auroc"] >= 0.9, r


@needs_data
def test_mask_data_has_both_framings(tmp_path, monkeypatch):
    """Every mask image is a detector-reframed sample and a raw-photo sample, on the same side of the split."""
    from classifiers.train import mask_data

    monkeypatch.setenv("CANTEEN_WATCH_CACHE", str(tmp_path / "cache"))
    td = mask_data(ROOT, limit=5, seed=0)
    for part in (td.train, td.val):
        assert {s.framing for s in part} == {"detector", "raw"}
        assert sum(s.framing == "raw" for s in part) == sum(s.framing == "detector" for s in part)
    assert not {s.group for s in td.train} & {s.group for s in td.val}
    raw = next(s for s in td.train if s.framing == "raw")
    a, b = raw.render(np.random.default_rng([0, 1])), raw.render(np.random.default_rng([0, 1]))
    assert np.array_equal(a, b)  # deterministic for a seed
    det = [s for s in td.val if s.framing == "detector"]
    raws = [s for s in td.val if s.framing == "raw"]
    # the clean detector crop is never larger than the raw photo it comes from
    for d, r in zip(det, raws):
        assert d.render(None).shape[0] <= r.render(None).shape[0]


@needs_data
def test_hat_data_scene_split_keeps_heldout_scenes_out_of_training(tmp_path, monkeypatch):
    from classifiers.train import _limit, hat_data, hat_scene_is_heldout

    monkeypatch.setenv("CANTEEN_WATCH_CACHE", str(tmp_path / "cache"))
    td = hat_data(ROOT, limit=24, seed=0)
    scenes = {p.stem for p in _limit(D.list_images(ROOT / "heads/scenes/images"), 24)}  # the scenes hat_data used
    train_groups = {s.group for s in td.train}
    assert not any(hat_scene_is_heldout(g) for g in train_groups & scenes)
    assert not any(g in scenes and not hat_scene_is_heldout(g) for g in {s.group for s in td.val})
    assert {s.framing for s in td.train} <= {"dataset", "detector"}
    assert any(s.framing == "detector" for s in td.train)
