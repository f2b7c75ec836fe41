"""The long-running snapshot service: the scheduler plus periodic maintenance.

One scheduler process decides *when*; :func:`canteen_watch.pipeline.process_slot` does the work
in the scheduler's thread pool (and could equally run on a task-queue worker).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime
from types import TracebackType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from canteen_watch.core import SlotOutcome
from canteen_watch.pipeline import PipelineContext, maintain, process_slot
from snapshots.capture import close_sources
from snapshots.schedule import build_scheduler

log = logging.getLogger(__name__)
MAINTENANCE_JOB_ID = "__maintenance__"
LEDGER_JOB_ID = "__ledger_checkpoint__"


class SnapshotService:
    """Schedules every enabled camera and keeps the spool and journal drained.

    Attributes:
        context: The pipeline handles shared by every slot.
        outcomes: Count of slot outcomes by status since start.
        last_outcome: Latest outcome per camera.
    """

    def __init__(self, context: PipelineContext, *, maintenance_seconds: float = 10.0, ledger_tick_seconds: float = 60.0) -> None:
        self.context = context
        self.outcomes: Counter[str] = Counter()
        self.last_outcome: dict[str, SlotOutcome] = {}
        self._lock = threading.Lock()
        self.scheduler: BackgroundScheduler = build_scheduler(context.settings, self.run_slot, tz=context.settings.timezone)
        self.scheduler.add_job(
            self.run_maintenance,
            IntervalTrigger(seconds=maintenance_seconds),
            id=MAINTENANCE_JOB_ID,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(maintenance_seconds),
        )
        if hasattr(context.sink, "tick"):
            self.scheduler.add_job(
                self.run_ledger_tick,
                IntervalTrigger(seconds=ledger_tick_seconds),
                id=LEDGER_JOB_ID,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(ledger_tick_seconds),
            )

    def run_slot(self, camera_id: str, slot_time: datetime) -> SlotOutcome:
        """Process one slot and keep the tallies (called from the scheduler's pool)."""
        try:
            outcome = process_slot(self.context, camera_id, slot_time)
        except Exception:
            log.exception("slot %s@%s crashed", camera_id, slot_time.isoformat())
            with self._lock:
                self.outcomes["crashed"] += 1
            raise
        with self._lock:
            self.outcomes[outcome.status] += 1
            self.last_outcome[camera_id] = outcome
        if outcome.status == "failed":
            log.warning("%s: %s", outcome.slot.key, outcome.reason)
        return outcome

    def run_maintenance(self) -> dict[str, int]:
        """Replay the journal, flush the spool, reconcile rows; never raises."""
        try:
            done = maintain(self.context)
        except Exception:
            log.exception("maintenance pass failed; retrying on the next pass")
            return {}
        if any(done.values()):
            log.info("maintenance: %s", done)
        return done

    def run_ledger_tick(self, force: bool = False) -> None:
        """Make a due (or, with ``force``, an immediate) checkpoint and publish it; never raises."""
        try:
            self.context.sink.tick(force=force)  # type: ignore[attr-defined]
        except Exception:
            log.exception("ledger checkpoint failed; retrying on the next tick")

    def start(self) -> "SnapshotService":
        """Start scheduling."""
        self.scheduler.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop scheduling; with ``wait`` running slots finish first."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        close_sources()
        if hasattr(self.context.sink, "tick"):
            self.run_ledger_tick(force=True)  # sign everything recorded so far

    def __enter__(self) -> "SnapshotService":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
