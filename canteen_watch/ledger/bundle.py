"""Evidence bundles: a zip an inspector can verify offline with ``canteen-watch-verify``.

Layout::

    README.txt                   how to verify, for the recipient
    manifest.json                what was selected, file hashes, image index (not trusted by itself)
    entries.jsonl                one entry per line: exactly the bytes hashed into the Merkle tree
    proofs.json                  inclusion proof of every entry, consistency proofs from earlier checkpoints
    checkpoint.txt               the signed checkpoint (C2SP signed note) the proofs lead to
    checkpoints/<size>.txt       earlier signed checkpoints, each with a consistency proof
    keys/ledger.vkey             the ledger's public key (C2SP verifier key)
    keys/ledger-public-key.pem   the same key as PEM
    images/<sha256>.<ext>        the images the entries reference, named by their SHA-256

Images are read through a small callable ``reader(bucket, key, version_id) -> bytes`` so this
module does not depend on the S3 client. An image whose bytes do not match the entry's SHA-256
(swapped in S3) stops the export.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from canteen_watch.ledger.checkpoint import SignedCheckpoint, open_checkpoint
from canteen_watch.ledger.entry import Entry, format_ts
from canteen_watch.ledger.models import checkpoints_table, entries_table
from canteen_watch.ledger.store import Ledger, LedgerError, LedgerInconsistent, entry_from_row

ImageReader = Callable[[str, str, "str | None"], bytes]

BUNDLE_FORMAT = "canteen-watch-evidence-bundle"
BUNDLE_VERSION = 1
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class BundleError(LedgerError):
    """The bundle cannot be made (no checkpoint, an image does not match its hash, …)."""


@dataclass
class BundleSummary:
    """What :func:`export_bundle` wrote."""

    path: Path
    entries: int
    images: int
    missing_images: list[dict[str, Any]] = field(default_factory=list)
    tree_size: int = 0
    root: bytes = b""
    checkpoint: SignedCheckpoint | None = None


def _day_start(value: date | datetime | str) -> datetime:
    if isinstance(value, str):
        value = date.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.combine(value, time(0), tzinfo=timezone.utc)


def select_entries(
    session: Session,
    *,
    violation_id: str | int | None = None,
    date_from: date | datetime | str | None = None,
    date_to: date | datetime | str | None = None,
    subjects: Sequence[str] = (),
) -> list[Entry]:
    """Entries for a violation (subject ``violation:<id>``, plus extra ``subjects``) or a date range.

    Dates are UTC days and ``date_to`` is inclusive. Corrections of selected entries and the
    entries that selected corrections correct are added.
    """
    e = entries_table.c
    conditions = []
    wanted = list(subjects)
    if violation_id is not None:
        wanted.append(f"violation:{violation_id}")
    if wanted:
        conditions.append(e.subject.in_(wanted))
    if date_from is not None or date_to is not None:
        range_conditions = []
        if date_from is not None:
            range_conditions.append(e.ts >= format_ts(_day_start(date_from)))
        if date_to is not None:
            end = _day_start(date_to)
            if not isinstance(date_to, datetime):
                end += timedelta(days=1)
            range_conditions.append(e.ts < format_ts(end))
        conditions.append(range_conditions[0] if len(range_conditions) == 1 else range_conditions[0] & range_conditions[1])
    if not conditions:
        raise BundleError("select a violation, subjects or a date range")
    rows = {r.seq: entry_from_row(r) for r in session.execute(select(entries_table).where(or_(*conditions)))}
    # Follow corrections both ways until nothing new turns up.
    while True:
        seqs = list(rows)
        targets = {en.corrects for en in rows.values() if en.corrects is not None} - rows.keys()
        extra = []
        for chunk in _chunks(seqs, 500):
            extra += list(session.execute(select(entries_table).where(e.corrects.in_(chunk))))
        for chunk in _chunks(sorted(targets), 500):
            extra += list(session.execute(select(entries_table).where(e.seq.in_(chunk))))
        new = {r.seq: entry_from_row(r) for r in extra if r.seq not in rows}
        if not new:
            break
        rows.update(new)
    return [rows[s] for s in sorted(rows)]


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _image_name(sha256: str, key: str) -> str:
    ext = PurePosixPath(key).suffix.lower()
    return f"images/{sha256}{ext if ext in _IMAGE_EXTENSIONS else ''}"


def export_bundle(
    session: Session,
    ledger: Ledger,
    out_path: str | os.PathLike[str],
    *,
    violation_id: str | int | None = None,
    date_from: date | datetime | str | None = None,
    date_to: date | datetime | str | None = None,
    subjects: Sequence[str] = (),
    reader: ImageReader | None = None,
    allow_missing_images: bool = False,
    skip_images: bool = False,
    make_checkpoint: bool = True,
) -> BundleSummary:
    """Write an evidence bundle zip for a violation or a date range.

    The latest checkpoint must cover every selected entry; if it does not and the ledger has a
    signing key (and ``make_checkpoint``), a checkpoint is made in ``session`` (the caller
    commits). ``reader`` fetches each referenced image; without one, pass ``skip_images=True``.
    A reader error is fatal unless ``allow_missing_images`` (then the image is listed as missing).
    """
    if ledger.verifier is None:
        raise BundleError("the ledger's public key is needed to export a bundle")
    if reader is None and not skip_images:
        raise BundleError("no image reader given (pass reader=… or skip_images=True)")
    entries = select_entries(session, violation_id=violation_id, date_from=date_from, date_to=date_to, subjects=subjects)
    if not entries:
        raise BundleError("no ledger entries match the selection")
    last_seq = entries[-1].seq
    checkpoint = ledger.latest_checkpoint(session)
    if checkpoint is None or checkpoint.size <= last_seq:
        if make_checkpoint and ledger.signer is not None:
            checkpoint = ledger.checkpoint(session)
        if checkpoint is None or checkpoint.size <= last_seq:
            have = checkpoint.size if checkpoint else 0
            raise BundleError(f"the latest checkpoint (size {have}) does not cover seq {last_seq}; run `canteen-watch ledger checkpoint`")
    size, root = checkpoint.size, checkpoint.root

    inclusion: dict[str, list[str]] = {}
    for entry in entries:
        proof = ledger.inclusion_proof(session, entry.seq, size)
        if proof.root != root or proof.leaf_hash.hex() != entry.entry_hash:
            raise LedgerInconsistent(f"stored tree disagrees with the signed checkpoint at size {size} (seq {entry.seq})")
        proof.verify()
        inclusion[str(entry.seq)] = [p.hex() for p in proof.path]

    history: list[dict[str, Any]] = []
    older_notes: dict[str, str] = {}
    for row in session.execute(select(checkpoints_table).where(checkpoints_table.c.tree_size < size).order_by(checkpoints_table.c.tree_size)):
        try:
            old = open_checkpoint(row.note, ledger.verifier)
        except Exception:  # signed by an earlier key: skip; the verifier would not trust it anyway
            continue
        proof = ledger.consistency_proof(session, old.size, size)
        if proof.old_root != old.root or proof.new_root != root:
            raise LedgerInconsistent(f"checkpoint at size {old.size} is not consistent with size {size}")
        proof.verify()
        name = f"checkpoints/{old.size}.txt"
        older_notes[name] = old.note
        history.append({"old_size": old.size, "checkpoint": name, "path": [p.hex() for p in proof.path]})

    images: dict[str, dict[str, Any]] = {}
    image_bytes: dict[str, bytes] = {}
    missing: list[dict[str, Any]] = []
    for entry in entries:
        ev = entry.evidence
        if ev is None or ev.sha256 in images or any(m["sha256"] == ev.sha256 for m in missing):
            continue
        ref = {"sha256": ev.sha256, "bucket": ev.bucket, "key": ev.key, "version_id": ev.version_id, "first_seq": entry.seq}
        if skip_images:
            missing.append(ref | {"reason": "images skipped at export"})
            continue
        assert reader is not None
        try:
            data = reader(ev.bucket, ev.key, ev.version_id)
        except Exception as exc:
            if not allow_missing_images:
                raise BundleError(f"cannot read image {ev.bucket}/{ev.key} (seq {entry.seq}): {exc}") from exc
            missing.append(ref | {"reason": f"{type(exc).__name__}: {exc}"})
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != ev.sha256:
            raise BundleError(
                f"image {ev.bucket}/{ev.key} (seq {entry.seq}) does not match the ledger: sha256 {actual}, recorded {ev.sha256} (swapped?)"
            )
        name = _image_name(ev.sha256, ev.key)
        images[ev.sha256] = ref | {"path": name, "size": len(data)}
        image_bytes[name] = data

    verifier = ledger.verifier
    files: dict[str, bytes] = {
        "entries.jsonl": b"".join(entry.leaf_bytes() + b"\n" for entry in entries),
        "checkpoint.txt": checkpoint.note.encode("utf-8"),
        "keys/ledger.vkey": (verifier.vkey + "\n").encode("ascii"),
        "keys/ledger-public-key.pem": verifier.public_pem(),
        "proofs.json": json.dumps(
            {"tree_size": size, "root": root.hex(), "inclusion": inclusion, "consistency": history}, indent=1, sort_keys=True
        ).encode("utf-8"),
    }
    files.update({name: note.encode("utf-8") for name, note in older_notes.items()})
    selection: dict[str, Any] = {}
    if violation_id is not None:
        selection["violation"] = str(violation_id)
    if subjects:
        selection["subjects"] = list(subjects)
    if date_from is not None:
        selection["from"] = str(date_from)
    if date_to is not None:
        selection["to"] = str(date_to)
    created = format_ts(datetime.now(timezone.utc))
    files["README.txt"] = _readme(checkpoint, verifier.vkey, len(entries), len(images), missing, selection, created).encode("utf-8")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "created_at": created,
        "selection": selection,
        "origin": checkpoint.origin,
        "key_id": verifier.key_id.hex(),
        "vkey": verifier.vkey,
        "tree_size": size,
        "root": root.hex(),
        "root_base64": base64.b64encode(root).decode(),
        "entries": [entry.seq for entry in entries],
        "images": sorted(images.values(), key=lambda i: i["first_seq"]),
        "missing_images": missing,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted({**files, **image_bytes}.items())},
    }
    files["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in ("README.txt", "manifest.json", "entries.jsonl", "proofs.json", "checkpoint.txt"):
                archive.writestr(name, files[name])
            for name in sorted(files):
                if name not in archive.namelist():
                    archive.writestr(name, files[name])
            for name, data in sorted(image_bytes.items()):
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_STORED)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return BundleSummary(
        path=out, entries=len(entries), images=len(images), missing_images=missing, tree_size=size, root=root, checkpoint=checkpoint
    )


def _readme(
    checkpoint: SignedCheckpoint,
    vkey: str,
    n_entries: int,
    n_images: int,
    missing: list[dict[str, Any]],
    selection: dict[str, Any],
    created: str,
) -> str:
    what = ", ".join(f"{k} {v}" for k, v in selection.items())
    missing_text = (
        f"\n{len(missing)} referenced image(s) could not be included; they are listed in manifest.json\n"
        "under missing_images. Their hashes are still bound by the signed entries.\n"
        if missing
        else ""
    )
    return f"""canteen-watch evidence bundle
