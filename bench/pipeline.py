"""Throughput of capture → store → record (classifier off) with 1, 10 and 100 simulated cameras.

Runs everything for real on 127.0.0.1: the project's simulated HTTP cameras (digest auth), the
embedded SeaweedFS S3 server and SQLite (or ``--db-url``). Each camera takes ``--slots`` slots;
slots run on a thread pool like the scheduler's. Prints a line per configuration and, as its
last line, one JSON object with snapshots/s and the share of time per stage.

    python bench/pipeline.py [--cameras 1,10,100] [--slots 20] [--workers 16] [--db-url URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canteen_watch.config import load_settings  # noqa: E402
from canteen_watch.pipeline import process_slot  # noqa: E402
from canteen_watch.runtime import build_context  # noqa: E402
from canteen_watch.s3server import EmbeddedS3, find_free_base  # noqa: E402
from snapshots.simulated import SimulatedCameraServer  # noqa: E402

STAGES = ("claim", "capture", "quality", "store", "classify", "record")


def run_config(n_cameras: int, slots: int, workers: int, s3: EmbeddedS3, cams: SimulatedCameraServer, root: Path, db_url: str | None) -> dict:
    data_dir = root / f"run-{n_cameras}"
    cameras = [
        {"id": f"cam-{i:03d}", "site": f"site-{i % 10}", "source": cams.url_for(f"cam-{i:03d}"), "username": "admin", "password": "bench", "auth": "digest", "timeout_seconds": 10}
        for i in range(n_cameras)
    ]
    sites = [{"id": f"site-{i}", "name": f"Site {i}", "district": "Bench"} for i in range(10)]
    settings = load_settings(
        None,
        data_dir=data_dir,
        sites=sites,
        cameras=cameras,
        storage={"endpoint": s3.endpoint, "access_key": s3.access_key, "secret_key": s3.secret_key, "bucket": f"bench-{n_cameras}"},
        database={"url": db_url} if db_url else {},
    )
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=False)
        jobs = [(cam["id"], base + timedelta(minutes=5 * s)) for s in range(slots) for cam in cameras]
        process_slot(context, cameras[0]["id"], base - timedelta(days=1))  # warm-up: connections, bucket
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(workers, n_cameras)) as pool:
            outcomes = list(pool.map(lambda job: process_slot(context, *job), jobs))
        wall = time.perf_counter() - started
    totals: dict[str, float] = defaultdict(float)
    for outcome in outcomes:
        for stage, ms in outcome.timings_ms.items():
            totals[stage] += ms
    spent = sum(totals.values()) or 1.0
    statuses: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        statuses[outcome.status] += 1
    return {
        "cameras": n_cameras,
        "slots": len(jobs),
        "workers": min(workers, n_cameras),
        "snapshots_per_s": round(statuses["stored"] / wall, 2),
        "wall_s": round(wall, 2),
        "statuses": dict(statuses),
        "stage_share": {stage: round(totals.get(stage, 0.0) / spent, 3) for stage in STAGES},
        "stage_ms_mean": {stage: round(totals.get(stage, 0.0) / len(outcomes), 2) for stage in STAGES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", default="1,10,100", help="comma-separated camera counts")
    parser.add_argument("--slots", type=int, default=20, help="slots per camera (the 100-camera run uses max(2, slots // 10))")
    parser.add_argument("--workers", type=int, default=16, help="thread pool size (the scheduler's capture.max_workers)")
    parser.add_argument("--db-url", default=None, help="database URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        s3 = stack.enter_context(EmbeddedS3(data_dir=root / "s3", port=find_free_base(), access_key="bench", secret_key="bench-secret-key"))
        cams = stack.enter_context(SimulatedCameraServer(None, "admin", "bench", auth="digest"))
        for n in (int(x) for x in args.cameras.split(",")):
            slots = args.slots if n < 100 else max(2, args.slots // 10)
            result = run_config(n, slots, args.workers, s3, cams, root, args.db_url)
            print(f"{n:>4} cameras: {result['snapshots_per_s']:>7.1f} snapshots/s over {result['slots']} slots; share {result['stage_share']}", flush=True)
            results.append(result)
    print(json.dumps({"bench": "pipeline", "db": "postgresql" if args.db_url and "postgres" in args.db_url else "sqlite", "results": results}))


if __name__ == "__main__":
    main()
