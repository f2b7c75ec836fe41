"""``canteen-watch ledger …`` commands and the pipeline sink."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canteen_watch.db.base import write_transaction
from canteen_watch.ledger import merkle
from canteen_watch.ledger.checkpoint import PRIVATE_KEY_FILE, load_signer, open_checkpoint
from canteen_watch.ledger.cli import LedgerCliConfig, ledger_app
from canteen_watch.ledger.offline_verify import main as verify_main
from canteen_watch.ledger.sink import ledger_sink
from canteen_watch.ledger.store import Ledger
from tests.test_ledger_support import LedgerEnv, make_env

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[list[str], Path]:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    args = ["--db-url", url, "--key-dir", str(tmp_path / "keys"), "--publish-dir", str(tmp_path / "published"), "--origin", "school-1.example/ledger"]
    return args, tmp_path


def run(args: list[str], *more: str) -> tuple[int, str]:
    result = runner.invoke(ledger_app, [*args, *more])
    return result.exit_code, result.output


def test_cli_end_to_end(setup: tuple[list[str], Path]) -> None:
    args, tmp = setup
    code, out = run(args, "keygen")
    assert code == 0 and "school-1.example/ledger+" in out
    assert stat.S_IMODE(os.stat(tmp / "keys" / PRIVATE_KEY_FILE).st_mode) == 0o600
    assert run(args, "keygen")[0] == 2  # refuses to overwrite
    env: LedgerEnv = make_env(f"sqlite:///{tmp / 'cw.db'}", tmp / "keys")
    assert run(args, "checkpoint")[1].startswith("ledger is empty")
    (tmp / "img" / "snaps").mkdir(parents=True)
    (tmp / "img" / "snaps" / "a.jpg").write_bytes(b"jpeg-bytes")
    import hashlib

    env.append_events(7, subject="violation:3")
    with write_transaction(env.factory) as session:
        env.ledger.append(
            session,
            actor="system:pipeline",
            action="violation.opened",
            subject="violation:3",
            evidence={"bucket": "snaps", "key": "a.jpg", "sha256": hashlib.sha256(b"jpeg-bytes").hexdigest()},
        )
    code, out = run(args, "checkpoint")
    assert code == 0 and out.startswith("school-1.example/ledger\n8\n") and "published" in out
    day_files = list((tmp / "published").glob("*.checkpoint"))
    assert len(day_files) == 1 and open_checkpoint(day_files[0].read_text(), env.verifier).size == 8

    code, out = run(args, "verify")
    assert code == 0 and out.startswith("OK: 8 entries") and "1 trusted" in out
    code, out = run(args, "prove", "3")
    assert code == 0
    proof = json.loads(out)
    leaf = merkle.leaf_hash(proof["entry"].encode())
    merkle.verify_inclusion(3, proof["tree_size"], leaf, [bytes.fromhex(p) for p in proof["path"]], bytes.fromhex(proof["root"]))
    assert open_checkpoint(proof["checkpoint"], env.verifier).root.hex() == proof["root"]
    code, out = run(args, "consistency", "3")
    assert code == 0 and json.loads(out)["new_size"] == 8
    env.append_events(1)
    code, out = run(args, "prove", "8")
    assert code == 1 and "not covered" in out
    code, out = run(args, "status")
    assert code == 0 and "entries: 9" in out and "latest checkpoint: size 8" in out

    code, out = run(args, "export", str(tmp / "v3.zip"), "--violation", "3", "--images-dir", str(tmp / "img"))
    assert code == 0 and "8 entries, 1 images" in out, out
    assert verify_main([str(tmp / "v3.zip"), "--vkey", str(tmp / "keys" / "ledger.vkey")]) == 0
    assert run(args, "export", str(tmp / "x.zip"), "--violation", "3")[0] == 2  # no image reader
    assert run(args, "export", str(tmp / "x.zip"))[0] == 2  # no selection

    env.tamper("UPDATE ledger_entries SET subject = 'violation:4' WHERE seq = 5")
    code, out = run(args, "verify")
    assert code == 1 and out.startswith("FAIL: first bad seq 5") and "content does not match" in out
    code, out = run(args, "verify", "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == 5
    env.engine.dispose()


def test_cli_errors_without_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CANTEEN_WATCH_DATABASE__URL", "CANTEEN_WATCH_LEDGER_KEY_DIR"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(ledger_app, ["verify"])
    assert result.exit_code == 2 and "key folder" in result.output
    result = runner.invoke(ledger_app, ["--key-dir", str(tmp_path / "none"), "verify"])
    assert result.exit_code == 2 and "keygen" in result.output
    assert runner.invoke(ledger_app, ["--key-dir", str(tmp_path / "k"), "keygen"]).exit_code == 0
    result = runner.invoke(ledger_app, ["--key-dir", str(tmp_path / "k"), "--db-url", f"sqlite:///{tmp_path / 'empty.db'}", "verify"])
    assert result.exit_code == 2 and "no ledger tables" in result.output


def test_config_from_settings_and_lead_mount(tmp_path: Path) -> None:
    class Database:
        url = None
        busy_timeout_seconds = 5.0

    class FakeSettings:
        data_dir = tmp_path / "data"
        database = Database()
        database_url = f"sqlite:///{tmp_path / 'data' / 'canteen-watch.db'}"

    cfg = LedgerCliConfig.from_settings(FakeSettings())
    assert cfg.key_dir == tmp_path / "data" / "keys" and cfg.db_url == FakeSettings.database_url
    result = runner.invoke(ledger_app, ["keygen"], obj=cfg)
    assert result.exit_code == 0 and (tmp_path / "data" / "keys" / PRIVATE_KEY_FILE).exists()
    try:
        from canteen_watch.cli import app
    except ImportError:  # pragma: no cover - the lead's CLI is optional here
        return
    result = runner.invoke(app, ["ledger", "--help"])
    assert result.exit_code == 0 and "verify" in result.output


def test_pipeline_sink_ledgers_events_and_publishes(tmp_path: Path) -> None:
    class Settings:
        data_dir = tmp_path

    from canteen_watch.ledger.checkpoint import keygen

    keygen(tmp_path / "keys", "school-2.example/ledger")
    env = make_env(f"sqlite:///{tmp_path / 'cw.db'}", tmp_path / "keys")
    sink = ledger_sink(Settings(), env.factory)
    assert isinstance(sink.ledger, Ledger) and sink.ledger.signer is not None
    with write_transaction(env.factory) as session:
        entry = sink.append(
            session,
            actor="model:mnv2",
            action="detection.recorded",
            subject="detection:1",
            payload={"score": 0.912345, "box": [1.5, 2.0, 3.25, 4.0], "roi": None},
            evidence={"bucket": "b", "key": "k.jpg", "version_id": None, "sha256": "ab" * 32},
        )
    assert entry.payload["score"] == "0.912345"
    result = sink.tick()
    assert result is not None and result["file_written"]
    assert sink.tick() is None  # nothing new to publish
    assert env.verify().ok
    assert load_signer(tmp_path / "keys").name == "school-2.example/ledger"
    env.engine.dispose()
