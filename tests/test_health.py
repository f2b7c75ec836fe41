"""Debounced camera health: no flapping on one lost frame; quality alerts raised once and cleared."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from canteen_watch.config import HealthConfig
from canteen_watch.core import Quality
from canteen_watch.health import HealthState, advance

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)
GOOD = Quality(sharpness=300, brightness=120, contrast=50, blurred=False, dark=False, blocked=False)
BLURRED = Quality(sharpness=5, brightness=120, contrast=50, blurred=True, dark=False, blocked=False)
DARK = Quality(sharpness=300, brightness=10, contrast=50, blurred=False, dark=True, blocked=False)


def run(sequence: str, config: HealthConfig, quality: Quality = GOOD) -> tuple[HealthState, list[str]]:
    """Apply a sequence of grabs: 'o' ok, 'x' failed, 'b' blurred, 'd' dark."""
    state, kinds = HealthState(), []
    for step in sequence:
        q = {"o": GOOD, "b": BLURRED, "d": DARK}.get(step)
        state, events = advance(state, ok=step != "x", quality=q, error="timeout" if step == "x" else None, config=config, now=NOW)
        kinds += [e.kind for e in events]
    return state, kinds


@pytest.mark.parametrize(
    ("sequence", "expected_events", "online"),
    [
        ("oooo", [], True),
        ("oxoxoxo", [], True),  # isolated losses never flap
        ("xx", [], True),
        ("xxx", ["offline"], False),
        ("xxxxxx", ["offline"], False),  # one event, not one per failure
        ("xxxo", ["offline"], False),  # one good frame is not enough to come back
        ("xxxoo", ["offline", "online"], True),
        ("xxxoxoo", ["offline", "online"], True),
        ("xxxooxxx", ["offline", "online", "offline"], False),
    ],
)
def test_offline_online_debounce(sequence: str, expected_events: list[str], online: bool) -> None:
    state, kinds = run(sequence, HealthConfig(offline_after_failures=3, online_after_successes=2))
    assert kinds == expected_events
    assert state.online is online


@pytest.mark.parametrize(
    ("sequence", "expected_events", "alert"),
    [
        ("bb", [], None),
        ("bbb", ["quality_alert"], "blurred"),
        ("bbbbb", ["quality_alert"], "blurred"),
        ("bbbo", ["quality_alert", "quality_ok"], None),
        ("bbbddd", ["quality_alert", "quality_alert"], "dark"),
        ("bobobo", [], None),
    ],
)
def test_quality_alerts(sequence: str, expected_events: list[str], alert: str | None) -> None:
    state, kinds = run(sequence, HealthConfig(quality_events_after=3))
    assert kinds == expected_events
    assert state.quality_alert == alert


def test_failure_keeps_last_error() -> None:
    state, _ = advance(HealthState(), ok=False, quality=None, error="connection refused", config=HealthConfig(), now=NOW)
    assert state.last_error == "connection refused"
    state, _ = advance(state, ok=True, quality=GOOD, error=None, config=HealthConfig(), now=NOW)
    assert state.last_error is None
