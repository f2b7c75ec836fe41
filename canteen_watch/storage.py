"""Snapshot storage in S3 (through the ``minio`` client, keyword arguments only) with a local spool.

When S3 cannot be reached, a snapshot's bytes and metadata are written atomically to the spool
folder under the same object key they will have in S3; :meth:`SnapshotStore.flush_spool` uploads
them when S3 is back. Keys are deterministic per (camera, slot), so a retried upload overwrites
the same object: nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import S3Error, ServerError

from canteen_watch.config import StorageConfig
from canteen_watch.core import Slot, StoredObject

JPEG_CONTENT_TYPE = "image/jpeg"
log = logging.getLogger(__name__)


class StorageUnavailableError(RuntimeError):
    """S3 could not be reached (network, server down, timeout)."""


def snapshot_key(site_id: str, slot: Slot) -> str:
    """Object key ``<site>/<camera>/<YYYY>/<MM>/<DD>/<HHMMSS>-<slot>.jpg`` (UTC)."""
    t = slot.slot_time
    return f"{site_id}/{slot.camera_id}/{t:%Y/%m/%d}/{t:%H%M%S}-{slot.key}.jpg"


def make_client(config: StorageConfig, endpoint: str | None = None) -> Minio:
    """A minio client with short timeouts and few retries, so an outage is noticed quickly."""
    timeout = urllib3.Timeout(connect=config.timeout_seconds, read=config.timeout_seconds)
    http = urllib3.PoolManager(timeout=timeout, maxsize=32, retries=urllib3.Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504]))
    return Minio(
        endpoint=endpoint or config.endpoint or f"127.0.0.1:{config.embedded_port}",
        access_key=config.access_key,
        secret_key=config.secret_key,
        secure=config.secure,
        region=config.region,
        http_client=http,
    )


TRANSIENT_S3_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "XMinioServerNotInitialized"})


def is_unavailable(exc: BaseException) -> bool:
    """True for outages worth spooling for: network errors, 5xx answers, transient S3 codes."""
    if isinstance(exc, ServerError):
        return True
    if isinstance(exc, S3Error):
        return exc.code in TRANSIENT_S3_CODES
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError))


@dataclass(frozen=True)
class SpooledItem:
    """A snapshot waiting in the spool."""

    key: str
    data_path: Path
    metadata: dict[str, str]


class Spool:
    """Atomic on-disk queue of objects that could not be uploaded yet."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        safe = key.replace("/", "__")
        return self.root / f"{safe}.jpg", self.root / f"{safe}.json"

    def put(self, key: str, data: bytes, metadata: dict[str, str]) -> None:
        """Write the bytes then the metadata (the metadata file marks the item complete)."""
        data_path, meta_path = self._paths(key)
        for path, payload in ((data_path, data), (meta_path, json.dumps({"key": key, "metadata": metadata}).encode())):
            tmp = path.with_suffix(path.suffix + ".tmp")
            with open(tmp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)

    def items(self) -> list[SpooledItem]:
        """Complete items, oldest first."""
        found = []
        for meta_path in sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime):
            data_path = meta_path.with_suffix(".jpg")
            if not data_path.exists():
                continue
            record = json.loads(meta_path.read_text())
            found.append(SpooledItem(key=record["key"], data_path=data_path, metadata=record["metadata"]))
        return found

    def remove(self, key: str) -> None:
        """Forget an item once it is safely in S3."""
        for path in self._paths(key):
            path.unlink(missing_ok=True)

    def depth(self) -> int:
        """Number of complete items waiting."""
        return sum(1 for _ in self.root.glob("*.json"))


