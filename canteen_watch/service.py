"""The long-running snapshot service: the scheduler plus periodic maintenance.

One scheduler process decides *when*; :func:`canteen_watch.pipeline.process_slot` does the work
in the scheduler's thread pool (and could equally run on a task-queue worker).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from canteen_watch.core import SlotOutcome, utcnow
from canteen_watch.pipeline import PipelineContext, maintain, process_slot
from snapshots.capture import close_sources
from snapshots.schedule import build_scheduler

log = logging.getLogger(__name__)
MAINTENANCE_JOB_ID = "__maintenance__"
LEDGER_JOB_ID = "__ledger_checkpoint__"
ESCALATION_JOB_ID = "__escalation__"
DELIVERY_JOB_ID = "__notifications__"
RETENTION_JOB_ID = "__retention__"


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
        self._add_workflow_jobs()
        if hasattr(context.sink, "tick"):
            self.scheduler.add_job(
                self.run_ledger_tick,
                IntervalTrigger(seconds=ledger_tick_seconds),
                id=LEDGER_JOB_ID,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(ledger_tick_seconds),
            )

    def _add_workflow_jobs(self) -> None:
        """Escalation of overdue cases, notification delivery and nightly retention."""
        jobs = (
            (ESCALATION_JOB_ID, self.run_escalation, IntervalTrigger(minutes=5)),
            (DELIVERY_JOB_ID, self.run_delivery, IntervalTrigger(seconds=30)),
            (RETENTION_JOB_ID, self.run_retention, CronTrigger(hour=2, minute=30)),
        )
        for job_id, func, trigger in jobs:
            self.scheduler.add_job(func, trigger, id=job_id, coalesce=True, max_instances=1, misfire_grace_time=300)

    def _guarded(self, name: str, func: Callable[[], object]) -> object:
        try:
            return func()
        except Exception:
            log.exception("%s failed; retrying on its next run", name)
            return None

    def run_escalation(self) -> object:
        """Escalate overdue cases (yellow, then red)."""
        from canteen_watch.workflows.escalation import escalate_overdue

        c = self.context
        return self._guarded("escalation", lambda: escalate_overdue(c.sessions, c.sink, utcnow(), config=c.settings.workflows))

    def run_delivery(self) -> object:
        """Deliver due notifications from the outbox."""
        from canteen_watch.workflows.notifications import deliver_due

        c = self.context
        return self._guarded("notification delivery", lambda: deliver_due(c.sessions, utcnow(), config=c.settings.workflows))

    def run_retention(self) -> object:
        """Expire snapshots past retention (evidence and holds are kept)."""
        from canteen_watch.retention import run_retention

        c = self.context
        return self._guarded("retention", lambda: run_retention(c.sessions, c.sink, c.store, utcnow(), retention=c.settings.retention))

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
