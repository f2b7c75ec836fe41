"""Models page through AppTest: versions, metrics and the active model; an administrator promotes a
candidate (in a temporary copy of the models folder: the shipped index is never touched), ledgered
with the administrator's id; auditors read only; the gate and its forced override.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from canteen_watch.dashboard import queries
from canteen_watch.i18n import t
from canteen_watch.workflows.errors import PermissionDenied
from tests.test_dashboard_support import DashEnv, all_text, dash, page  # noqa: F401

SHIPPED = Path(__file__).resolve().parents[1] / "classifiers" / "models" / "index.json"


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped index with two hat candidates: one better than the active model, one worse."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(SHIPPED, folder / "index.json")
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    active = index["models"][index["active"]["hat"]]
    for version, delta in (("hat-20990101000000-aaaaaaaa", 0.01), ("hat-20990101000001-bbbbbbbb", -0.2)):
        metrics = {**active["metrics"], "f0_5": round(active["metrics"]["f0_5"] + delta, 4), "auroc": round(min(1.0, active["metrics"]["auroc"] + delta / 2), 4)}
        index["models"][version] = {**active, "file": f"{version}.pt", "sha256": hashlib.sha256(version.encode()).hexdigest(), "metrics": metrics, "created": "2099-01-01T00:00:00+00:00"}
    (folder / "index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    monkeypatch.setenv("CANTEEN_WATCH_MODELS", str(folder))
    return folder


def _active(folder: Path, task: str) -> str:
    return json.loads((folder / "index.json").read_text(encoding="utf-8"))["active"][task]


def test_admin_promotes_a_better_candidate(dash: DashEnv, models_dir: Path) -> None:
    shipped_before = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    at = dash.app("admin").run().switch_page(page("models")).run()
    assert not at.exception
    assert "hat-20990101000000-aaaaaaaa" in list(at.dataframe[0].value["Version"])
    at.selectbox(key="md_task").select("hat")
    at.run()
    at.selectbox(key="md_version").select("hat-20990101000000-aaaaaaaa")
    at.run()
    assert t("models.gate_pass", "en") in [s.value for s in at.success]
    at.button(key="md_promote").click()
    at.run()
    assert at.success[0].value == t("models.promoted_ok", "en", version="hat-20990101000000-aaaaaaaa", task=t("task.hat", "en"))
    assert _active(models_dir, "hat") == "hat-20990101000000-aaaaaaaa"
    assert dash.ledger("model:hat-20990101000000-aaaaaaaa") == [("model.promoted", f"user:{dash.user('admin').id}")]
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == shipped_before, "the shipped index is untouched"


def test_a_worse_candidate_needs_a_forced_promotion_with_a_reason(dash: DashEnv, models_dir: Path) -> None:
    before = _active(models_dir, "hat")
    at = dash.app("admin").run().switch_page(page("models")).run()
    at.selectbox(key="md_task").select("hat")
    at.run()
    at.selectbox(key="md_version").select("hat-20990101000001-bbbbbbbb")
    at.run()
    assert any(w.value.startswith(t("models.gate_fail", "en", detail="")) for w in at.warning)
    at.button(key="md_promote").click()
    at.run()
    assert _active(models_dir, "hat") == before
    assert dash.ledger("model:hat-20990101000001-bbbbbbbb") == [("model.promotion_refused", f"user:{dash.user('admin').id}")]
    at.checkbox(key="md_force").check()
    at.button(key="md_promote").click()
    at.run()
    assert at.error and t("field.reason", "en") in at.error[0].value, "forcing needs a reason"
    at.text_input(key="md_reason").input("field trial in two districts")
    at.button(key="md_promote").click()
    at.run()
    assert _active(models_dir, "hat") == "hat-20990101000001-bbbbbbbb"


def test_auditors_read_only_and_the_service_refuses_them(dash: DashEnv, models_dir: Path) -> None:
    from classifiers.registry import Registry, models_dir_default

    from canteen_watch.dashboard.pages.models import models_root

    assert models_root() == models_dir_default() == models_dir, "the page finds the registry's folder without loading PyTorch"

    at = dash.app("auditor").run().switch_page(page("models")).run()
    assert t("models.read_only", "en") in [i.value for i in at.info]
    assert not any(b.key == "md_promote" for b in at.button)
    with pytest.raises(PermissionDenied):
        queries.promote_model(dash.sessions, dash.sink, dash.user("auditor"), Registry(models_dir), "hat-20990101000000-aaaaaaaa")
    assert _active(models_dir, "hat") != "hat-20990101000000-aaaaaaaa"
