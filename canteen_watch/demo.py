"""``canteen-watch demo``: the whole system on embedded defaults with simulated cameras.

Everything runs on 127.0.0.1: the project's own simulated cameras (HTTP JPEG snapshots with
digest and basic auth, an MJPEG stream, a video file and one camera that never answers), the
embedded S3 server, a SQLite database and the scheduler. The data folder is reused on re-runs.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from canteen_watch.config import Settings, load_settings
from canteen_watch.core import utcnow
from canteen_watch.db.models import CameraEventRow
from canteen_watch.runtime import build_context
from canteen_watch.s3server import all_ports_free, find_free_base
from canteen_watch.service import SnapshotService
from canteen_watch.status import collect_status
from snapshots.frames import write_synthetic_video
from snapshots.simulated import SimulatedCameraServer, provider_from_args

DEMO_USER, DEMO_PASSWORD = "admin", "demo-camera-pw"
SITES = [
    {"id": "school-001", "name": "Riverside Primary School canteen", "kind": "school_canteen", "district": "Central"},
    {"id": "school-002", "name": "Hillview Middle School canteen", "kind": "school_canteen", "district": "North"},
    {"id": "care-001", "name": "Little Stars after-school care", "kind": "care_institution", "district": "North"},
]


def demo_cameras(server: SimulatedCameraServer, video: Path, interval: float, basic_server: SimulatedCameraServer) -> list[dict[str, Any]]:
    """The demo's cameras, one per source kind, all served on 127.0.0.1."""
    schedule = {"interval_seconds": interval, "jitter_seconds": min(1.0, interval / 4), "misfire_grace_seconds": max(2.0, interval)}
    auth = {"username": DEMO_USER, "password": DEMO_PASSWORD}
    return [
        {"id": "riverside-kitchen", "site": "school-001", "room": "operation", "source": server.url_for("riverside-kitchen"), "auth": "digest", **auth, "schedule": schedule, "timeout_seconds": 5},
        {
            "id": "riverside-store", "site": "school-001", "room": "storage", "source": video.resolve().as_uri(), "schedule": schedule, "timeout_seconds": 5,
            "rois": [{"id": "shelf-1", "kind": "storage", "polygon": [[0.05, 0.15], [0.45, 0.15], [0.45, 0.85], [0.05, 0.85]]}],
        },
        {"id": "hillview-kitchen", "site": "school-002", "room": "operation", "source": basic_server.url_for("hillview-kitchen"), "auth": "basic", **auth, "schedule": schedule, "timeout_seconds": 5},
        {"id": "littlestars-kitchen", "site": "care-001", "room": "preparation", "source": server.url_for("littlestars-kitchen", "stream"), "auth": "digest", **auth, "schedule": schedule, "timeout_seconds": 5},
        {"id": "hillview-washing", "site": "school-002", "room": "washing", "source": server.url_for("hang"), "schedule": schedule, "timeout_seconds": 2},
    ]


def demo_settings(data_dir: Path, cameras: list[dict[str, Any]]) -> Settings:
    """Settings for the demo, also written to ``data_dir/demo.toml`` for status and dashboard."""
    port = 8333 if all_ports_free(8333) else find_free_base()
    data = {"data_dir": str(data_dir.resolve()), "sites": SITES, "cameras": cameras, "storage": {"embedded_port": port}}
    path = data_dir / "demo.toml"
    path.write_text("# Written by `canteen-watch demo`; regenerated on every run.\n" + tomli_w.dumps(data), encoding="utf-8")
    return load_settings(path)


