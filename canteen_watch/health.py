"""Debounced camera health: offline/online and quality alerts without flapping.

A pure state machine: :func:`advance` takes the previous state and one grab's result and
returns the new state plus the events to record. The pipeline persists the state per camera.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from canteen_watch.config import HealthConfig
from canteen_watch.core import Quality


@dataclass(frozen=True)
class HealthState:
    """What we remember about a camera between grabs."""

    online: bool = True
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    consecutive_bad_quality: int = 0
    quality_alert: str | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class HealthEvent:
    """A change worth telling people about."""

    kind: str  # offline | online | quality_alert | quality_ok
    detail: str
    at: datetime


def advance(state: HealthState, *, ok: bool, quality: Quality | None, error: str | None, config: HealthConfig, now: datetime) -> tuple[HealthState, list[HealthEvent]]:
    """Apply one grab's result.

    Args:
        state: The camera's state before this grab.
        ok: Whether a valid frame was captured.
        quality: Quality of that frame (None when the grab failed).
        error: Why the grab failed (None on success).
        config: Thresholds (failures before offline, successes before online, bad frames before a quality event).
        now: The grab's time.

    Returns:
        The new state and the events it raised (possibly none).
    """
    events: list[HealthEvent] = []
    if not ok:
        failures = state.consecutive_failures + 1
        new = replace(state, consecutive_failures=failures, consecutive_successes=0, last_error=error)
        if state.online and failures >= config.offline_after_failures:
            new = replace(new, online=False)
            events.append(HealthEvent("offline", f"{failures} consecutive failed grabs; last: {error}", now))
        return new, events

    successes = state.consecutive_successes + 1
    new = replace(state, consecutive_failures=0, consecutive_successes=successes, last_error=None)
    if not state.online and successes >= config.online_after_successes:
        new = replace(new, online=True)
        events.append(HealthEvent("online", f"{successes} consecutive good grabs", now))

    if quality is not None:
        if quality.ok:
            if state.quality_alert is not None:
                events.append(HealthEvent("quality_ok", f"image quality restored (was {state.quality_alert})", now))
            new = replace(new, consecutive_bad_quality=0, quality_alert=None)
        else:
            bad = state.consecutive_bad_quality + 1
            flags = ",".join(quality.flags)
            new = replace(new, consecutive_bad_quality=bad)
            if bad >= config.quality_events_after and state.quality_alert != flags:
                new = replace(new, quality_alert=flags)
                detail = f"{flags} for {bad} consecutive frames (sharpness {quality.sharpness:.0f}, brightness {quality.brightness:.0f}, contrast {quality.contrast:.1f})"
                events.append(HealthEvent("quality_alert", detail, now))
    return new, events
