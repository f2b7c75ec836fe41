"""Snapshot scheduling: one APScheduler 3.x job per enabled camera in a single process.

**Triggers.** ``interval_seconds`` becomes an :class:`~apscheduler.triggers.interval.IntervalTrigger`
whose ``start_date`` is the Unix epoch, so slots fall on a fixed grid (every 300 s means
:00, :05, :10 … past the hour, whenever the process started). ``cron`` becomes
``CronTrigger.from_crontab`` in the scheduler's time zone, after translating the day-of-week
field from crontab numbering (0 or 7 = Sunday) to weekday names: APScheduler 3.x reads
``from_crontab``'s numbers with 0 = *Monday*, so ``1-5`` would silently mean Tuesday–Saturday.
(As in APScheduler, when both day-of-month and day-of-week are restricted a day must match
both, unlike classic cron's "either".)

**Jobs.** ``id`` = camera id, ``coalesce=True`` (after a stall, run once, not once per missed
slot), ``max_instances=1`` (never two captures of a camera at once), ``misfire_grace_time`` from
the camera config (whole seconds, at least 1: APScheduler 3 takes an int), ``jitter`` from the
camera config; a :class:`SlotThreadPoolExecutor` of ``CaptureConfig.max_workers`` threads runs
them. The job function :func:`run_camera_job` is module-level
so APScheduler can store it by reference.

**Slot time rule.** The job calls ``run_slot(camera_id, slot_time)`` where ``slot_time`` is the
*nominal* fire time, without jitter: the latest grid point (interval) or cron match at or before
the run time APScheduler scheduled (:func:`nominal_slot_time`). The jittered run time reaches the
job through :class:`SlotThreadPoolExecutor`, so a run that waits in the pool queue behind busy
workers is still credited to its own slot, not to the one during which it happened to start.
Jitter only delays a run and must be shorter than the gap between slots (checked by
:func:`validate_schedule`), so a jittered run maps back to its own slot, and re-running a slot
yields the same slot time. After a stall, APScheduler coalesces the missed runs into one, credited
to the latest slot that was due. (Run with another executor, the job falls back to the moment it
starts.)

APScheduler 3.x's interval trigger computes each next fire time from the previous *jittered*
one, which makes the schedule drift by the average jitter every run; :class:`GridIntervalTrigger`
snaps the previous time back to the grid first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from tzlocal import get_localzone

from canteen_watch.config import CameraConfig, Settings
from canteen_watch.core import as_utc, utcnow

RunSlot = Callable[[str, datetime], object]
"""``run_slot(camera_id, slot_time)``; ``slot_time`` is aware UTC."""

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# Timestamps in APScheduler's interval trigger are floats; a fire time may land a microsecond
# before its grid point. Moments this close below a grid point count as that grid point.
_GRID_TOLERANCE = timedelta(milliseconds=1)
_CRON_GAP_SAMPLES = 500


class ScheduleError(ValueError):
    """A camera's schedule cannot be run as configured; the message names the camera."""


# -- helpers -------------------------------------------------------------------------------------
def _zone(tz: tzinfo | str | None) -> tzinfo:
    """A tzinfo for ``tz``: the local zone when None, an IANA name, or a tzinfo."""
    if tz is None:
        return get_localzone()
    if isinstance(tz, str):
        from zoneinfo import ZoneInfo

        return timezone.utc if tz.upper() == "UTC" else ZoneInfo(tz)
    return tz


def interval_of(camera: CameraConfig) -> timedelta:
    """The camera's interval as a whole number of microseconds."""
    assert camera.schedule.interval_seconds is not None
    return timedelta(microseconds=round(camera.schedule.interval_seconds * 1_000_000))