def run_demo(*, seconds: float, images: Path | None, video: Path | None, data_dir: Path, interval: float, classify: bool, console: Console) -> Settings:
    """Run the demo for ``seconds`` (Ctrl-C stops early) and print a summary."""
    data_dir.mkdir(parents=True, exist_ok=True)
    started = utcnow()
    video_file = video or data_dir / "demo-store.mp4"
    if video is None and not video_file.exists():
        write_synthetic_video(video_file, frames=60, fps=10.0, camera="riverside-store")
    provider = provider_from_args(images, video)
    with ExitStack() as stack:
        digest_server = stack.enter_context(SimulatedCameraServer(provider, DEMO_USER, DEMO_PASSWORD, auth="digest"))
        basic_server = stack.enter_context(SimulatedCameraServer(provider, DEMO_USER, DEMO_PASSWORD, auth="basic"))
        settings = demo_settings(data_dir, demo_cameras(digest_server, video_file, interval, basic_server))
        _ensure_ledger_key(settings, console)
        console.print(f"simulated cameras on {digest_server.base_url} (digest) and {basic_server.base_url} (basic); starting S3 and the database…")
        context = build_context(settings, stack, classify=classify)
        service = stack.enter_context(SnapshotService(context, maintenance_seconds=5.0))
        _show_progress(service, seconds, console)
        console.print("stopping…")
    _print_summary(settings, started, console)
    _print_logins(settings, console)
    return settings


def _ensure_ledger_key(settings: Settings, console: Console) -> None:
    """The demo signs its ledger checkpoints: make a key pair on first run."""
    from canteen_watch.ledger.checkpoint import PRIVATE_KEY_FILE, keygen

    key_dir = settings.data_dir / "keys"
    if not (key_dir / PRIVATE_KEY_FILE).exists():
        keygen(key_dir)
        console.print(f"made a ledger signing key in {key_dir} (the private key never enters the database)")


def _show_progress(service: SnapshotService, seconds: float, console: Console) -> None:
    stop = threading.Event()
    with Progress(TextColumn("[bold]demo[/bold]"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.fields[tally]}"), console=console) as progress:
        task = progress.add_task("demo", total=seconds, tally="")
        begin = time.monotonic()
        try:
            while not stop.wait(0.5):
                elapsed = time.monotonic() - begin
                tally = ", ".join(f"{k} {v}" for k, v in sorted(service.outcomes.items())) or "waiting for the first slot"
                progress.update(task, completed=min(elapsed, seconds), tally=tally)
                if elapsed >= seconds:
                    break
        except KeyboardInterrupt:
            console.print("interrupted; shutting down cleanly")


def _print_logins(settings: Settings, console: Console) -> None:
    """One user per role, so a newcomer can do each role's job in the dashboard."""
    from canteen_watch.dashboard.seed import seed_demo_users

    table = Table(title="dashboard logins (demo only)")
    for column in ("user", "password", "role", "jurisdiction"):
        table.add_column(column, no_wrap=True)
    for username, password, role, scope in seed_demo_users(settings):
        table.add_row(username, password, role, scope)
    console.print(table)


def _print_summary(settings: Settings, started: Any, console: Console) -> None:
    from canteen_watch.runtime import open_database

    engine, sessions = open_database(settings, migrate=False)
    report = collect_status(sessions, settings)
    with sessions() as session:
        events = session.scalars(select(CameraEventRow).where(CameraEventRow.at >= started).order_by(CameraEventRow.at)).all()
    engine.dispose()
    table = Table(title="snapshots per camera (all runs in this data folder)")
    for column in ("camera", "site", "stored", "spooled", "failed", "health"):
        table.add_column(column, no_wrap=True)
    for camera in report.cameras:
        table.add_row(camera.camera_id, camera.site_id, str(camera.stored), str(camera.spooled), str(camera.failed), "online" if camera.online else "offline")
    console.print(table)
    for camera in report.cameras:
        if camera.last_error:
            console.print(f"  last error of {camera.camera_id}: {camera.last_error}", highlight=False)
    console.print(f"health events this run: {len(events)}")
    for event in events[:20]:
        console.print(f"  {event.at:%H:%M:%S} {event.camera_id}: {event.kind} — {event.detail}", highlight=False)
    config = settings.data_dir / "demo.toml"
    console.print(f"data: {settings.data_dir} (SQLite {settings.database_url.removeprefix('sqlite:///')}, S3 data {settings.data_dir / 's3'}, spool depth {report.spool_files})", highlight=False)
    console.print(f"status:    canteen-watch status -c {config}", highlight=False)
    console.print(f"ledger:    canteen-watch -c {config} ledger verify", highlight=False)
    console.print(f"dashboard: canteen-watch dashboard -c {config}", highlight=False)
