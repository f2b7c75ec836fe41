"""Scheduler: triggers and job options, nominal slot times, and a real BackgroundScheduler run."""

from __future__ import annotations

import pickle
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from canteen_watch.config import Settings, load_settings
from snapshots.schedule import (
    EPOCH,
    GridIntervalTrigger,
    ScheduleError,
    SlotThreadPoolExecutor,
    build_scheduler,
    crontab_day_of_week,
    nominal_slot_time,
    run_camera_job,
)
from tests.conftest_snapshots import make_camera

UTC = timezone.utc


def _settings(*cameras: dict[str, Any], max_workers: int = 7) -> Settings:
    for camera in cameras:
        camera.setdefault("site", "site-a")
        camera.setdefault("source", "http://127.0.0.1:9/picture")
    return load_settings(None, sites=[{"id": "site-a", "name": "A", "district": "D"}], cameras=list(cameras), capture={"max_workers": max_workers})


def _noop(camera_id: str, slot_time: datetime) -> None:
    """A module-level run_slot."""


def test_jobs_created_with_triggers_and_options() -> None:
    settings = _settings(
        {"id": "every-5min", "schedule": {"interval_seconds": 300, "jitter_seconds": 20, "misfire_grace_seconds": 45}},
        {"id": "weekdays", "schedule": {"cron": "*/10 7-19 * * 1-5", "jitter_seconds": 5}},
        {"id": "off", "enabled": False},
    )
    scheduler = build_scheduler(settings, _noop, tz="UTC")
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"every-5min", "weekdays"}

    interval = jobs["every-5min"]
    assert isinstance(interval.trigger, IntervalTrigger)
    assert interval.trigger.start_date == EPOCH
    assert interval.trigger.interval == timedelta(seconds=300)
    assert interval.trigger.jitter == 20
    assert interval.misfire_grace_time == 45

    cron = jobs["weekdays"]
    assert isinstance(cron.trigger, CronTrigger)
    assert str(cron.trigger.fields[cron.trigger.FIELD_NAMES.index("day_of_week")]) == "mon,tue,wed,thu,fri"
    assert cron.trigger.jitter == 5
    assert cron.misfire_grace_time == 30

    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.func is run_camera_job and job.func_ref == "snapshots.schedule:run_camera_job"
        assert job.kwargs["camera"].id == job.id and job.kwargs["run_slot"] is _noop
    assert isinstance(scheduler._executors["default"], SlotThreadPoolExecutor)  # noqa: SLF001
    assert isinstance(scheduler._executors["default"], ThreadPoolExecutor)  # noqa: SLF001
    assert scheduler._executors["default"]._pool._max_workers == 7  # noqa: SLF001
    assert not scheduler.running


def test_triggers_pickle() -> None:
    """Triggers survive a persistent job store (pickled state)."""
    settings = _settings({"id": "a", "schedule": {"interval_seconds": 60, "jitter_seconds": 3}}, {"id": "b", "schedule": {"cron": "0 8 * * 1-5"}})
    for job in build_scheduler(settings, _noop, tz="UTC").get_jobs():
        copy = pickle.loads(pickle.dumps(job.trigger))
        now = datetime(2026, 12, 4, 10, 0, 30, tzinfo=UTC)
        plain = pickle.loads(pickle.dumps(job.trigger))
        plain.jitter = copy.jitter = None
        assert copy.get_next_fire_time(None, now) == plain.get_next_fire_time(None, now)


@pytest.mark.parametrize(
    "schedule",
    [
        {"interval_seconds": 10, "jitter_seconds": 10},
        {"interval_seconds": 10, "jitter_seconds": 12},
        {"cron": "*/5 * * * *", "jitter_seconds": 300},
        {"cron": "0,1 8 * * *", "jitter_seconds": 60},
    ],
)
def test_jitter_must_be_shorter_than_the_slot_gap(schedule: dict) -> None:
    with pytest.raises(ScheduleError, match=r"camera 'cam': jitter .* must be shorter"):
        build_scheduler(_settings({"id": "cam", "schedule": schedule}), _noop, tz="UTC")


def test_cron_that_never_fires_is_rejected() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        build_scheduler(_settings({"id": "cam", "schedule": {"cron": "0 0 30 2 *"}}), _noop, tz="UTC")


@pytest.mark.parametrize(
    ("interval", "moment", "slot"),
    [
        (300, datetime(2026, 12, 4, 10, 7, 33, 123456, tzinfo=UTC), datetime(2026, 12, 4, 10, 5, tzinfo=UTC)),
        (300, datetime(2026, 12, 4, 10, 5, tzinfo=UTC), datetime(2026, 12, 4, 10, 5, tzinfo=UTC)),
        (300, datetime(2026, 12, 4, 10, 9, 59, 998000, tzinfo=UTC), datetime(2026, 12, 4, 10, 5, tzinfo=UTC)),
        (300, datetime(2026, 12, 4, 10, 9, 59, 999999, tzinfo=UTC), datetime(2026, 12, 4, 10, 10, tzinfo=UTC)),  # float rounding
        (7, datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC), datetime(2026, 12, 4, 9, 59, 55, tzinfo=UTC)),  # epoch grid (10:00 is 5 s past a multiple of 7), not the hour
        (3600, datetime(2026, 12, 4, 11, 30, tzinfo=timezone(timedelta(hours=1))), datetime(2026, 12, 4, 10, 0, tzinfo=UTC)),
        (300, datetime(2026, 12, 4, 10, 7, 33), datetime(2026, 12, 4, 10, 5, tzinfo=UTC)),  # naive = UTC
    ],
)
def test_nominal_slot_time_interval(interval: float, moment: datetime, slot: datetime) -> None:
    camera = make_camera("http://cam/picture", schedule={"interval_seconds": interval})
    assert nominal_slot_time(camera, moment) == slot
    assert nominal_slot_time(camera, moment) == nominal_slot_time(camera, moment)
    assert nominal_slot_time(camera, slot) == slot


