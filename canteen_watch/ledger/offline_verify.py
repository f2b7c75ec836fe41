"""``canteen-watch-verify BUNDLE.zip``: check an evidence bundle offline.

No database, no network, no configuration: only the standard library, ``cryptography`` and the
pure ledger modules (merkle, checkpoint, entry, canonical). Checks, in order:

1. the signed checkpoint verifies with the pinned key (``--vkey``) or, failing that, the key in
   the bundle (reported as a warning: pin the key you trust);
2. every entry line hashes (RFC 6962 leaf) to a leaf whose inclusion proof leads to the signed
   root at the checkpoint's tree size, with the entry's seq as the leaf index;
3. every referenced image is present and hashes to the entry's sha256;
4. earlier checkpoints in the bundle are signed by the same key and consistent with it;
5. ``--trusted-checkpoint`` files (checkpoints you already hold) are consistent with it;
6. consecutive entries chain (prev_hash) and the manifest's file hashes match.

Exit status: 0 all checks passed, 1 a check failed, 2 the bundle could not be read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canteen_watch.ledger import merkle
from canteen_watch.ledger.checkpoint import NoteError, NoteVerifier, SignedCheckpoint, load_verifier, open_checkpoint

MAX_MEMBER_BYTES = 512 * 1024 * 1024


@dataclass
class BundleReport:
    """Outcome of :func:`verify_bundle`."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    entries_verified: int = 0
    images_verified: int = 0
    checkpoints_verified: int = 0
    tree_size: int | None = None
    root: bytes | None = None
    origin: str | None = None
    key: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "entries_verified": self.entries_verified,
            "images_verified": self.images_verified,
            "checkpoints_verified": self.checkpoints_verified,
            "tree_size": self.tree_size,
            "root": self.root.hex() if self.root else None,
            "origin": self.origin,
            "key": self.key,
        }


class BundleUnreadable(Exception):
    """The file is not a readable bundle."""


def _hexes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise ValueError(f"{what} is not a list")
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, str) or len(value) != 64:
            raise ValueError(f"{what}[{i}] is not a 64-character hex hash")
        out.append(bytes.fromhex(value))
    return out


