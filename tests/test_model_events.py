"""Model promotions are appended to the deployment's ledger."""

from __future__ import annotations

import shutil
from pathlib import Path

from canteen_watch.config import load_settings
from canteen_watch.ledger.checkpoint import keygen
from canteen_watch.model_events import ledger_promotions
from canteen_watch.runtime import open_database


def test_promotion_is_ledgered(tmp_path: Path) -> None:
    from classifiers.registry import DEFAULT_MODELS_DIR, _HOOKS, Registry

    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR, models)
    settings = load_settings(None, data_dir=tmp_path / "data")
    keygen(settings.data_dir / "keys")
    registry = Registry(models)
    active = registry.active("mask")
    assert active is not None
    before = list(_HOOKS)
    try:
        ledger_promotions(settings)
        record = registry.promote(active["version"], force=True)
    finally:
        _HOOKS[:] = before
    assert record["promoted"]
    engine, sessions = open_database(settings)
    from canteen_watch.ledger.sink import ledger_sink

    sink = ledger_sink(settings, sessions)
    with sessions() as session:
        [entry] = sink.history(session, f"model:{active['version']}")
    engine.dispose()
    assert entry.action == "model.promoted"
    assert entry.payload["task"] == "mask" and entry.payload["sha256"] == active["sha256"]
