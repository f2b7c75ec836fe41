"""Dashboard benchmark: page run times (Streamlit AppTest) over a city-sized SQLite database.

    python bench/dashboard.py                                   # 1M snapshots, 100k violations, 3,000 cameras
    python bench/dashboard.py --snapshots 100000 --violations 10000 --cameras 300
    python bench/dashboard.py --keep /tmp/cwbench && python bench/dashboard.py --reuse /tmp/cwbench

Seeds a fresh SQLite file (migrated schema, bulk inserts): sites (three cameras each) in twelve
districts, camera health, a month of snapshots, violations in every state with their detections,
one signed ledger entry per case, care institutions and one user per role. Then it runs every
page of ``streamlit_app.py`` as the administrator (city-wide: the largest aggregates) through
``AppTest``: a cold run (empty caches) and a warm run (cached aggregates) per page.

Object storage points at a closed port, so pages that show snapshots take the "image
unavailable" path: page times measure the database and the app, not S3. The last line printed is
one JSON object with every figure. Target: overview < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tomli_w  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAGES = ("overview", "review", "rectification", "cameras", "institutions", "audit", "models")
LABELS = (("pest", 1, 24), ("open_storage", 2, 72), ("no_mask", 2, 72), ("no_hat", 3, 168))
STATES = (("open", 0.2), ("rectification_due", 0.2), ("rectification_submitted", 0.1), ("closed", 0.35), ("dismissed", 0.15))
DISTRICTS = ("Central", "North", "South", "East", "West", "Riverside", "Hillview", "Harbour", "Lakeside", "Oldtown", "Newtown", "Airport")
ROOMS = ("operation", "storage", "washing", "preparation", "serving")
PASSWORD = "bench-password-2026"


def ts(moment: datetime) -> str:
    """How SQLAlchemy stores a DateTime in SQLite (naive UTC)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path) -> Path:
    data = {
        "data_dir": str(folder / "data"),
        "timezone": "Asia/Shanghai",
        "storage": {"endpoint": f"127.0.0.1:{closed_port()}", "timeout_seconds": 0.5},
        "database": {"url": f"sqlite:///{folder / 'bench.db'}"},
    }
    path = folder / "bench.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def seed(config: Path, *, snapshots: int, violations: int, cameras: int, institutions: int, rng: random.Random) -> dict[str, float]:
    """Bulk-insert the data set; returns seconds per part."""
    from canteen_watch.auth import hash_password
    from canteen_watch.config import load_settings
    from canteen_watch.db.base import write_transaction
    from canteen_watch.ledger.checkpoint import keygen
    from canteen_watch.ledger.sink import ledger_sink
    from canteen_watch.ledger.store import Event
    from canteen_watch.registry.codes import credit_check_character
    from canteen_watch.runtime import open_database

    timings: dict[str, float] = {}
    started = time.perf_counter()
    settings = load_settings(config)
    keygen(settings.data_dir / "keys")
    engine, sessions = open_database(settings)
    engine.dispose()
    timings["migrate_s"] = time.perf_counter() - started
    db = sqlite3.connect(str(Path(settings.database_url.removeprefix("sqlite:///"))))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(timezone.utc)

    # sites, cameras, health, events ------------------------------------------------------
    t0 = time.perf_counter()
    n_sites = max(1, cameras // 3)
    sites = []
    for i in range(n_sites):
        kind = "care_institution" if i % 4 == 3 else "school_canteen"
        sites.append((f"site-{i:05d}", f"{'Care' if kind == 'care_institution' else 'School'} {i:05d}", kind, DISTRICTS[i % len(DISTRICTS)]))
    db.executemany("INSERT INTO sites (id, name, kind, district) VALUES (?, ?, ?, ?)", sites)
    cams = [(f"cam-{i:05d}", sites[i % n_sites][0], ROOMS[i % len(ROOMS)], f"rtsp://10.0.{i // 250}.{i % 250}/stream", 1, "[]") for i in range(cameras)]
    db.executemany("INSERT INTO cameras (id, site_id, room, source, enabled, rois) VALUES (?, ?, ?, ?, ?, ?)", cams)
    health, events = [], []
    for camera_id, *_ in cams:
        online = rng.random() > 0.04
        last = now - timedelta(minutes=rng.randrange(1, 30)) if online else now - timedelta(hours=rng.randrange(3, 48))
        alert = rng.choice(("blurred", "dark", "blurred,dark")) if rng.random() < 0.02 else None
        health.append((camera_id, int(online), 0 if online else 5, 3, 0, alert, ts(last), None if online else ts(now - timedelta(minutes=5)), None if online else "timeout after 10 s", ts(last)))
        if not online:
            events.append((camera_id, "offline", ts(last + timedelta(minutes=15)), "3 consecutive failed grabs"))
        if alert:
            events.append((camera_id, "quality_alert", ts(now - timedelta(hours=2)), f"{alert} for 3 consecutive frames"))
    db.executemany(
        "INSERT INTO camera_health (camera_id, online, consecutive_failures, consecutive_successes, consecutive_bad_quality, quality_alert, last_success_at, last_failure_at, last_error, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        health,
    )
    db.executemany("INSERT INTO camera_events (camera_id, kind, at, detail) VALUES (?, ?, ?, ?)", events)
    db.commit()
    timings["cameras_s"] = time.perf_counter() - t0

    # snapshots: a month, evenly per camera ------------------------------------------------
    t0 = time.perf_counter()
    per_camera = max(1, snapshots // cameras)
    span = timedelta(days=30)
    step = span / per_camera
    site_of = {c[0]: c[1] for c in cams}
    batch: list[tuple] = []
    snapshot_ids: list[tuple[str, int, datetime]] = []
    next_id = 1
    for index, (camera_id, *_rest) in enumerate(cams):
        offset = timedelta(seconds=rng.randrange(0, max(1, int(step.total_seconds()))))
        for k in range(per_camera):
            slot = now - span + step * k + offset
            failed = rng.random() < 0.03
            site_id = site_of[camera_id]
            if failed:
                batch.append((next_id, camera_id, site_id, ts(slot), "failed", ts(slot), None, "timeout", 1, None, None, None, None, None, None, None, None, None, None, None, None, None))
            else:
                blurred, dark = rng.random() < 0.01, rng.random() < 0.01
                key = f"{site_id}/{camera_id}/{slot:%Y/%m/%d/%H%M%S}.jpg"
                batch.append((next_id, camera_id, site_id, ts(slot), "stored", ts(slot), ts(slot), None, 1, "canteen-snapshots", key, None, "%064x" % rng.getrandbits(256), 180_000, 1280, 720, int(blurred), int(dark), 0, "ok", "pest-20261204211436-02727e82", 120.0))
                snapshot_ids.append((camera_id, next_id, slot))
            next_id += 1
            if len(batch) >= 50_000:
                _insert_snapshots(db, batch)
                batch.clear()
        if index % 500 == 0:
            db.commit()
    _insert_snapshots(db, batch)
    db.commit()
    timings["snapshots_s"] = time.perf_counter() - t0

    # violations with detections ------------------------------------------------------------
    t0 = time.perf_counter()
    stored = snapshot_ids
    cumulative, total = [], 0.0
    for state, weight in STATES:
        total += weight
        cumulative.append((total, state))
    vrows, drows, links, ledger_events = [], [], [], []
    for vid in range(1, violations + 1):
        camera_id, snapshot_id, seen = stored[rng.randrange(len(stored))]
        label, tier, hours = rng.choice(LABELS)
        pick = rng.random()
        state = next(s for c, s in cumulative if pick <= c)
        due = seen + timedelta(hours=hours)
        overdue = state in ("open", "rectification_due") and due < now
        escalation = (2 if now - due > timedelta(hours=hours) else 1) if overdue else 0
        reviewed = state != "open"
        outcome = None if not reviewed else ("false_positive" if state == "dismissed" else "confirmed")
        closed = ts(seen + timedelta(hours=hours / 2)) if state in ("closed", "dismissed") else None
        rounds = 1 if state in ("rectification_submitted", "closed") else 0
        vrows.append((
            vid, site_of[camera_id], camera_id, label, tier, state, ts(seen), ts(seen), ts(seen), ts(due), closed, 1, round(rng.uniform(0.5, 0.99), 3),
            snapshot_id, snapshot_id, escalation, ts(due) if escalation else None, outcome, None, ts(seen + timedelta(hours=1)) if reviewed else None, None, rounds, 0, ts(seen),
        ))
        drows.append((vid, snapshot_id, label, round(rng.uniform(0.5, 0.99), 3), 400.0, 200.0, 560.0, 380.0, "pest-20261204211436-02727e82", None, "{}"))
        links.append((vid, vid, snapshot_id))
        ledger_events.append(Event(actor="system:workflows", action="violation.opened", subject=f"violation:{vid}", payload={"site": site_of[camera_id], "camera": camera_id, "label": label, "tier": tier}))
    db.executemany(
        "INSERT INTO violations (id, site_id, camera_id, label, tier, state, opened_at, first_seen_at, last_seen_at, due_at, closed_at, detection_count, max_score, first_snapshot_id, last_snapshot_id, escalation_level, escalated_at, review_outcome, review_reason, reviewed_at, reviewed_by, rectification_round, evidence_hold, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vrows,
    )
    db.executemany("INSERT INTO detections (id, snapshot_id, label, score, x1, y1, x2, y2, model_version, roi_id, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", drows)
    db.executemany("INSERT INTO violation_detections (detection_id, violation_id, snapshot_id) VALUES (?, ?, ?)", links)
    db.commit()
    timings["violations_s"] = time.perf_counter() - t0

    # institutions and users ----------------------------------------------------------------
    t0 = time.perf_counter()
    care = [s for s in sites if s[2] == "care_institution"][:institutions]
    rows = []
    for i, (site_id, name, _kind, district) in enumerate(care):
        first17 = f"91110108MA{i:07d}"
        rows.append((site_id, first17 + credit_check_character(first17), f"JY1110108{i:07d}", name, f"{i} Garden Road", district, "Wang Fang", "13800138000", 40, 1, "Mon-Fri 16:00-19:30", ("registered", "submitted", "suspended")[i % 3], None, ts(now), None, ts(now), None, ts(now)))
    db.executemany(
        "INSERT INTO care_institutions (site_id, credit_code, licence_no, name, address, district, legal_rep, contact_phone, capacity, serves_meals, opening_hours, status, status_reason, status_changed_at, status_changed_by, created_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    digest = hash_password(PASSWORD)
    for uid, (name, role, level, ref) in enumerate((("admin", "admin", "city", "*"), ("inspector", "inspector", "district", "Central"), ("manager", "canteen_manager", "site", sites[0][0]), ("auditor", "auditor", "city", "*"), ("registrar", "registrar", "district", "North")), start=1):
        db.execute("INSERT INTO users (id, username, password_hash, role, active, created_at, failed_logins) VALUES (?, ?, ?, ?, 1, ?, 0)", (uid, name, digest, role, ts(now)))
        db.execute("INSERT INTO user_scopes (user_id, level, ref) VALUES (?, ?, ?)", (uid, level, ref))
    db.commit()
    db.close()
    timings["institutions_users_s"] = time.perf_counter() - t0

    # the ledger: one signed entry per case --------------------------------------------------
    t0 = time.perf_counter()
    engine, sessions = open_database(settings, migrate=False)
    sink = ledger_sink(settings, sessions)
    sink.ledger.checkpoint_interval = None
    for start in range(0, len(ledger_events), 10_000):
        with write_transaction(sessions) as session:
            sink.ledger.append_many(session, ledger_events[start:start + 10_000])
    with write_transaction(sessions) as session:
        sink.ledger.checkpoint(session)
    engine.dispose()
    timings["ledger_s"] = time.perf_counter() - t0
    return {k: round(v, 2) for k, v in timings.items()}


def _insert_snapshots(db: sqlite3.Connection, batch: list[tuple]) -> None:
    db.executemany(
        "INSERT INTO snapshots (id, camera_id, site_id, slot_time, status, claimed_at, captured_at, failure_reason, attempts, bucket, key, version_id, sha256, size, width, height, blurred, dark, blocked, classifier_status, model_version, sharpness) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )


def time_pages(config: Path) -> dict[str, dict[str, float]]:
    """Cold and warm AppTest run time of every page, as the city-wide administrator."""
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from streamlit.testing.v1 import AppTest

    from canteen_watch.auth import get_user
    from canteen_watch.config import load_settings
    from canteen_watch.runtime import open_database

    os.environ["CANTEEN_WATCH_CONFIG"] = str(config)
    settings = load_settings(config)
    engine, sessions = open_database(settings, migrate=False)
    with sessions() as session:
        admin = get_user(session, 1)
    engine.dispose()
    results: dict[str, dict[str, float]] = {}
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=300)
    at.session_state["cw_lang"] = "zh-CN"
    start = time.perf_counter()
    at.run()  # the login page: builds the services (engine, ledger, migration check)
    results["_startup"] = {"cold_s": round(time.perf_counter() - start, 3)}
    at.session_state["cw_user"] = admin
    for name in PAGES:
        figures = {}
        for phase in ("cold_s", "warm_s"):
            if name != PAGES[0] or phase != "cold_s":  # the first page is where the administrator lands
                at.switch_page(f"canteen_watch/dashboard/pages/{name}.py")
            start = time.perf_counter()
            at.run()
            figures[phase] = round(time.perf_counter() - start, 3)
            if at.exception:
                figures["exception"] = str(at.exception[0].value)[:200]
            elif at.error:
                figures["error"] = str(at.error[0].value)[:200]
        results[name] = figures
        print(f"{name:14s} cold {figures['cold_s']:6.3f} s   warm {figures['warm_s']:6.3f} s", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=1_000_000, help="snapshots to seed (default 1,000,000)")
    parser.add_argument("--violations", type=int, default=100_000, help="violations to seed (default 100,000)")
    parser.add_argument("--cameras", type=int, default=3_000, help="cameras to seed, three per site (default 3,000)")
    parser.add_argument("--institutions", type=int, default=500, help="care institutions in the registry (default 500)")
    parser.add_argument("--keep", type=Path, default=None, help="seed into this folder and keep it (default: a temporary folder, removed at the end)")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--reuse", type=Path, default=None, help="time the pages of a folder seeded before with --keep (no seeding)")
    args = parser.parse_args()
    if args.reuse is not None:
        config = args.reuse / "bench.toml"
        if not config.is_file():
            parser.error(f"{config} not found: seed it first with --keep {args.reuse}")
        pages = time_pages(config)
        print(json.dumps({"reused": str(args.reuse), "db_mb": round((args.reuse / "bench.db").stat().st_size / 2**20, 1), "pages": pages, "overview_target_met": pages["overview"]["cold_s"] < 2.0}))
        return 0
    if min(args.snapshots, args.violations, args.cameras) < 1:
        parser.error("--snapshots, --violations and --cameras must be at least 1")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cw-bench-dashboard-"))
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "bench.db").exists():
        parser.error(f"{folder / 'bench.db'} exists; give an empty folder")
    config = write_config(folder)
    print(f"seeding {args.snapshots:,} snapshots, {args.violations:,} violations, {args.cameras:,} cameras into {folder / 'bench.db'} …", flush=True)
    try:
        started = time.perf_counter()
        timings = seed(config, snapshots=args.snapshots, violations=args.violations, cameras=args.cameras, institutions=args.institutions, rng=random.Random(args.seed))
        seed_s = round(time.perf_counter() - started, 2)
        print(f"seeded in {seed_s} s ({', '.join(f'{k} {v}' for k, v in timings.items())}); timing pages …", flush=True)
        pages = time_pages(config)
        db_mb = round((folder / "bench.db").stat().st_size / 2**20, 1)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    result = {
        "snapshots": args.snapshots, "violations": args.violations, "cameras": args.cameras, "institutions": args.institutions,
        "seed_s": seed_s, "seed_parts": timings, "db_mb": db_mb,
        "pages": pages, "overview_target_met": pages["overview"]["cold_s"] < 2.0,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