def verify_bundle(
    path: str | Path,
    *,
    vkey: str | None = None,
    trusted_checkpoints: Sequence[str] = (),
    strict: bool = False,
) -> BundleReport:
    """Verify a bundle; raise :class:`BundleUnreadable` if it cannot be opened at all."""
    report = BundleReport()
    problem = report.problems.append
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleUnreadable(f"cannot open {path}: {exc}") from None
    with archive:
        names = set()
        for info in archive.infolist():
            if info.filename.startswith("/") or ".." in info.filename.split("/"):
                problem(f"unsafe member name {info.filename!r}")
            if info.file_size > MAX_MEMBER_BYTES:
                raise BundleUnreadable(f"member {info.filename} is too large")
            names.add(info.filename)

        def read(name: str) -> bytes | None:
            if name not in names:
                return None
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:  # CRC errors and the like
                problem(f"{name}: cannot be read ({exc})")
                return None

        manifest_raw = read("manifest.json")
        if manifest_raw is None:
            raise BundleUnreadable("manifest.json is missing: not a canteen-watch evidence bundle")
        try:
            manifest = json.loads(manifest_raw)
            if not isinstance(manifest, dict) or manifest.get("format") != "canteen-watch-evidence-bundle":
                raise ValueError("not a canteen-watch evidence bundle")
        except ValueError as exc:
            raise BundleUnreadable(f"manifest.json: {exc}") from None

        # 1. Key and checkpoint --------------------------------------------------------------
        bundle_vkey_raw = read("keys/ledger.vkey")
        bundle_verifier: NoteVerifier | None = None
        if bundle_vkey_raw is not None:
            try:
                bundle_verifier = NoteVerifier.from_vkey(bundle_vkey_raw.decode("utf-8"))
            except (NoteError, UnicodeDecodeError) as exc:
                problem(f"keys/ledger.vkey: {exc}")
        if vkey is not None:
            try:
                verifier = load_verifier(vkey)
            except (NoteError, OSError) as exc:
                raise BundleUnreadable(f"--vkey: {exc}") from None
            if bundle_verifier is not None and bundle_verifier.vkey != verifier.vkey:
                report.warnings.append(f"the bundle carries a different key ({bundle_verifier.vkey}); using the pinned key")
        elif bundle_verifier is not None:
            verifier = bundle_verifier
            report.warnings.append("no --vkey given: trusting the key inside the bundle; compare it with the ledger key you hold")
        else:
            problem("no verifier key: pass --vkey")
            return report
        report.key = verifier.vkey
        pem = read("keys/ledger-public-key.pem")
        if pem is not None and bundle_verifier is not None:
            try:
                if NoteVerifier.from_public_pem(bundle_verifier.name, pem).public_raw != bundle_verifier.public_raw:
                    problem("keys/ledger-public-key.pem does not match keys/ledger.vkey")
            except (ValueError, NoteError) as exc:
                problem(f"keys/ledger-public-key.pem: {exc}")

        note = read("checkpoint.txt")
        if note is None:
            problem("checkpoint.txt is missing")
            return report
        try:
            checkpoint = open_checkpoint(note, verifier)
        except NoteError as exc:
            problem(f"checkpoint.txt: {exc} (forged or re-signed checkpoint?)")
            return report
        report.checkpoints_verified += 1
        report.tree_size, report.root, report.origin = checkpoint.size, checkpoint.root, checkpoint.origin
        if manifest.get("tree_size") != checkpoint.size or manifest.get("root") != checkpoint.root.hex():
            problem("manifest tree size/root differ from the signed checkpoint")

        # 2. Entries and inclusion proofs ------------------------------------------------------
        try:
            proofs = json.loads(read("proofs.json") or b"null")
            inclusion = proofs["inclusion"]
            if proofs["tree_size"] != checkpoint.size:
                problem(f"proofs.json is for tree size {proofs['tree_size']}, the checkpoint has {checkpoint.size}")
        except (ValueError, TypeError, KeyError) as exc:
            problem(f"proofs.json is missing or malformed ({exc})")
            return report
        raw_entries = read("entries.jsonl")
        if raw_entries is None:
            problem("entries.jsonl is missing")
            return report
        if raw_entries and not raw_entries.endswith(b"\n"):
            problem("entries.jsonl does not end with a newline (truncated?)")
        lines = raw_entries.split(b"\n")[:-1] if raw_entries.endswith(b"\n") else raw_entries.split(b"\n")
        entries: dict[int, dict[str, Any]] = {}
        leaf_hashes: dict[int, bytes] = {}
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line.decode("utf-8"))
                seq = entry["seq"]
                if not isinstance(seq, int) or isinstance(seq, bool):
                    raise ValueError("seq is not an integer")
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                problem(f"entries.jsonl line {number}: not a ledger entry ({exc})")
                continue
            if seq in entries:
                problem(f"seq {seq}: appears twice")
                continue
            leaf = merkle.leaf_hash(line)
            path = inclusion.get(str(seq))
            if path is None:
                problem(f"seq {seq}: no inclusion proof")
                continue
            try:
                merkle.verify_inclusion(seq, checkpoint.size, leaf, _hexes(path, f"proof of seq {seq}"), checkpoint.root)
            except (ValueError, merkle.ProofError) as exc:
                problem(f"seq {seq}: entry is not proven in the signed checkpoint ({exc})")
                continue
            entries[seq] = entry
            leaf_hashes[seq] = leaf
            report.entries_verified += 1
        listed = manifest.get("entries")
        if isinstance(listed, list) and sorted(listed) != sorted(entries):
            missing = sorted(set(listed) - set(entries))
            extra = sorted(set(entries) - set(listed))
            problem(f"entries listed in the manifest and present in entries.jsonl differ (missing {missing[:10]}, extra {extra[:10]})")

        # 5b. Chain within the bundle
        for seq, entry in entries.items():
            prev = leaf_hashes.get(seq - 1)
            if prev is not None and entry.get("prev_hash") != prev.hex():
                problem(f"seq {seq}: prev_hash is not the hash of seq {seq - 1}")

        # 3. Images ---------------------------------------------------------------------------
        image_index = {i.get("sha256"): i for i in manifest.get("images", []) if isinstance(i, dict)}
        missing_index = {i.get("sha256"): i for i in manifest.get("missing_images", []) if isinstance(i, dict)}
        referenced: set[str] = set()
        checked: dict[str, bool] = {}
        for seq in sorted(entries):
            evidence = entries[seq].get("evidence")
            if evidence is None:
                continue
            sha = evidence.get("sha256") if isinstance(evidence, dict) else None
            if not isinstance(sha, str):
                problem(f"seq {seq}: malformed evidence reference")
                continue
            if sha in checked:
                continue
            info = image_index.get(sha)
            member = info.get("path") if info else None
            if member is None:
                for name in names:
                    if name.startswith(f"images/{sha}"):
                        member = name
            if member is None:
                reason = missing_index.get(sha, {}).get("reason", "not in the bundle")
                message = f"seq {seq}: image {evidence.get('bucket')}/{evidence.get('key')} is missing ({reason})"
                (problem if strict or sha not in missing_index else report.warnings.append)(message)
                checked[sha] = False
                continue
            referenced.add(member)
            data = read(member)
            if data is None:
                problem(f"seq {seq}: image {member} is missing from the bundle")
                checked[sha] = False
                continue
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha:
                problem(f"seq {seq}: image {member} does not match the signed sha256 (got {actual}): image swapped")
                checked[sha] = False
                continue
            checked[sha] = True
            report.images_verified += 1
        for name in sorted(n for n in names if n.startswith("images/") and n not in referenced and not n.endswith("/")):
            report.warnings.append(f"{name} is not referenced by any entry")

        # 4. Earlier checkpoints -------------------------------------------------------------
        for item in proofs.get("consistency", []):
            try:
                old_note = read(item["checkpoint"])
                if old_note is None:
                    raise ValueError(f"{item['checkpoint']} is missing")
                old = open_checkpoint(old_note, verifier)
                if old.size != item["old_size"]:
                    raise ValueError("size differs from the proof's")
                merkle.verify_consistency(old.size, checkpoint.size, old.root, checkpoint.root, _hexes(item["path"], "consistency proof"))
                report.checkpoints_verified += 1
            except (ValueError, KeyError, TypeError, NoteError, merkle.ProofError) as exc:
                problem(f"earlier checkpoint {item.get('checkpoint') if isinstance(item, dict) else item}: {exc}")

        # 5. Trusted checkpoints -------------------------------------------------------------
        consistency = {item.get("old_size"): item for item in proofs.get("consistency", []) if isinstance(item, dict)}
        for index, trusted_note in enumerate(trusted_checkpoints, start=1):
            label = f"trusted checkpoint {index}"
            try:
                trusted = open_checkpoint(trusted_note, verifier)
            except NoteError as exc:
                problem(f"{label}: {exc}")
                continue
            _check_trusted(trusted, checkpoint, consistency, label, problem)

        # 6. Manifest file hashes ----------------------------------------------------------
        for name, digest in (manifest.get("files") or {}).items():
            data = read(name)
            if data is None:
                if not name.startswith("images/"):
                    problem(f"{name} is listed in the manifest but missing")
            elif hashlib.sha256(data).hexdigest() != digest:
                problem(f"{name} differs from the manifest's hash")
    return report


