"""C2SP signed notes and checkpoints, key files, publication."""

from __future__ import annotations

import base64
import http.server
import os
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canteen_watch.ledger.checkpoint import (
    PRIVATE_KEY_FILE,
    CheckpointError,
    CheckpointPublisher,
    NoteError,
    NoteSigner,
    NoteVerifier,
    key_id,
    keygen,
    load_signer,
    load_verifier,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
)

# The signed-note example of golang.org/x/mod/sumdb/note (note.go / note_test.go, BSD-3-Clause):
# Ed25519 is deterministic, so our signer must reproduce the published signature byte for byte.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"


def test_go_signed_note_vector() -> None:
    signer = NoteSigner.from_skey(GO_SKEY)
    assert signer.vkey == GO_VKEY
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.sign(GO_TEXT) == GO_NOTE
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert verifier.open(GO_NOTE) == GO_TEXT
    with pytest.raises(NoteError):
        verifier.open(GO_NOTE.replace("cryptography", "cryptographY"))


def test_key_id_definition() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    import hashlib

    assert key_id("PeterNeumann", verifier.public_raw) == hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_raw).digest()[:4]


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhpcQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # bad base64 / algorithm
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,  # no signatures
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_NOTE.split("\n\n")[1].rstrip("\n"),  # no final newline
        GO_NOTE.replace("\u2014 ", "-- "),
        GO_NOTE.replace("PeterNeumann x08", "PeterNeumann  x08"),
        GO_NOTE.replace("x08go/", "x08go!"),
        GO_NOTE.replace("x08go/ZJkuBS9UG", "x08go/ZJkuBS9UH"),  # signature altered
        GO_NOTE.replace("problem,\n", "problem,\x01\n"),
        GO_NOTE + GO_NOTE.split("\n\n")[1] * 101,  # too many signatures (and a blank line)
    ],
)
def test_malformed_or_forged_notes_are_rejected(note: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(GO_VKEY).open(note)


def test_notes_signed_by_other_keys() -> None:
    other = NoteSigner("PeterNeumann", Ed25519PrivateKey.generate())  # same name, different key
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    with pytest.raises(NoteError, match="not signed by the trusted key"):
        verifier.open(other.sign(GO_TEXT))
    # A valid signature from the trusted key next to an unknown one is accepted.
    both = GO_NOTE + other.sign(GO_TEXT).split("\n\n")[1]
    assert verifier.open(both) == GO_TEXT
    assert len(parse_note(both)[1]) == 2


def test_checkpoint_body_strictness() -> None:
    root = bytes(range(32))
    b64 = base64.b64encode(root).decode()
    assert parse_checkpoint(f"example.com/log\n5\n{b64}\n").size == 5
    assert parse_checkpoint(f"example.com/log\n0\n{b64}\next\n").extensions == ("ext",)
    for text in (
        f"example.com/log\n05\n{b64}\n",
        f"example.com/log\n-5\n{b64}\n",
        f"example.com/log\n5 \n{b64}\n",
        f"example.com/log\n5\n{b64}",
        f"example.com/log\n5\n",
        f"example.com/log\n5\n{base64.b64encode(root[:31]).decode()}\n",
        f"example.com/log\n5\n{b64[:-1]}\n",
        f"ex ample\n5\n{b64}\n",
        f"\n5\n{b64}\n",
        f"example.com/log\n5\n{b64}\n\n",
        f"example.com/log\n99999999999999999999\n{b64}\n",
    ):
        with pytest.raises(CheckpointError):
            parse_checkpoint(text)


def test_sign_and_open_checkpoint() -> None:
    signer = NoteSigner("canteen.example/ledger", Ed25519PrivateKey.generate())
    signed = sign_checkpoint(signer, 42, b"\x07" * 32)
    assert signed.note.startswith("canteen.example/ledger\n42\nBwcH")
    opened = open_checkpoint(signed.note, signer.verifier)
    assert (opened.origin, opened.size, opened.root) == ("canteen.example/ledger", 42, b"\x07" * 32)
    attacker = NoteSigner("canteen.example/ledger", Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError):
        open_checkpoint(sign_checkpoint(attacker, 42, b"\x07" * 32).note, signer.verifier)
    other_origin = NoteSigner("other.example/ledger", signer.private_key)
    with pytest.raises(CheckpointError):
        open_checkpoint(sign_checkpoint(other_origin, 42, b"\x07" * 32).note, other_origin.verifier, origin="canteen.example/ledger")


def test_keygen_files_and_permissions(tmp_path: Path) -> None:
    files = keygen(tmp_path / "keys", "canteen.example/ledger")
    assert stat.S_IMODE(os.stat(files.private_key).st_mode) == 0o600
    assert files.vkey.read_text().strip() == files.vkey_text
    signer = load_signer(tmp_path / "keys")
    assert signer.vkey == load_verifier(tmp_path / "keys").vkey == load_verifier(files.vkey_text).vkey
    with pytest.raises(FileExistsError):
        keygen(tmp_path / "keys", "canteen.example/ledger")
    again = keygen(tmp_path / "keys", "canteen.example/ledger", force=True)
    assert again.vkey_text != files.vkey_text
    os.chmod(tmp_path / "keys" / PRIVATE_KEY_FILE, 0o644)
    with pytest.raises(PermissionError):
        load_signer(tmp_path / "keys")


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_publisher_day_files_and_webhook(tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        signer = NoteSigner("canteen.example/ledger", Ed25519PrivateKey.generate())
        url = f"http://127.0.0.1:{server.server_address[1]}/checkpoint"
        publisher = CheckpointPublisher(folder=tmp_path / "pub", webhook_url=url)
        day = datetime(2026, 12, 4, 23, 59, tzinfo=timezone.utc)
        first = publisher.publish(sign_checkpoint(signer, 10, b"\x01" * 32), day)
        assert first["file_written"] and first["webhook_status"] == 204
        path = tmp_path / "pub" / "2026-12-04.checkpoint"
        assert open_checkpoint(path.read_text(), signer.verifier).size == 10
        assert publisher.publish(sign_checkpoint(signer, 5, b"\x02" * 32), day)["file_written"] is False  # never shrinks
        with pytest.raises(CheckpointError, match="fork"):
            publisher.publish(sign_checkpoint(signer, 10, b"\x03" * 32), day)
        publisher.publish(sign_checkpoint(signer, 12, b"\x04" * 32), day)
        assert open_checkpoint(path.read_text(), signer.verifier).size == 12
        headers, body = _Hook.received[0]
        assert headers["X-Checkpoint-Size"] == "10" and body.decode().startswith("canteen.example/ledger\n10\n")
    finally:
        server.shutdown()
        server.server_close()
    down = CheckpointPublisher(webhook_url="http://127.0.0.1:9/unreachable", timeout_seconds=1)
    assert "webhook_error" in down.publish(sign_checkpoint(signer, 1, b"\x01" * 32))
