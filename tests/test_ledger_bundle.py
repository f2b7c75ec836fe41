"""Evidence bundles: export, offline verification, and every kind of tampering with the zip."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canteen_watch.db.base import write_transaction
from canteen_watch.ledger.bundle import BundleError, export_bundle, folder_reader
from canteen_watch.ledger.checkpoint import NoteSigner, sign_checkpoint
from canteen_watch.ledger.offline_verify import main as verify_main
from canteen_watch.ledger.offline_verify import verify_bundle
from canteen_watch.ledger.store import correct_entry
from tests.test_ledger_support import LedgerEnv, env, ledger_key_dir, sqlite_env  # noqa: F401


def _jpeg(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(str(n).encode()).digest() * 8 + b"\xff\xd9"


def populate(env: LedgerEnv, images: Path) -> dict[str, object]:
    """Violation 17 with two images and a correction, plus unrelated traffic and checkpoints."""
    env.ledger.checkpoint_every = 5
    for n in range(4):
        (images / "snaps" / "cam-1").mkdir(parents=True, exist_ok=True)
        (images / "snaps" / "cam-1" / f"{n}.jpg").write_bytes(_jpeg(n))

    def evidence(n: int) -> dict[str, str]:
        return {"bucket": "snaps", "key": f"cam-1/{n}.jpg", "sha256": hashlib.sha256(_jpeg(n)).hexdigest(), "version_id": f"v{n}"}

    env.append_events(6, subject="camera:cam-1")
    with write_transaction(env.factory) as session:
        opened = env.ledger.append(
            session, actor="system:pipeline", action="violation.opened", subject="violation:17", payload={"label": "no_hat"}, evidence=evidence(0)
        )
        env.ledger.append(session, actor="system:pipeline", action="snapshot.stored", subject="snapshot:9", evidence=evidence(3))
    env.append_events(3, subject="camera:cam-2")
    with write_transaction(env.factory) as session:
        env.ledger.append(
            session, actor="role:kitchen-manager", action="violation.rectified", subject="violation:17", payload={"by": "role:chef"}, evidence=evidence(1)
        )
        correct_entry(session, env.ledger, opened.seq, actor="role:inspector", reason="label was no_mask")
    env.append_events(2, subject="camera:cam-1")
    return {"opened": opened.seq}


def export(env: LedgerEnv, images: Path, out: Path, **options: object):  # type: ignore[no-untyped-def]
    with write_transaction(env.factory) as session:
        return export_bundle(session, env.ledger, out, reader=folder_reader(images), **({"violation_id": 17} | options))


def rewrite(src: Path, dst: Path, changes: dict[str, bytes | None]) -> Path:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            if info.filename in changes:
                data = changes[info.filename]
                if data is not None:
                    new.writestr(info.filename, data)
            else:
                new.writestr(info, old.read(info.filename))
        for name, data in changes.items():
            if name not in old.namelist() and data is not None:
                new.writestr(name, data)
    return dst


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def test_export_and_offline_verify(env: LedgerEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(env, tmp_path / "img")
    summary = export(env, tmp_path / "img", tmp_path / "v17.zip")
    assert summary.entries == 3 and summary.images == 2
    lines = member(tmp_path / "v17.zip", "entries.jsonl").decode().splitlines()
    actions = [json.loads(line)["action"] for line in lines]
    assert actions == ["violation.opened", "violation.rectified", "ledger.correction"]
    report = verify_bundle(tmp_path / "v17.zip", vkey=env.verifier.vkey)
    assert report.ok, report.problems
    assert report.entries_verified == 3 and report.images_verified == 2 and report.checkpoints_verified >= 3
    assert verify_main([str(tmp_path / "v17.zip"), "--vkey", env.verifier.vkey]) == 0
    assert "OK: 3 entries and 2 images" in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "v17.zip") as archive:
        names = set(archive.namelist())
    assert {"README.txt", "manifest.json", "proofs.json", "checkpoint.txt", "keys/ledger.vkey", "keys/ledger-public-key.pem"} <= names
    assert "canteen-watch-verify" in member(tmp_path / "v17.zip", "README.txt").decode()


def test_date_range_export(sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    populate(sqlite_env, tmp_path / "img")
    with sqlite_env.factory() as session:
        day = next(sqlite_env.ledger.entries(session)).ts[:10]
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()  # in case the test runs over midnight UTC
    summary = export(sqlite_env, tmp_path / "img", tmp_path / "day.zip", violation_id=None, date_from=day, date_to=next_day)
    assert summary.entries == 15 and summary.images == 3
    assert verify_bundle(tmp_path / "day.zip", vkey=sqlite_env.verifier.vkey).ok
    with pytest.raises(BundleError):
        export(sqlite_env, tmp_path / "img", tmp_path / "none.zip", violation_id=None, date_from="1999-01-01", date_to="1999-01-02")


@pytest.fixture
def bundle(sqlite_env: LedgerEnv, tmp_path: Path) -> Path:
    populate(sqlite_env, tmp_path / "img")
    export(sqlite_env, tmp_path / "img", tmp_path / "good.zip")
    return tmp_path / "good.zip"


def _image_name(path: Path) -> str:
    return next(n for n in zipfile.ZipFile(path).namelist() if n.startswith("images/"))


def _fails(path: Path, vkey: str, needle: str, **options: object) -> None:
    report = verify_bundle(path, vkey=vkey, **options)  # type: ignore[arg-type]
    assert not report.ok
    assert any(needle in p for p in report.problems), report.problems


def test_image_swapped_in_the_bundle_is_detected(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    name = _image_name(bundle)
    swapped = bytearray(member(bundle, name))
    swapped[10] ^= 1
    bad = rewrite(bundle, tmp_path / "bad.zip", {name: bytes(swapped)})
    _fails(bad, sqlite_env.verifier.vkey, "image swapped")
    assert verify_main([str(bad), "--vkey", sqlite_env.verifier.vkey]) == 1


def test_image_swapped_in_storage_stops_the_export(sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    populate(sqlite_env, tmp_path / "img")
    (tmp_path / "img" / "snaps" / "cam-1" / "1.jpg").write_bytes(_jpeg(99))
    with pytest.raises(BundleError, match="swapped"):
        export(sqlite_env, tmp_path / "img", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_missing_images(sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    populate(sqlite_env, tmp_path / "img")
    (tmp_path / "img" / "snaps" / "cam-1" / "1.jpg").unlink()
    with pytest.raises(BundleError, match="cannot read"):
        export(sqlite_env, tmp_path / "img", tmp_path / "x.zip")
    export(sqlite_env, tmp_path / "img", tmp_path / "x.zip", allow_missing_images=True)
    report = verify_bundle(tmp_path / "x.zip", vkey=sqlite_env.verifier.vkey)
    assert report.ok and any("missing" in w for w in report.warnings)
    assert not verify_bundle(tmp_path / "x.zip", vkey=sqlite_env.verifier.vkey, strict=True).ok


@pytest.mark.parametrize("field", ["action", "ts", "payload", "evidence", "prev_hash", "seq"])
def test_altered_entry_is_detected(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path, field: str) -> None:
    lines = member(bundle, "entries.jsonl").split(b"\n")
    entry = json.loads(lines[0])
    if field == "evidence":
        entry["evidence"]["sha256"] = "0" * 64
    elif field == "seq":
        entry["seq"] += 1
    elif field == "payload":
        entry["payload"]["label"] = "no_mask"
    else:
        value = entry[field]
        entry[field] = value[:-2] + ("0" if value[-2] != "0" else "1") + value[-1]
    lines[0] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    bad = rewrite(bundle, tmp_path / "bad.zip", {"entries.jsonl": b"\n".join(lines)})
    _fails(bad, sqlite_env.verifier.vkey, "not proven" if field != "seq" else "seq")


def test_one_byte_of_an_entry_line(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    raw = bytearray(member(bundle, "entries.jsonl"))
    for position in range(0, raw.index(b"\n"), 7):
        changed = bytearray(raw)
        changed[position] = ord("#") if changed[position] != ord("#") else ord("$")
        bad = rewrite(bundle, tmp_path / f"b{position}.zip", {"entries.jsonl": bytes(changed)})
        assert not verify_bundle(bad, vkey=sqlite_env.verifier.vkey).ok, position


@pytest.mark.parametrize("how", ["element", "extra", "missing", "index", "size"])
def test_malformed_proofs_in_the_bundle(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path, how: str) -> None:
    proofs = json.loads(member(bundle, "proofs.json"))
    seq, path = next(iter(proofs["inclusion"].items()))
    if how == "element":
        path[0] = ("1" if path[0][0] != "1" else "2") + path[0][1:]
    elif how == "extra":
        path.append("00" * 32)
    elif how == "missing":
        path.pop()
    elif how == "index":
        other = next(k for k in proofs["inclusion"] if k != seq)
        proofs["inclusion"][seq], proofs["inclusion"][other] = proofs["inclusion"][other], proofs["inclusion"][seq]
    else:
        proofs["tree_size"] += 1
    bad = rewrite(bundle, tmp_path / "bad.zip", {"proofs.json": json.dumps(proofs).encode()})
    report = verify_bundle(bad, vkey=sqlite_env.verifier.vkey)
    assert not report.ok, how


def test_consistency_proof_of_an_earlier_checkpoint_altered(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    proofs = json.loads(member(bundle, "proofs.json"))
    item = proofs["consistency"][0]
    item["path"][-1] = "ff" * 32
    _fails(rewrite(bundle, tmp_path / "bad.zip", {"proofs.json": json.dumps(proofs).encode()}), sqlite_env.verifier.vkey, "earlier checkpoint")


def test_forged_and_resigned_checkpoints(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    vkey = sqlite_env.verifier.vkey
    note = member(bundle, "checkpoint.txt").decode()
    origin, size, root = note.split("\n")[:3]
    forged = note.replace(f"\n{size}\n", f"\n{int(size) + 1}\n")
    _fails(rewrite(bundle, tmp_path / "forged.zip", {"checkpoint.txt": forged.encode()}), vkey, "forged or re-signed")
    attacker = NoteSigner(origin, Ed25519PrivateKey.generate())
    resigned = sign_checkpoint(attacker, int(size), b"\x00" * 32).note
    changes = {
        "checkpoint.txt": resigned.encode(),
        "keys/ledger.vkey": (attacker.vkey + "\n").encode(),
        "keys/ledger-public-key.pem": attacker.verifier.public_pem(),
    }
    bad = rewrite(bundle, tmp_path / "resigned.zip", changes)
    _fails(bad, vkey, "forged or re-signed")  # the pinned key catches it
    unpinned = verify_bundle(bad)
    assert any("trusting the key inside the bundle" in w for w in unpinned.warnings)


def test_trusted_checkpoints(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    vkey = sqlite_env.verifier.vkey
    with sqlite_env.factory() as session:
        checkpoints = sqlite_env.ledger.checkpoints(session)
    older = checkpoints[1].note
    (tmp_path / "older.checkpoint").write_text(older)
    assert verify_bundle(bundle, vkey=vkey, trusted_checkpoints=[older]).ok
    assert verify_main([str(bundle), "--vkey", vkey, "--trusted-checkpoint", str(tmp_path / "older.checkpoint")]) == 0
    fork = sign_checkpoint(sqlite_env.signer, checkpoints[1].size, b"\x42" * 32).note
    _fails(bundle, vkey, "not consistent", trusted_checkpoints=[fork])
    newer = sign_checkpoint(sqlite_env.signer, checkpoints[-1].size + 10, b"\x42" * 32).note
    _fails(bundle, vkey, "newer than the bundle", trusted_checkpoints=[newer])
    same = sign_checkpoint(sqlite_env.signer, checkpoints[-1].size, b"\x42" * 32).note
    _fails(bundle, vkey, "forked or rewritten", trusted_checkpoints=[same])


def test_removed_entry_and_unreadable_bundles(bundle: Path, sqlite_env: LedgerEnv, tmp_path: Path) -> None:
    lines = member(bundle, "entries.jsonl").split(b"\n")
    bad = rewrite(bundle, tmp_path / "bad.zip", {"entries.jsonl": b"\n".join(lines[1:])})
    _fails(bad, sqlite_env.verifier.vkey, "differ")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert verify_main([str(tmp_path / "junk.zip")]) == 2
    assert verify_main([str(tmp_path / "absent.zip")]) == 2


def test_offline_verifier_imports_no_database_or_config_code() -> None:
    code = (
        "import sys, canteen_watch.ledger.offline_verify\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'psycopg', 'typer', 'pydantic', 'minio', 'requests')"
        " or m in ('canteen_watch.config', 'canteen_watch.db')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
