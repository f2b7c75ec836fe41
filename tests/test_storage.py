"""Snapshot storage against a real S3 server (SeaweedFS), including the spool while S3 is down."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from canteen_watch.config import StorageConfig
from canteen_watch.core import Slot
from canteen_watch.s3server import EmbeddedS3, find_free_base
from canteen_watch.storage import SnapshotStore, Spool, StorageUnavailableError, snapshot_key
from tests.conftest import S3_ACCESS, S3_SECRET


def store_for(server: EmbeddedS3, tmp_path: Path, bucket: str, **config: object) -> SnapshotStore:
    settings = StorageConfig(endpoint=server.endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET, bucket=bucket, timeout_seconds=2.0, **config)
    return SnapshotStore(settings, tmp_path / "spool", endpoint=server.endpoint)


def meta(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "camera": "cam-1", "slot": "cam-1@20261204T101500Z"}


def test_snapshot_key_layout() -> None:
    slot = Slot("cam-1", datetime(2026, 12, 4, 10, 15, 0, 123, tzinfo=timezone.utc))
    assert snapshot_key("site-a", slot) == "site-a/cam-1/2026/12/04/101500-cam-1@20261204T101500Z.jpg"


def test_put_creates_bucket_and_roundtrips_with_metadata(s3_server: EmbeddedS3, tmp_path: Path) -> None:
    store = store_for(s3_server, tmp_path, "roundtrip-bucket")
    data = b"\xff\xd8fake-jpeg-bytes\xff\xd9"
    stored = store.put("site-a/cam-1/x.jpg", data, meta(data))
    assert not stored.spooled
    assert stored.version_id  # the bucket is versioned (object lock)
    assert store.get("site-a/cam-1/x.jpg") == data
    assert store.metadata("site-a/cam-1/x.jpg")["sha256"] == hashlib.sha256(data).hexdigest()
    url = store.presigned_url("site-a/cam-1/x.jpg", expiry_seconds=60)
    assert "X-Amz-Expires=60" in url
    assert requests.get(url, timeout=5).content == data


def test_wrong_secret_is_refused(s3_server: EmbeddedS3, tmp_path: Path) -> None:
    settings = StorageConfig(endpoint=s3_server.endpoint, access_key=S3_ACCESS, secret_key="not-the-secret", bucket="refused-bucket")
    store = SnapshotStore(settings, tmp_path / "spool", endpoint=s3_server.endpoint)
    from minio.error import S3Error

    with pytest.raises(S3Error):
        store.ensure_bucket()


def test_unreachable_s3_spools_then_flushes_exactly_once(tmp_path: Path) -> None:
    server = EmbeddedS3(data_dir=tmp_path / "s3", port=find_free_base(), access_key=S3_ACCESS, secret_key=S3_SECRET)
    store = store_for(server, tmp_path, "spool-bucket")
    payloads = {f"site-a/cam-1/{i}.jpg": f"jpeg-{i}".encode() for i in range(5)}
    with pytest.raises(StorageUnavailableError):
        store.upload("site-a/cam-1/0.jpg", payloads["site-a/cam-1/0.jpg"], meta(b"x"))
    for key, data in payloads.items():
        assert store.put(key, data, meta(data)).spooled
    assert store.spool.depth() == 5
    with server:
        uploaded = store.flush_spool()
        assert sorted(s.key for s in uploaded) == sorted(payloads)
        assert store.spool.depth() == 0
        assert store.flush_spool() == []
        for key, data in payloads.items():
            assert store.get(key) == data
        objects = list(store.client.list_objects(bucket_name="spool-bucket", prefix="site-a/", recursive=True))
        assert len(objects) == 5


def test_spool_ignores_incomplete_items(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.put("a/b.jpg", b"data", {"sha256": "x"})
    (tmp_path / "c__d.jpg").write_bytes(b"orphan without metadata")
    (tmp_path / "e__f.json.tmp").write_text("{}")
    assert [item.key for item in spool.items()] == ["a/b.jpg"]
    assert spool.depth() == 1
    spool.remove("a/b.jpg")
    assert spool.depth() == 0
