"""The command line: help everywhere, init, db upgrade, capture-once, status, config errors, demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from canteen_watch.cli import app
from snapshots.simulated import SimulatedCameraServer
from tests.conftest import S3_ACCESS, S3_SECRET

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [[], ["init"], ["run"], ["capture-once"], ["status"], ["demo"], ["storage", "serve"], ["db", "upgrade"], ["ledger", "verify"], ["ledger", "export"]],
)
def test_help_everywhere(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def write_config(tmp_path: Path, s3_server, camera_url: str) -> Path:
    data = {
        "data_dir": str(tmp_path / "data"),
        "sites": [{"id": "s1", "name": "School 1", "district": "North"}],
        "cameras": [{"id": "cam-1", "site": "s1", "source": camera_url, "username": "u", "password": "p", "auth": "basic", "timeout_seconds": 3}],
        "storage": {"endpoint": s3_server.endpoint, "access_key": S3_ACCESS, "secret_key": S3_SECRET, "bucket": "cli-test-bucket"},
    }
    path = tmp_path / "cw.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def test_init_writes_a_starter_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "canteen-watch.toml"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    assert "[[cameras]]" in target.read_text()
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 1 and "exists" in again.output


def test_capture_once_then_status(tmp_path: Path, s3_server) -> None:
    with SimulatedCameraServer(None, "u", "p", auth="basic") as cams:
        config = write_config(tmp_path, s3_server, cams.url_for("cam-1"))
        assert runner.invoke(app, ["db", "upgrade", "-c", str(config)]).exit_code == 0
        result = runner.invoke(app, ["capture-once", "cam-1", "-c", str(config), "--no-classify"])
        assert result.exit_code == 0, result.output
        assert "stored" in result.output
        status = runner.invoke(app, ["status", "-c", str(config)], env={"COLUMNS": "200"})
        assert status.exit_code == 0, status.output
        assert "cam-1" in status.output and "online" in status.output
        assert "spool depth: 0 files" in status.output
        unknown = runner.invoke(app, ["capture-once", "no-such-cam", "-c", str(config)])
        assert unknown.exit_code == 2 and "no camera 'no-such-cam'" in unknown.output


def test_malformed_config_exits_2_with_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sites]]\nid="s"\nname="S"\ndistrict="D"\n[[cameras]]\nid="c"\nsite="s"\nsource="rtp://x"\n', encoding="utf-8")
    result = runner.invoke(app, ["status", "-c", str(bad)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "cameras[0].source: unsupported scheme 'rtp'" in result.output


def test_demo_runs_and_reuses_its_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "canteen_watch", "demo", "--seconds", "7", "--interval", "2", "--no-classify", "--data-dir", str(data_dir)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "snapshots per camera" in first.stdout and "canteen-watch dashboard" in first.stdout
    assert "riverside-kitchen" in first.stdout and "hillview-washing" in first.stdout
    db = data_dir / "canteen-watch.db"
    assert db.exists() and (data_dir / "keys").exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    verify = subprocess.run([sys.executable, "-m", "canteen_watch", "-c", str(data_dir / "demo.toml"), "ledger", "verify"], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and verify.stdout.startswith("OK"), verify.stdout + verify.stderr


def test_run_schedules_until_sigterm(tmp_path: Path, s3_server) -> None:
    import signal
    import time

    import tomli_w
    from sqlalchemy import create_engine, text

    with SimulatedCameraServer(None, "u", "p", auth="basic") as cams:
        config = write_config(tmp_path, s3_server, cams.url_for("cam-1"))
        data = __import__("tomllib").loads(config.read_text())
        data["cameras"][0]["schedule"] = {"interval_seconds": 1, "misfire_grace_seconds": 2}
        config.write_text(tomli_w.dumps(data), encoding="utf-8")
        process = subprocess.Popen([sys.executable, "-m", "canteen_watch", "run", "-c", str(config), "--no-classify"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(9)
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "scheduling 1 cameras" in output and "stopped" in output
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'canteen-watch.db'}")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM snapshots WHERE status = 'stored'")).scalar()
    engine.dispose()
    assert stored >= 2, output
