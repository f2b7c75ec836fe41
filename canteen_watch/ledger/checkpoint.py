"""Signed checkpoints: C2SP signed-note + tlog-checkpoint, Ed25519 keys, publication.

A checkpoint is a C2SP *signed note* (https://c2sp.org/signed-note) whose text is a C2SP
*tlog-checkpoint* body (https://c2sp.org/tlog-checkpoint)::

    canteen-watch.example/ledger
    1234
    3q2+7w...base64 root hash...=

    — canteen-watch.example/ledger AbCdEf...base64(key id || Ed25519 signature)...

* the signature covers the text including its final newline, not the blank line;
* key id = first 4 bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key);
* a verifier key ("vkey") is ``<name>+<hex key id>+<base64(0x01 || public key)>``;
* the checkpoint origin is the key name.

The private key lives in a PEM file (mode 0600) in the key folder and never in the database.
This module imports only the standard library and ``cryptography`` (the offline verifier uses it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash and a space
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20

PRIVATE_KEY_FILE = "ledger-signing-key.pem"
PUBLIC_KEY_FILE = "ledger-public-key.pem"
VKEY_FILE = "ledger.vkey"
DEFAULT_ORIGIN = "canteen-watch/ledger"

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


class NoteError(ValueError):
    """A signed note or checkpoint is malformed or its signature does not verify."""


class CheckpointError(NoteError):
    """A checkpoint is malformed, unsigned by the trusted key, or inconsistent."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def check_key_name(name: str) -> str:
    """Key names (and origins) are non-empty UTF-8 without whitespace or '+'."""
    if not isinstance(name, str) or not name:
        raise NoteError("key name must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name) or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise NoteError(f"invalid key name {name!r}: no spaces, control characters or '+'")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP key id of an Ed25519 key."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if "\n\n" in text:
        raise NoteError("note text must not contain a blank line")
    for ch in text:
        if ch != "\n" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
            raise NoteError("note text contains a control character")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes


class NoteVerifier:
    """Verifies notes signed by one Ed25519 key."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        self.name = check_key_name(name)
        self.public_key = public_key
        self.public_raw = _raw_public(public_key)
        self.key_id = key_id(self.name, self.public_raw)

    @property
    def vkey(self) -> str:
        """The verifier key text ``name+hexid+base64``."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + self.public_raw).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str) -> "NoteVerifier":
        """Parse a verifier key ``<name>+<hex key id>+<base64(0x01 || key)>``."""
        vkey = vkey.strip()
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError("malformed verifier key")
        name, hexid, material = parts
        check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hexid):
            raise NoteError("malformed verifier key id")
        raw = _b64decode(material, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 key")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_id.hex() != hexid:
            raise NoteError("verifier key id does not match the key")
        return verifier

    @classmethod
    def from_public_pem(cls, name: str, pem: bytes) -> "NoteVerifier":
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise NoteError("public key is not Ed25519")
        return cls(name, key)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def open(self, note: str) -> str:
        """Return the note's text if it carries a valid signature by this key; raise otherwise.

        Like Go's ``note.Open``: signatures by other keys are ignored, but a signature line with
        this key's name and id that does not verify rejects the whole note.
        """
        text, signatures = parse_note(note)
        matched = False
        for sig in signatures:
            if sig.name == self.name and sig.key_id == self.key_id:
                try:
                    self.public_key.verify(sig.signature, text.encode("utf-8"))
                except InvalidSignature:
                    raise NoteError(f"invalid signature by {self.name} ({self.key_id.hex()})") from None
                matched = True
        if not matched:
            names = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in signatures) or "none"
            raise NoteError(f"note is not signed by the trusted key {self.name} ({self.key_id.hex()}); signatures: {names}")
        return text


