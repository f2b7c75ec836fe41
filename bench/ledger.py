"""Ledger benchmark on SQLite: append rates, full verify, proof times at 10k / 100k / 1M entries.

    python bench/ledger.py                       # 10k, 100k and 1M entries
    python bench/ledger.py --max-entries 100000  # stop at 100k

The last line printed is one JSON object with every figure. Targets: >= 2,000 appends/s
batched, full verify of 1M entries < 30 s, inclusion/consistency proof < 10 ms at 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canteen_watch.db.base import Base, make_engine, make_session_factory, write_transaction  # noqa: E402
from canteen_watch.ledger.checkpoint import keygen, load_signer  # noqa: E402
from canteen_watch.ledger.models import checkpoints_table, entries_table, nodes_table  # noqa: E402
from canteen_watch.ledger.store import Ledger  # noqa: E402
from canteen_watch.ledger.verify import verify_ledger  # noqa: E402

MILESTONES = (10_000, 100_000, 1_000_000)


def event(i: int, rng: random.Random) -> dict[str, object]:
    evidence = None
    if i % 4 == 0:
        evidence = {"bucket": "canteen-snapshots", "key": f"site-a/cam-{i % 16}/2026/12/04/{i}.jpg", "sha256": "%064x" % rng.getrandbits(256), "version_id": None}
    return {
        "actor": "system:pipeline" if i % 5 else "role:inspector",
        "action": ("snapshot.stored", "detection.recorded", "violation.opened", "violation.reviewed")[i % 4],
        "subject": f"violation:{i // 50}",
        "payload": {"camera": f"cam-{i % 16}", "label": "no_hat", "score_ppm": rng.randrange(10**6), "n": i},
        "evidence": evidence,
    }


def timed_ms(fn, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 3), "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 3), "max_ms": round(samples[-1], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-entries", type=int, default=1_000_000, help="largest milestone to build (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=1000, help="entries per transaction for batched appends")
    parser.add_argument("--single", type=int, default=2000, help="single appends (one transaction each) to time")
    parser.add_argument("--proofs", type=int, default=200, help="proofs timed per milestone")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the SQLite file (default: a temp folder)")
    parser.add_argument("--db-url", default=None, help="another database (e.g. PostgreSQL); its ledger tables must be absent or empty and are dropped afterwards")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cw-ledger-bench-", dir=args.dir))
    keygen(folder / "keys", "bench.canteen-watch/ledger")
    engine = make_engine(args.db_url or f"sqlite:///{folder / 'ledger.db'}")
    tables = [entries_table, nodes_table, checkpoints_table]
    Base.metadata.create_all(engine, tables=tables)
    with engine.connect() as connection:
        if connection.execute(entries_table.select().limit(1)).first() is not None:
            print("the database already holds ledger entries; use an empty one", file=sys.stderr)
            return 2
    factory = make_session_factory(engine)
    signer = load_signer(folder / "keys")
    ledger = Ledger(signer=signer, checkpoint_every=1000, checkpoint_interval=None)
    rng = random.Random(1)
    results: dict[str, object] = {"database": engine.dialect.name, "batch_size": args.batch, "cpus": os.cpu_count()}

    # Single appends: one transaction (BEGIN IMMEDIATE ... COMMIT) per entry.
    start = time.perf_counter()
    for i in range(args.single):
        with write_transaction(factory) as session:
            ledger.append(session, **event(i, rng))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    results["append_single_per_s"] = round(args.single / elapsed, 1)
    print(f"single appends: {args.single} in {elapsed:.2f} s = {args.single / elapsed:,.0f}/s", flush=True)

    size = args.single
    sizes: dict[str, object] = {}
    batched_total, batched_time = 0, 0.0
    for milestone in [m for m in MILESTONES if m <= args.max_entries] or [args.max_entries]:
        start = time.perf_counter()
        added = 0
        while size < milestone:
            n = min(args.batch, milestone - size)
            events = [event(size + k, rng) for k in range(n)]
            with write_transaction(factory) as session:
                ledger.append_many(session, events)
            size += n
            added += n
        grow = time.perf_counter() - start
        batched_total += added
        batched_time += grow
        figures: dict[str, object] = {"batched_append_per_s": round(added / grow, 1) if grow else None}
        print(f"{milestone:>9,} entries: built (+{added:,}) at {added / grow if grow else 0:,.0f}/s", flush=True)

        start = time.perf_counter()
        with factory() as session:
            report = verify_ledger(session, signer.verifier)
        verify_s = time.perf_counter() - start
        assert report.ok, report.summary()
        figures["verify_s"] = round(verify_s, 2)
        figures["verify_entries_per_s"] = round(milestone / verify_s)
        print(f"{'':>9}  full verify {verify_s:.2f} s ({report.checkpoints_checked} checkpoints)", flush=True)

        with factory() as session:
            seqs = [rng.randrange(milestone) for _ in range(args.proofs)]
            olds = [rng.randrange(1, milestone) for _ in range(args.proofs)]
            it_inc = iter(seqs)
            it_con = iter(olds)
            inc = timed_ms(lambda: ledger.inclusion_proof(session, next(it_inc), milestone).verify(), args.proofs)
            con = timed_ms(lambda: ledger.consistency_proof(session, next(it_con), milestone).verify(), args.proofs)
            root = timed_ms(lambda: ledger.root(session, milestone), 50)
        figures["inclusion_proof"] = inc
        figures["consistency_proof"] = con
        figures["root"] = root
        print(f"{'':>9}  inclusion proof {inc['median_ms']} ms median ({inc['p95_ms']} p95), consistency {con['median_ms']} ms ({con['p95_ms']} p95)", flush=True)

        start = time.perf_counter()
        n_single = 200
        for i in range(n_single):
            with write_transaction(factory) as session:
                ledger.append(session, **event(size + i, rng))  # type: ignore[arg-type]
        figures["append_single_per_s"] = round(n_single / (time.perf_counter() - start), 1)
        size += n_single
        sizes[str(milestone)] = figures

    results["append_batched_per_s"] = round(batched_total / batched_time, 1) if batched_time else None
    results["sizes"] = sizes
    if not args.db_url:
        results["db_bytes"] = os.path.getsize(folder / "ledger.db")
    biggest = sizes.get("1000000")
    results["targets"] = {"append_batched_per_s": ">= 2000", "verify_1m_s": "< 30", "proof_ms_at_1m": "< 10"}
    if isinstance(biggest, dict):
        results["meets_targets"] = bool(
            (results["append_batched_per_s"] or 0) >= 2000
            and biggest["verify_s"] < 30
            and biggest["inclusion_proof"]["p95_ms"] < 10
            and biggest["consistency_proof"]["p95_ms"] < 10
        )
    if args.db_url:
        Base.metadata.drop_all(engine, tables=tables)
    engine.dispose()
    for path in folder.rglob("*"):
        if path.is_file():
            path.unlink()
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