def floor_to_grid(moment: datetime, interval: timedelta) -> datetime:
    """The latest epoch-aligned grid point at or before ``moment`` (aware UTC)."""
    elapsed = as_utc(moment) - EPOCH + _GRID_TOLERANCE
    return EPOCH + interval * (elapsed // interval)


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _dow_number(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit():
        value = int(token)
        if not 0 <= value <= 7:
            raise ValueError(f"day of week {value} is outside 0-7")
        return value % 7
    if token[:3] in _DOW_NAMES:
        return _DOW_NAMES.index(token[:3])
    raise ValueError(f"unknown day of week {token!r}")


def crontab_day_of_week(field: str) -> str:
    """Translate a crontab day-of-week field (0/7 = Sunday) into APScheduler weekday names.

    ``"1-5"`` → ``"mon,tue,wed,thu,fri"``, ``"0,6"`` → ``"sun,sat"``, ``"*/2"`` →
    ``"sun,tue,thu,sat"``; ``"*"`` and ``"?"`` stay ``"*"``.

    Raises:
        ValueError: The field is not valid crontab syntax.
    """
    if field.strip() in ("*", "?"):
        return "*"
    days: list[int] = []
    for part in field.split(","):
        spec, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step must be positive in {part!r}")
        if spec in ("*", "?"):
            first, last = 0, 6
        elif "-" in spec:
            start, end = spec.split("-", 1)
            first, last = _dow_number(start), _dow_number(end)
            if end.strip() == "7":
                last = 7  # "5-7" means Friday to Sunday
            if last < first:
                last += 7  # wrap-around, e.g. "fri-mon"
        else:
            first = _dow_number(spec)
            last = 6 if step_text else first
        days.extend(d % 7 for d in range(first, last + 1, step))
    ordered = sorted(set(days))
    return ",".join(_DOW_NAMES[d] for d in ordered)


def crontab_trigger(expr: str, tz: tzinfo | str | None = None, jitter: float | None = None) -> CronTrigger:
    """``CronTrigger.from_crontab`` with crontab weekday numbering (see the module docstring).

    Raises:
        ValueError: Not a five-field crontab expression.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 crontab fields, got {len(fields)} in {expr!r}")
    fields[4] = crontab_day_of_week(fields[4])
    trigger = CronTrigger.from_crontab(" ".join(fields), timezone=_zone(tz))
    trigger.jitter = jitter or None
    return trigger


class GridIntervalTrigger(IntervalTrigger):
    """An epoch-aligned :class:`IntervalTrigger` whose jittered runs do not drift off the grid."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """Next grid point (plus jitter) after the *grid point* of ``previous_fire_time``."""
        if previous_fire_time is not None:
            previous_fire_time = floor_to_grid(previous_fire_time, self.interval).astimezone(self.timezone)
        return super().get_next_fire_time(previous_fire_time, now)


def trigger_for(camera: CameraConfig, tz: tzinfo | str | None = None) -> BaseTrigger:
    """The APScheduler trigger of a camera's schedule (with its jitter)."""
    schedule = camera.schedule
    jitter = schedule.jitter_seconds or None
    if schedule.interval_seconds is not None:
        return GridIntervalTrigger(seconds=interval_of(camera).total_seconds(), start_date=EPOCH, timezone=timezone.utc, jitter=jitter)
    assert schedule.cron is not None
    return crontab_trigger(schedule.cron, tz, jitter)


def _cron_min_gap(trigger: CronTrigger, start: datetime) -> timedelta | None:
    """Smallest gap between the next :data:`_CRON_GAP_SAMPLES` fire times from ``start``.

    ``trigger`` must have no jitter.
    """
    previous = trigger.get_next_fire_time(None, start)
    gap: timedelta | None = None
    for _ in range(_CRON_GAP_SAMPLES):
        if previous is None:
            break
        following = trigger.get_next_fire_time(previous, previous + _MICROSECOND)
        if following is None:
            break
        gap = following - previous if gap is None else min(gap, following - previous)
        previous = following
    return gap


def validate_schedule(camera: CameraConfig, tz: tzinfo | str | None = None) -> None:
    """Check that the camera's jitter is shorter than the gap between its slots.

    Raises:
        ScheduleError: Jitter too long (a run could land in the next slot), or the cron
            expression never fires.
    """
    schedule = camera.schedule
    if schedule.interval_seconds is not None:
        gap = interval_of(camera)
        if gap <= timedelta(0):
            raise ScheduleError(f"camera {camera.id!r}: interval {schedule.interval_seconds}s is below one microsecond")
    else:
        try:
            trigger = crontab_trigger(schedule.cron or "", tz)
        except ValueError as exc:
            raise ScheduleError(f"camera {camera.id!r}: invalid cron expression {schedule.cron!r}: {exc}") from None
        found = _cron_min_gap(trigger, utcnow())
        if found is None:
            raise ScheduleError(f"camera {camera.id!r}: cron expression {schedule.cron!r} never fires")
        gap = found
    if timedelta(seconds=schedule.jitter_seconds) >= gap - _GRID_TOLERANCE:
        raise ScheduleError(
            f"camera {camera.id!r}: jitter {schedule.jitter_seconds:g}s must be shorter than the {gap.total_seconds():g}s between slots"
        )


# -- nominal slot times --------------------------------------------------------------------------
def _latest_cron_fire(expr: str, moment: datetime, tz: tzinfo | str | None) -> datetime:
    trigger = crontab_trigger(expr, tz)
    trigger.start_date = EPOCH.astimezone(trigger.timezone)
    moment_utc = as_utc(moment)
    for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=366), timedelta(days=366 * 8)):
        candidate = trigger.get_next_fire_time(None, moment_utc - window)
        latest: datetime | None = None
        while candidate is not None and candidate <= moment_utc:
            latest = candidate
            candidate = trigger.get_next_fire_time(candidate, candidate + _MICROSECOND)
        if latest is not None:
            return as_utc(latest)
    raise ScheduleError(f"cron expression {expr!r} has no fire time in the eight years before {moment_utc.isoformat()}")