class SnapshotStore:
    """Put and get snapshot JPEGs in one bucket, spooling while S3 is down."""

    def __init__(self, config: StorageConfig, spool_dir: Path, endpoint: str | None = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.client = make_client(config, endpoint)
        self.spool = Spool(spool_dir)
        self._bucket_ready = False

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (with object lock, so evidence can be held)."""
        if self._bucket_ready:
            return
        try:
            if not self.client.bucket_exists(bucket_name=self.bucket):
                try:
                    self.client.make_bucket(bucket_name=self.bucket, object_lock=True)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        except Exception as exc:
            if is_unavailable(exc):
                raise StorageUnavailableError(f"S3 at {self.client._base_url.host} is unreachable: {exc}") from exc
            raise
        self._bucket_ready = True

    def upload(self, key: str, data: bytes, metadata: dict[str, str]) -> StoredObject:
        """Upload to S3 now; raise :class:`StorageUnavailableError` when S3 is unreachable."""
        self.ensure_bucket()
        try:
            result = self.client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type=JPEG_CONTENT_TYPE,
                metadata=metadata,
            )
        except Exception as exc:
            if is_unavailable(exc):
                self._bucket_ready = False
                raise StorageUnavailableError(f"S3 put of {key} failed: {exc}") from exc
            raise
        return StoredObject(bucket=self.bucket, key=key, sha256=metadata["sha256"], size=len(data), version_id=result.version_id)

    def put(self, key: str, data: bytes, metadata: dict[str, str]) -> StoredObject:
        """Upload, or spool when S3 is unreachable or refuses (``StoredObject.spooled`` tells which).

        A refusal that is not an outage (access denied, a missing bucket right after a restart)
        is logged and spooled too: the snapshot is kept and retried, and the spool depth shows
        the problem in ``status``.
        """
        try:
            return self.upload(key, data, metadata)
        except (StorageUnavailableError, S3Error) as exc:
            if isinstance(exc, S3Error):
                log.warning("S3 refused %s (%s); spooled for retry", key, exc.code)
                self._bucket_ready = False
            self.spool.put(key, data, metadata)
            return StoredObject(bucket=self.bucket, key=key, sha256=metadata["sha256"], size=len(data), spooled=True)

    def flush_spool(self, limit: int | None = None) -> list[StoredObject]:
        """Upload spooled items; stop at the first failure. Returns what was uploaded."""
        uploaded = []
        for item in self.spool.items()[:limit]:
            try:
                stored = self.upload(item.key, item.data_path.read_bytes(), item.metadata)
            except StorageUnavailableError:
                break
            except S3Error as exc:
                log.warning("S3 refused spooled %s (%s); retrying on the next pass", item.key, exc.code)
                self._bucket_ready = False
                break
            self.spool.remove(item.key)
            uploaded.append(stored)
        return uploaded

    def get(self, key: str, version_id: str | None = None) -> bytes:
        """The object's bytes (a spooled copy is returned while it waits)."""
        data_path, _ = self.spool._paths(key)
        try:
            response = self.client.get_object(bucket_name=self.bucket, object_name=key, version_id=version_id)
        except Exception as exc:
            if data_path.exists():
                return data_path.read_bytes()
            if is_unavailable(exc):
                raise StorageUnavailableError(f"S3 get of {key} failed: {exc}") from exc
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def read_evidence(self, bucket: str, key: str, version_id: str | None) -> bytes:
        """Reader for evidence bundles: ``(bucket, key, version_id) -> bytes``."""
        if bucket != self.bucket:
            response = self.client.get_object(bucket_name=bucket, object_name=key, version_id=version_id)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        return self.get(key, version_id)

    def metadata(self, key: str) -> dict[str, str]:
        """User metadata of a stored object (lower-case keys, without the x-amz-meta- prefix)."""
        stat = self.client.stat_object(bucket_name=self.bucket, object_name=key)
        prefix = "x-amz-meta-"
        return {k.lower()[len(prefix):]: v for k, v in stat.metadata.items() if k.lower().startswith(prefix)}

    def presigned_url(self, key: str, expiry_seconds: int | None = None) -> str:
        """A short-lived GET URL for the dashboard."""
        seconds = expiry_seconds or self.config.presign_expiry_seconds
        return self.client.presigned_get_object(bucket_name=self.bucket, object_name=key, expires=timedelta(seconds=seconds))

    def stat(self, key: str) -> StoredObject | None:
        """What S3 holds under ``key`` (None when absent)."""
        try:
            stat = self.client.stat_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise StorageUnavailableError(f"S3 stat of {key} failed: {exc}") from exc
            raise
        sha = next((v for k, v in stat.metadata.items() if k.lower() == "x-amz-meta-sha256"), "")
        return StoredObject(bucket=self.bucket, key=key, sha256=sha, size=stat.size or 0, version_id=stat.version_id)

    def exists(self, key: str) -> bool:
        """True when the object is in S3."""
        try:
            self.client.stat_object(bucket_name=self.bucket, object_name=key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
