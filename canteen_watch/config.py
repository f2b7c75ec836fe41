"""Configuration: one TOML file plus environment overrides.

Every model forbids unknown keys and documents each field, so a typo fails at start with the key
path (``cameras[3].source: unsupported scheme 'rtp'``) instead of being silently ignored.

Environment overrides use the prefix ``CANTEEN_WATCH_`` and ``__`` between nesting levels, e.g.
``CANTEEN_WATCH_STORAGE__ENDPOINT=127.0.0.1:9000`` or ``CANTEEN_WATCH_DATABASE__URL=postgresql+psycopg://…``.
"""

from __future__ import annotations

import enum
import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from canteen_watch.workflows.tiers import WorkflowSettings

CONFIG_ENV_VAR = "CANTEEN_WATCH_CONFIG"
SUPPORTED_SCHEMES = ("rtsp", "rtsps", "http", "https", "file", "folder", "device")


def redact_source(source: str) -> str:
    """The source URL without user name or password."""
    parts = urlsplit(source)
    if parts.username is None and parts.password is None:
        return source
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class ConfigError(ValueError):
    """A configuration file or override is malformed; the message names each bad key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteKind(str, enum.Enum):
    """What kind of place a site is."""

    SCHOOL_CANTEEN = "school_canteen"
    CARE_INSTITUTION = "care_institution"


class RoomKind(str, enum.Enum):
    """The kitchen area a camera watches."""

    OPERATION = "operation"
    STORAGE = "storage"
    WASHING = "washing"
    PREPARATION = "preparation"
    SERVING = "serving"
    WAREHOUSE = "warehouse"
    OTHER = "other"


class SiteConfig(_Strict):
    """A school canteen or an off-campus care institution."""

    id: str = Field(title="Site id", description="Stable identifier used in object keys and URLs.", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(title="Name", description="Display name, e.g. the school's name.", min_length=1, max_length=200)
    kind: SiteKind = Field(SiteKind.SCHOOL_CANTEEN, title="Kind", description="school_canteen or care_institution.")
    district: str = Field(title="District", description="Administrative district that supervises the site.", min_length=1, max_length=100)


class ScheduleConfig(_Strict):
    """When a camera takes snapshots: an interval or a cron expression, never both."""

    interval_seconds: float | None = Field(None, title="Interval (s)", description="Seconds between snapshots.", gt=0)
    cron: str | None = Field(None, title="Cron", description="Five-field crontab expression, e.g. '*/5 7-19 * * 1-5'.")
    jitter_seconds: float = Field(0.0, title="Jitter (s)", description="Random delay added to each run to spread load.", ge=0)
    misfire_grace_seconds: float = Field(30.0, title="Misfire grace (s)", description="How late a slot may still run before it is skipped.", gt=0)

    @model_validator(mode="after")
    def _exactly_one_trigger(self) -> "ScheduleConfig":
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("give exactly one of interval_seconds or cron")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from exc
        return self


class RegionOfInterest(_Strict):
    """A polygon in normalised image coordinates (0..1) that the classifiers look at."""

    id: str = Field(title="ROI id", description="Identifier unique within the camera.", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: str = Field("storage", title="Kind", description="What the region holds: storage, fridge_door, bin, container, …")
    polygon: list[tuple[float, float]] = Field(title="Polygon", description="At least three (x, y) points, each in 0..1.", min_length=3)

    @field_validator("polygon")
    @classmethod
    def _normalised(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point ({x}, {y}) is outside 0..1")
        return points


class CameraConfig(_Strict):
    """One camera: where to read it, how often, and what to look at."""

    id: str = Field(title="Camera id", description="Stable identifier used in object keys.", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    site: str = Field(title="Site id", description="The site this camera belongs to.")
    room: RoomKind = Field(RoomKind.OPERATION, title="Room", description="Kitchen area: operation, storage, washing, …")
    source: str = Field(title="Source URL", description="rtsp://, http(s)://, file://video.mp4, folder:///dir, or device://0.")
    username: str | None = Field(None, title="Username", description="Camera login (HTTP basic/digest or RTSP).")
    password: str | None = Field(None, title="Password", description="Camera password; prefer password_env.")
    password_env: str | None = Field(None, title="Password variable", description="Environment variable that holds the password.", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    auth: str = Field("auto", title="HTTP auth", description="auto, basic, digest or none.", pattern=r"^(auto|basic|digest|none)$")
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig(interval_seconds=300), title="Schedule", description="When to take snapshots.")
    timeout_seconds: float = Field(10.0, title="Grab timeout (s)", description="Hard limit for one grab.", gt=0, le=300)
    rois: list[RegionOfInterest] = Field(default_factory=list, title="Regions of interest", description="Polygons classified for open storage.")
    enabled: bool = Field(True, title="Enabled", description="Disabled cameras are never scheduled.")

    @model_validator(mode="before")
    @classmethod
    def _password_from_environment(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("password_env") and not data.get("password"):
            name = data["password_env"]
            if name not in os.environ:
                raise ValueError(f"password_env names {name!r}, which is not set in the environment")
            data = {**data, "password": os.environ[name]}
        return data

    @field_validator("source")
    @classmethod
    def _supported_scheme(cls, source: str) -> str:
        scheme = urlsplit(source).scheme.lower()
        if not scheme:
            raise ValueError(f"missing scheme in {source!r}; use one of {', '.join(SUPPORTED_SCHEMES)}")
        if scheme not in SUPPORTED_SCHEMES:
            raise ValueError(f"unsupported scheme {scheme!r}")
        return source

    @model_validator(mode="after")
    def _unique_roi_ids(self) -> "CameraConfig":
        ids = [roi.id for roi in self.rois]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate ROI ids: {', '.join(duplicates)}")
        return self


class StorageConfig(_Strict):
    """S3-compatible object storage, reached through the minio client."""

    endpoint: str | None = Field(None, title="Endpoint", description="host:port of the S3 server; empty starts the embedded server.")
    access_key: str = Field("canteenwatch", title="Access key", description="S3 access key.")
    secret_key: str = Field("canteenwatch-secret", title="Secret key", description="S3 secret key.")
    secure: bool = Field(False, title="TLS", description="Use HTTPS to reach the endpoint.")
    region: str | None = Field(None, title="Region", description="S3 region, if the server needs one.")
    bucket: str = Field("canteen-snapshots", title="Bucket", description="Bucket for snapshots (created if missing).", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    presign_expiry_seconds: int = Field(300, title="Presigned URL expiry (s)", description="Lifetime of presigned GET URLs for the UI.", gt=0, le=7 * 24 * 3600)
    spool_dir: Path = Field(Path("spool"), title="Spool folder", description="Local folder for snapshots while S3 is unreachable (relative to data_dir).")
    embedded_port: int = Field(8333, title="Embedded S3 port", description="Port of the embedded S3 server on 127.0.0.1.", ge=1, le=65535)
    timeout_seconds: float = Field(5.0, title="S3 timeout (s)", description="Connect/read timeout for one S3 request.", gt=0)


class DatabaseConfig(_Strict):
    """Where cases, snapshots and the ledger are recorded."""

    url: str | None = Field(None, title="Database URL", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    busy_timeout_seconds: float = Field(30.0, title="SQLite busy timeout (s)", description="How long a SQLite writer waits for the lock.", gt=0)
    echo: bool = Field(False, title="Echo SQL", description="Log every SQL statement.")


class RetentionConfig(_Strict):
    """How long stored snapshots are kept."""

    snapshot_days: int = Field(15, title="Snapshot retention (days)", description="Snapshots without a violation expire after this.", ge=1)
    evidence_days_after_close: int = Field(180, title="Evidence retention (days)", description="Evidence of a closed case is kept this long.", ge=1)


class HealthConfig(_Strict):
    """Debounced camera health and snapshot quality thresholds."""

    offline_after_failures: int = Field(3, title="Failures before offline", description="Consecutive failed grabs that mark a camera offline.", ge=1)
    online_after_successes: int = Field(2, title="Successes before online", description="Consecutive good grabs that bring it back online.", ge=1)
    blur_threshold: float = Field(60.0, title="Blur threshold", description="Variance of the Laplacian below which a frame is blurred.", ge=0)
    dark_threshold: float = Field(35.0, title="Dark threshold", description="Mean grey level below which a frame is too dark.", ge=0, le=255)
    uniform_threshold: float = Field(6.0, title="Uniform threshold", description="Grey-level standard deviation below which a frame is blocked.", ge=0)
    quality_events_after: int = Field(3, title="Bad frames before event", description="Consecutive bad-quality frames that raise a camera event.", ge=1)


class CaptureConfig(_Strict):
    """How frames are captured and encoded."""

    jpeg_quality: int = Field(85, title="JPEG quality", description="Quality of the single JPEG encoding.", ge=30, le=100)
    max_workers: int = Field(16, title="Capture workers", description="Threads that run slots concurrently.", ge=1, le=1024)


class Settings(BaseSettings):
    """The whole configuration of one canteen-watch deployment."""

    model_config = SettingsConfigDict(extra="forbid", env_prefix="CANTEEN_WATCH_", env_nested_delimiter="__", frozen=True)

    data_dir: Path = Field(Path(".cw-data"), title="Data folder", description="Where the SQLite file, spool, S3 data and keys live.")
    timezone: str | None = Field(None, title="Time zone", description="IANA zone for cron schedules, e.g. 'Asia/Shanghai'; the machine's zone when empty.")
    sites: list[SiteConfig] = Field(default_factory=list, title="Sites", description="School canteens and care institutions.")
    cameras: list[CameraConfig] = Field(default_factory=list, title="Cameras", description="Cameras and their schedules.")
    storage: StorageConfig = Field(default_factory=StorageConfig, title="Storage", description="S3 object storage.")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig, title="Database", description="SQL database.")
    retention: RetentionConfig = Field(default_factory=RetentionConfig, title="Retention", description="Snapshot and evidence retention.")
    health: HealthConfig = Field(default_factory=HealthConfig, title="Health", description="Camera health and quality checks.")
    capture: CaptureConfig = Field(default_factory=CaptureConfig, title="Capture", description="Capture and encoding.")
    workflows: WorkflowSettings = Field(default_factory=WorkflowSettings, title="Workflows", description="Violations, deadlines, escalation, notifications and login policy.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone

    @model_validator(mode="after")
    def _references(self) -> "Settings":
        site_ids = [s.id for s in self.sites]
        camera_ids = [c.id for c in self.cameras]
        for label, ids in (("site", site_ids), ("camera", camera_ids)):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"duplicate {label} ids: {', '.join(duplicates)}")
        for camera in self.cameras:
            if camera.site not in site_ids:
                raise ValueError(f"camera {camera.id!r} names unknown site {camera.site!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides win over the TOML values passed as init kwargs.
        return env_settings, init_settings

    # -- convenience -----------------------------------------------------------------------
    def camera(self, camera_id: str) -> CameraConfig:
        """Return the camera with this id, or raise KeyError naming it."""
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(f"no camera {camera_id!r} in the configuration")

    def site(self, site_id: str) -> SiteConfig:
        """Return the site with this id, or raise KeyError naming it."""
        for site in self.sites:
            if site.id == site_id:
                return site
        raise KeyError(f"no site {site_id!r} in the configuration")

    @property
    def database_url(self) -> str:
        """The configured URL, or a SQLite file inside data_dir."""
        return self.database.url or f"sqlite:///{(self.data_dir / 'canteen-watch.db').resolve()}"

    @property
    def spool_path(self) -> Path:
        """Absolute spool folder."""
        spool = self.storage.spool_dir
        return spool if spool.is_absolute() else (self.data_dir / spool).resolve()


def format_validation_error(error: ValidationError) -> str:
    """Turn a pydantic error into lines of ``key.path[3].field: reason``."""
    lines = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = item["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{path or '<root>'}: {message}")
    return "\n".join(lines)


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load the TOML file (if any) and apply environment overrides.

    Args:
        path: TOML file; defaults to ``$CANTEEN_WATCH_CONFIG`` or ``canteen-watch.toml`` if present.
        **overrides: Top-level values that replace the file's (used by the demo and tests).

    Raises:
        ConfigError: The file is missing, is not TOML, or does not validate; the message names
            each offending key path.
    """
    if path is None:
        env_path = os.environ.get(CONFIG_ENV_VAR)
        path = Path(env_path) if env_path else (Path("canteen-watch.toml") if Path("canteen-watch.toml").exists() else None)
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: configuration file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}invalid configuration\n{format_validation_error(exc)}") from exc