class NoteSigner:
    """Signs notes with an Ed25519 private key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self.private_key = private_key
        self.verifier = NoteVerifier(name, private_key.public_key())
        self.key_id = self.verifier.key_id

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    @classmethod
    def from_skey(cls, skey: str) -> "NoteSigner":
        """Parse a Go ``sumdb/note`` signer key ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("malformed signer key")
        _, _, name, hexid, material = parts
        raw = _b64decode(material, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id.hex() != hexid:
            raise NoteError("signer key id does not match the key")
        return signer

    def sign(self, text: str) -> str:
        """Return ``text`` as a signed note with one signature line."""
        _check_text(text)
        signature = self.private_key.sign(text.encode("utf-8"))
        blob = base64.b64encode(self.key_id + signature).decode("ascii")
        return f"{text}\n{SIG_PREFIX}{self.name} {blob}\n"


def parse_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines (strict C2SP syntax)."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise NoteError("note is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise NoteError("note is too large")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("note is not valid UTF-8") from None
    _check_text(text)
    if not block.endswith("\n"):
        raise NoteError("signature block must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    signatures: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise NoteError("malformed signature line")
        rest = line[len(SIG_PREFIX) :]
        name, sep, blob = rest.partition(" ")
        if not sep or " " in blob:
            raise NoteError("malformed signature line")
        check_key_name(name)
        raw = _b64decode(blob, "signature")
        if len(raw) < 5:
            raise NoteError("signature is too short")
        signatures.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
    if not signatures:
        raise NoteError("note has no signatures")
    return text, signatures


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint body: origin, tree size and root hash (plus any extension lines)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The tlog-checkpoint note text."""
        check_key_name(self.origin)
        if len(self.root) != 32:
            raise CheckpointError("root hash must be 32 bytes")
        lines = [self.origin, str(int(self.size)), base64.b64encode(self.root).decode("ascii"), *self.extensions]
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class SignedCheckpoint(Checkpoint):
    """A checkpoint together with its signed note."""

    note: str = field(default="", compare=False)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse tlog-checkpoint note text strictly (no signature check; see :func:`open_checkpoint`)."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs origin, tree size and root hash lines")
    origin, size_text, root_text, *extensions = lines
    try:
        check_key_name(origin)
    except NoteError as exc:
        raise CheckpointError(f"bad origin line: {exc}") from None
    if not _DECIMAL.fullmatch(size_text) or int(size_text) >= 2**63:
        raise CheckpointError(f"bad tree size line {size_text!r}")
    try:
        root = _b64decode(root_text, "root hash")
    except NoteError as exc:
        raise CheckpointError(str(exc)) from None
    if len(root) != 32:
        raise CheckpointError("root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise CheckpointError("empty extension line")
    return Checkpoint(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def sign_checkpoint(signer: NoteSigner, size: int, root: bytes) -> SignedCheckpoint:
    """Sign a checkpoint for ``(size, root)`` with origin = the signer's key name."""
    body = Checkpoint(origin=signer.name, size=size, root=root)
    note = signer.sign(body.text())
    return SignedCheckpoint(origin=body.origin, size=body.size, root=body.root, note=note)


def open_checkpoint(note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None) -> SignedCheckpoint:
    """Verify a signed checkpoint against ``verifier`` and return it; raise :class:`CheckpointError`."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("checkpoint is not valid UTF-8") from None
    try:
        text = verifier.open(note)
    except CheckpointError:
        raise
    except NoteError as exc:
        raise CheckpointError(str(exc)) from None
    body = parse_checkpoint(text)
    expected = origin or verifier.name
    if body.origin != expected:
        raise CheckpointError(f"checkpoint origin {body.origin!r} is not {expected!r}")
    return SignedCheckpoint(origin=body.origin, size=body.size, root=body.root, extensions=body.extensions, note=note)


# --------------------------------------------------------------------------------------------
# Key files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFiles:
    """Where :func:`keygen` wrote the key pair."""

    private_key: Path
    public_key: Path
    vkey: Path
    vkey_text: str


def _write_file(path: Path, data: bytes, mode: int, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to replace it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    os.chmod(path, mode)


def keygen(key_dir: str | os.PathLike[str], origin: str = DEFAULT_ORIGIN, *, force: bool = False) -> KeyFiles:
    """Create an Ed25519 key pair in ``key_dir``: private PEM (0600), public PEM and vkey."""
    check_key_name(origin)
    folder = Path(key_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = folder / PRIVATE_KEY_FILE
    if private.exists() and not force:
        raise FileExistsError(f"{private} exists; pass force=True (--force) to replace it")
    key = Ed25519PrivateKey.generate()
    signer = NoteSigner(origin, key)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_file(private, pem, 0o600, force)
    _write_file(folder / PUBLIC_KEY_FILE, signer.verifier.public_pem(), 0o644, True)
    _write_file(folder / VKEY_FILE, (signer.vkey + "\n").encode("ascii"), 0o644, True)
    return KeyFiles(private_key=private, public_key=folder / PUBLIC_KEY_FILE, vkey=folder / VKEY_FILE, vkey_text=signer.vkey)


def load_verifier(source: str | os.PathLike[str]) -> NoteVerifier:
    """Load a verifier from a key folder (its ``ledger.vkey``), a ``.vkey`` file or vkey text."""
    text = str(source)
    path = Path(text)
    if "+" in text and not path.exists():
        return NoteVerifier.from_vkey(text)
    if path.is_dir():
        path = path / VKEY_FILE
    if not path.exists():
        raise FileNotFoundError(f"no verifier key at {path} (run `canteen-watch ledger keygen`)")
    return NoteVerifier.from_vkey(path.read_text(encoding="utf-8"))


def load_signer(key_dir: str | os.PathLike[str]) -> NoteSigner:
    """Load the signing key from ``key_dir`` (private PEM + vkey for the key name)."""
    folder = Path(key_dir)
    private = folder / PRIVATE_KEY_FILE
    if not private.exists():
        raise FileNotFoundError(f"no signing key at {private} (run `canteen-watch ledger keygen`)")
    mode = private.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"{private} is readable by others (mode {mode:o}); chmod 600 it")
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise NoteError(f"{private} is not an Ed25519 key")
    verifier = load_verifier(folder)
    signer = NoteSigner(verifier.name, key)
    if signer.key_id != verifier.key_id or signer.verifier.public_raw != verifier.public_raw:
        raise NoteError(f"{private} does not match {folder / VKEY_FILE}")
    return signer


# --------------------------------------------------------------------------------------------
# Publication outside the database
# --------------------------------------------------------------------------------------------


@dataclass
class CheckpointPublisher:
    """Publishes signed checkpoints: a file per UTC day and/or an HTTP POST to a webhook.

    ``<folder>/<YYYY-MM-DD>.checkpoint`` holds the day's latest checkpoint as a plain signed note
    (replaced atomically; never by a smaller tree). The webhook receives the note as
    ``text/plain; charset=utf-8`` with ``X-Checkpoint-Size`` and ``X-Checkpoint-Origin`` headers.
    """

    folder: Path | None = None
    webhook_url: str | None = None
    timeout_seconds: float = 10.0

    def day_file(self, moment: datetime) -> Path:
        if self.folder is None:
            raise ValueError("no publication folder configured")
        day = moment.astimezone(timezone.utc).strftime("%Y-%m-%d")
        return Path(self.folder) / f"{day}.checkpoint"

    def publish(self, checkpoint: SignedCheckpoint, moment: datetime | None = None) -> dict[str, object]:
        """Publish one checkpoint; returns what was done. Webhook errors are reported, not raised."""
        result: dict[str, object] = {"size": checkpoint.size}
        moment = moment or datetime.now(timezone.utc)
        if self.folder is not None:
            path = self.day_file(moment)
            path.parent.mkdir(parents=True, exist_ok=True)
            write = True
            if path.exists():
                try:
                    existing: Checkpoint | None = parse_checkpoint(parse_note(path.read_text(encoding="utf-8"))[0])
                except (NoteError, UnicodeDecodeError):
                    existing = None  # unreadable: replace it
                if existing is not None:
                    if existing.size > checkpoint.size:
                        write = False
                    elif existing.size == checkpoint.size and existing.root != checkpoint.root:
                        raise CheckpointError(f"{path} holds a different root for size {existing.size}: refusing to publish a fork")
            if write:
                _write_file(path, checkpoint.note.encode("utf-8"), 0o644, True)
            result["file"] = str(path)
            result["file_written"] = write
        if self.webhook_url:
            request = urllib.request.Request(
                self.webhook_url,
                data=checkpoint.note.encode("utf-8"),
                method="POST",
                headers={
                    "Content-Type": "text/plain; charset=utf-8",
                    "X-Checkpoint-Size": str(checkpoint.size),
                    "X-Checkpoint-Origin": checkpoint.origin,
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                    result["webhook_status"] = response.status
            except Exception as exc:  # network failure must not break the ledger
                result["webhook_error"] = f"{type(exc).__name__}: {exc}"
        return result


def checkpoint_to_json(checkpoint: SignedCheckpoint) -> str:
    """A small JSON view of a checkpoint (for CLI output)."""
    return json.dumps(
        {"origin": checkpoint.origin, "size": checkpoint.size, "root": base64.b64encode(checkpoint.root).decode(), "note": checkpoint.note},
        indent=2,
    )