=============================

Created {created} for: {what}.
{n_entries} ledger entries, {n_images} images, checkpoint of the ledger
"{checkpoint.origin}" at tree size {checkpoint.size}.
{missing_text}
How to verify (offline, no database or network needed)
-------------------------------------------------------

    canteen-watch-verify THIS.zip --vkey '{vkey}'

Compare the --vkey value with the ledger key you obtained independently (for example from
the regulator's published checkpoint files); without --vkey the key inside the bundle is used
and the tool says so. Add --trusted-checkpoint FILE to check that this bundle is consistent with
a checkpoint you already hold. Exit status 0 means every check passed.

What the tool checks
--------------------

1. checkpoint.txt is a C2SP signed note (https://c2sp.org/signed-note) carrying a
   tlog-checkpoint (https://c2sp.org/tlog-checkpoint): origin, tree size, base64 root hash,
   signed with Ed25519 by the key above (key id = SHA-256(name || 0x0A || 0x01 || key)[:4]).
2. Every line of entries.jsonl is one ledger entry, exactly as hashed: its leaf hash is
   SHA-256(0x00 || line bytes without the newline). proofs.json holds its RFC 6962 / RFC 9162
   inclusion proof (leaf index = "seq", tree size = the checkpoint's); interior nodes are
   SHA-256(0x01 || left || right). Each proof must lead to the signed root.
3. Each entry's "evidence" names an image by bucket, key, version id and SHA-256; the image is
   in images/ under its SHA-256 and must hash to exactly that value.
4. Each earlier checkpoint in checkpoints/ must be signed by the same key and be consistent
   (RFC 9162 consistency proof) with checkpoint.txt, so the log was only ever appended to.
5. Within the bundle, consecutive entries are hash-chained: "prev_hash" of entry n is the
   leaf hash of entry n-1.

manifest.json and this README are descriptive; the checks above rely only on the signed
checkpoint, the proofs, the entries and the images. Entries hold no personal data: people are
identified by role or by salted hash.
"""


def folder_reader(root: str | os.PathLike[str]) -> ImageReader:
    """An image reader over a local folder laid out as ``<root>/<bucket>/<key>`` (tests, exports from backups)."""
    base = Path(root).resolve()

    def read(bucket: str, key: str, version_id: str | None) -> bytes:
        path = (base / bucket / key).resolve()
        if base not in path.parents:
            raise ValueError(f"object path escapes {base}: {bucket}/{key}")
        return path.read_bytes()

    return read