@pytest.mark.parametrize(
    ("moment", "slot"),
    [
        (datetime(2026, 12, 7, 10, 3, 10, tzinfo=UTC), datetime(2026, 12, 7, 10, 0, tzinfo=UTC)),  # Monday 11:03 Berlin
        (datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC), datetime(2026, 12, 7, 10, 0, tzinfo=UTC)),  # exactly on a match
        (datetime(2026, 12, 6, 10, 3, 10, tzinfo=UTC), datetime(2026, 12, 4, 18, 55, tzinfo=UTC)),  # Sunday → Friday 19:55
        (datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC), datetime(2026, 12, 4, 18, 55, tzinfo=UTC)),  # Monday before 07:00
        (datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC), datetime(2026, 12, 4, 18, 55, tzinfo=UTC)),  # Saturday: crontab 1-5 excludes it
    ],
)
def test_nominal_slot_time_cron(moment: datetime, slot: datetime) -> None:
    camera = make_camera("http://cam/picture", schedule={"cron": "*/5 7-19 * * 1-5", "jitter_seconds": 30})
    assert nominal_slot_time(camera, moment, tz="Europe/Berlin") == slot


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0,6", "sun,sat"),
        ("7", "sun"),
        ("*/2", "sun,tue,thu,sat"),
        ("5-7", "sun,fri,sat"),
        ("fri-mon", "sun,mon,fri,sat"),
        ("MON-Wed", "mon,tue,wed"),
        ("*", "*"),
    ],
)
def test_crontab_day_of_week(field: str, names: str) -> None:
    assert crontab_day_of_week(field) == names


def _fires(trigger: IntervalTrigger, count: int) -> list[datetime]:
    fire = trigger.get_next_fire_time(None, datetime(2026, 12, 4, 10, 0, 1, tzinfo=UTC))
    fires = [fire]
    for _ in range(count - 1):
        fire = trigger.get_next_fire_time(fire, fire)
        fires.append(fire)
    return fires


def test_jittered_interval_stays_on_grid() -> None:
    """Each jittered run lies within jitter after consecutive 10 s grid points."""
    period = timedelta(seconds=10)
    fires = _fires(GridIntervalTrigger(seconds=10, start_date=EPOCH, timezone=UTC, jitter=9), 200)
    first_grid = EPOCH + period * ((fires[0] - EPOCH) // period)
    for index, fire in enumerate(fires):
        grid = first_grid + period * index
        assert grid <= fire <= grid + timedelta(seconds=9), (index, fire)


def test_plain_interval_trigger_drifts_with_jitter() -> None:
    """Why GridIntervalTrigger exists: APScheduler 3.x adds jitter onto the previous jittered time."""
    fires = _fires(IntervalTrigger(seconds=10, start_date=EPOCH, timezone=UTC, jitter=9), 200)
    drift = fires[-1] - fires[0] - timedelta(seconds=10) * 199
    assert drift > timedelta(seconds=60)


def test_scheduler_fires_on_grid() -> None:
    """A real BackgroundScheduler with a 1 s interval calls run_slot with grid slot times."""
    calls: list[tuple[str, datetime, datetime]] = []
    enough = threading.Event()

    def run_slot(camera_id: str, slot_time: datetime) -> None:
        calls.append((camera_id, slot_time, datetime.now(UTC)))
        if len([c for c in calls if c[0] == "fast"]) >= 3:
            enough.set()

    settings = _settings(
        {"id": "fast", "schedule": {"interval_seconds": 1, "jitter_seconds": 0.2}},
        {"id": "slow", "schedule": {"interval_seconds": 3600}},
    )
    scheduler = build_scheduler(settings, run_slot, tz="UTC")
    scheduler.start()
    try:
        assert enough.wait(timeout=6), f"only {len(calls)} runs in 6 s"
    finally:
        scheduler.shutdown(wait=True)
    fast = [(slot, ran) for camera_id, slot, ran in calls if camera_id == "fast"]
    slots = [slot for slot, _ in fast]
    assert all(slot.tzinfo is not None and slot.microsecond == 0 for slot in slots)
    assert len(set(slots)) == len(slots), "each slot runs once"
    assert all(b - a == timedelta(seconds=1) for a, b in zip(slots, slots[1:])), slots
    for slot, ran in fast:
        assert timedelta(0) <= ran - slot < timedelta(seconds=0.9), (slot, ran)


def test_queued_run_keeps_its_own_slot() -> None:
    """A run that starts late (pool busy) is credited to the slot it was scheduled for."""
    calls: list[tuple[str, datetime]] = []
    done = threading.Event()

    def run_slot(camera_id: str, slot_time: datetime) -> None:
        calls.append((camera_id, slot_time))
        done.set()

    settings = _settings({"id": "cam", "schedule": {"interval_seconds": 1, "misfire_grace_seconds": 30}})
    scheduler = build_scheduler(settings, run_slot, tz="UTC")
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("cam")
        scheduled = datetime.now(UTC).replace(microsecond=300_000) - timedelta(seconds=2)  # 2.x s late
        scheduler._executors["default"].submit_job(job, [scheduled])  # noqa: SLF001 - as the scheduler does
        assert done.wait(timeout=5)
    finally:
        scheduler.shutdown(wait=True)
    assert calls == [("cam", scheduled.replace(microsecond=0))]
    assert job.kwargs.keys() == {"camera", "run_slot", "tz"}, "the stored job must not be modified"