def nominal_slot_time(camera: CameraConfig, moment: datetime, *, tz: tzinfo | str | None = None) -> datetime:
    """The slot a run at ``moment`` belongs to: the latest nominal fire time at or before it.

    Interval schedules: ``epoch + floor((moment - epoch) / interval) * interval``. Cron
    schedules: the latest crontab match (evaluated in ``tz``, the scheduler's zone) at or before
    ``moment``. Deterministic: the same camera and moment always give the same slot.

    Args:
        camera: The camera and its schedule.
        moment: When the run started (aware, or naive UTC).
        tz: Time zone of cron expressions; the local zone when None.

    Returns:
        Aware UTC datetime.
    """
    if camera.schedule.interval_seconds is not None:
        return floor_to_grid(moment, interval_of(camera))
    assert camera.schedule.cron is not None
    return _latest_cron_fire(camera.schedule.cron, moment, tz)


# -- the job and the scheduler -------------------------------------------------------------------
def run_camera_job(camera: CameraConfig, run_slot: RunSlot, tz: tzinfo | str | None = None, scheduled_for: datetime | None = None) -> None:
    """The scheduled job: work out the nominal slot time and call ``run_slot``.

    Args:
        camera: The camera.
        run_slot: The caller's callback.
        tz: Time zone of cron schedules.
        scheduled_for: The (jittered) run time APScheduler scheduled, added by
            :class:`SlotThreadPoolExecutor`; the current time when absent.

    Exceptions from ``run_slot`` propagate to APScheduler, which logs them with the job id.
    """
    run_slot(camera.id, nominal_slot_time(camera, scheduled_for or utcnow(), tz=tz))


class SlotThreadPoolExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling each snapshot job the run time it was scheduled for.

    APScheduler 3 calls a job with its stored arguments only; the scheduled run time stays inside
    the executor. This executor hands :func:`run_camera_job` a copy of the job whose kwargs also
    carry ``scheduled_for``, the run time being executed (one, since jobs coalesce).
    """

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        if job.func is run_camera_job and len(run_times) == 1:
            job = _job_with_kwargs(job, scheduled_for=run_times[0])
        super()._do_submit_job(job, run_times)


def _job_with_kwargs(job: Job, **extra: object) -> Job:
    """A shallow copy of ``job`` (same id, so instance counting is unchanged) with more kwargs."""
    clone = Job.__new__(Job)
    for name in Job.__slots__:
        if name != "__weakref__" and hasattr(job, name):
            setattr(clone, name, getattr(job, name))
    clone.kwargs = {**job.kwargs, **extra}
    return clone


def build_scheduler(settings: Settings, run_slot: RunSlot, *, tz: tzinfo | str | None = None) -> BackgroundScheduler:
    """A configured, not yet started, scheduler with one job per enabled camera.

    Args:
        settings: Cameras (disabled ones are skipped) and ``capture.max_workers``.
        run_slot: Called as ``run_slot(camera_id, slot_time)`` from a pool thread.
        tz: Scheduler time zone, used by cron schedules; the local zone when None.

    Raises:
        ScheduleError: A camera's jitter is not shorter than the gap between its slots.
    """
    zone = _zone(tz)
    cameras = [camera for camera in settings.cameras if camera.enabled]
    for camera in cameras:
        validate_schedule(camera, zone)
    scheduler = BackgroundScheduler(
        executors={"default": SlotThreadPoolExecutor(max_workers=settings.capture.max_workers)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=zone,
        daemon=True,
    )
    for camera in cameras:
        scheduler.add_job(
            run_camera_job,
            trigger=trigger_for(camera, zone),
            kwargs={"camera": camera, "run_slot": run_slot, "tz": zone},
            id=camera.id,
            name=f"snapshot {camera.id}",
            misfire_grace_time=max(1, round(camera.schedule.misfire_grace_seconds)),
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )
    return scheduler
