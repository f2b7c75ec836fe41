"""What ``canteen-watch status`` reports: per-camera health and the spool depth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.config import Settings
from canteen_watch.db.models import CameraHealthRow, CameraRow, SnapshotRow
from canteen_watch.storage import Spool


@dataclass(frozen=True)
class CameraStatus:
    """One camera's line in the status report."""

    camera_id: str
    site_id: str
    enabled: bool
    online: bool
    last_snapshot_at: datetime | None
    stored: int
    spooled: int
    failed: int
    quality_alert: str | None
    last_error: str | None


@dataclass(frozen=True)
class StatusReport:
    """The whole report."""

    cameras: list[CameraStatus]
    spool_files: int
    spooled_rows: int


def collect_status(sessions: sessionmaker[Session], settings: Settings) -> StatusReport:
    """Aggregate snapshot counts per camera in SQL and join the health rows."""
    counts = (
        select(
            SnapshotRow.camera_id,
            func.max(case((SnapshotRow.status.in_(("stored", "spooled")), SnapshotRow.captured_at))).label("last"),
            func.sum(case((SnapshotRow.status == "stored", 1), else_=0)).label("stored"),
            func.sum(case((SnapshotRow.status == "spooled", 1), else_=0)).label("spooled"),
            func.sum(case((SnapshotRow.status == "failed", 1), else_=0)).label("failed"),
        )
        .group_by(SnapshotRow.camera_id)
        .subquery()
    )
    query = (
        select(CameraRow, CameraHealthRow, counts.c.last, counts.c.stored, counts.c.spooled, counts.c.failed)
        .outerjoin(CameraHealthRow, CameraHealthRow.camera_id == CameraRow.id)
        .outerjoin(counts, counts.c.camera_id == CameraRow.id)
        .order_by(CameraRow.site_id, CameraRow.id)
    )
    cameras = []
    with sessions() as session:
        for camera, health, last, stored, spooled, failed in session.execute(query):
            cameras.append(
                CameraStatus(
                    camera_id=camera.id,
                    site_id=camera.site_id,
                    enabled=camera.enabled,
                    online=health.online if health else True,
                    last_snapshot_at=last,
                    stored=int(stored or 0),
                    spooled=int(spooled or 0),
                    failed=int(failed or 0),
                    quality_alert=health.quality_alert if health else None,
                    last_error=health.last_error if health else None,
                )
            )
    return StatusReport(cameras=cameras, spool_files=Spool(settings.spool_path).depth(), spooled_rows=sum(c.spooled for c in cameras))