def _check_trusted(
    trusted: SignedCheckpoint, checkpoint: SignedCheckpoint, consistency: dict[Any, dict[str, Any]], label: str, problem: Any
) -> None:
    if trusted.size == checkpoint.size:
        if trusted.root != checkpoint.root:
            problem(f"{label}: same size {trusted.size} but a different root: the log was forked or rewritten")
        return
    if trusted.size > checkpoint.size:
        problem(f"{label} (size {trusted.size}) is newer than the bundle's checkpoint (size {checkpoint.size}); re-export the bundle")
        return
    item = consistency.get(trusted.size)
    if item is None:
        problem(f"{label} (size {trusted.size}): the bundle has no consistency proof from that size")
        return
    try:
        merkle.verify_consistency(trusted.size, checkpoint.size, trusted.root, checkpoint.root, _hexes(item["path"], "consistency proof"))
    except (ValueError, merkle.ProofError) as exc:
        problem(f"{label} (size {trusted.size}) is not consistent with the bundle's checkpoint: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="canteen-watch-verify",
        description="Verify a canteen-watch evidence bundle offline (no database, network or configuration).",
    )
    parser.add_argument("bundle", help="the evidence bundle zip")
    parser.add_argument("--vkey", help="the ledger key you trust: verifier key text or a .vkey file")
    parser.add_argument(
        "--trusted-checkpoint", action="append", default=[], metavar="FILE", help="a signed checkpoint you already hold (repeatable)"
    )
    parser.add_argument("--strict", action="store_true", help="fail when a referenced image is missing from the bundle")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        trusted = [Path(p).read_text(encoding="utf-8") for p in args.trusted_checkpoint]
        report = verify_bundle(args.bundle, vkey=args.vkey, trusted_checkpoints=trusted, strict=args.strict)
    except (BundleUnreadable, OSError, UnicodeDecodeError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for warning in report.warnings:
            print(f"WARNING: {warning}")
        for item in report.problems:
            print(f"FAIL: {item}")
        if report.ok:
            print(
                f"OK: {report.entries_verified} entries and {report.images_verified} images verified against the checkpoint"
                f" of {report.origin} at tree size {report.tree_size} (root {report.root.hex() if report.root else ''}),"
                f" {report.checkpoints_verified} checkpoint(s) checked, key {report.key}"
            )
        else:
            print(f"FAILED: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
