"""Escalation of overdue cases (a scheduled job).

A case that is ``open`` or ``rectification_due`` when its deadline passes turns **yellow**
(level 1, notification ``violation.overdue``); ``red_after_hours`` of its tier later it turns
**red** (level 2, notification ``violation.escalated``). A job that ran late makes both steps at
once, each ledgered and notified. Cases waiting for a re-check (``rectification_submitted``) do
not escalate: the site has done its part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import SiteRow
from canteen_watch.events import EventSink
from canteen_watch.workflows.models import ViolationRow
from canteen_watch.workflows.notifications import EVENT_ESCALATED, EVENT_OVERDUE, enqueue_violation_event
from canteen_watch.workflows.states import ESCALATABLE_STATES, ViolationAction
from canteen_watch.workflows.tiers import WorkflowSettings
from canteen_watch.workflows.violations import transition

log = logging.getLogger(__name__)

ESCALATION_ACTOR = "system:escalation"
YELLOW, RED = 1, 2
LEVEL_NAMES = {YELLOW: "yellow", RED: "red"}


@dataclass
class EscalationReport:
    """Cases that turned yellow and red in one run."""

    yellow: list[int] = field(default_factory=list)
    red: list[int] = field(default_factory=list)


def escalate_overdue(sessions: sessionmaker[Session], sink: EventSink, now: datetime | None = None, *, config: WorkflowSettings | None = None, limit: int = 1000) -> EscalationReport:
    """Escalate every overdue case one or two levels (scheduled by the lead, e.g. every 5 minutes).

    Args:
        sessions: Session factory.
        sink: Ledger sink (``violation.escalated`` with the level).
        now: Clock; tests pass a controllable one.
        config: ``settings.workflows`` (red-after periods per tier).
        limit: Most cases handled in one run (the next run continues).

    Returns:
        Ids of cases that turned yellow and red.
    """
    now = as_utc(now or utcnow())
    config = config or WorkflowSettings()
    report = EscalationReport()
    with write_transaction(sessions) as session:
        rows = session.execute(
            select(ViolationRow, SiteRow.district)
            .join(SiteRow, SiteRow.id == ViolationRow.site_id)
            .where(ViolationRow.state.in_(ESCALATABLE_STATES), ViolationRow.due_at <= now, ViolationRow.escalation_level < RED)
            .order_by(ViolationRow.due_at, ViolationRow.id)
            .limit(limit)
            .with_for_update(of=ViolationRow, skip_locked=True, key_share=True)
        ).all()
        for row, district in rows:
            tier = config.tier_or_default(row.tier)
            due = as_utc(row.due_at)
            target = RED if now >= due + tier.red_after else YELLOW
            while row.escalation_level < target:
                row.escalation_level += 1
                row.escalated_at = now
                level = row.escalation_level
                transition(
                    session, sink, row, ViolationAction.ESCALATE, actor=ESCALATION_ACTOR, now=now, ledger_action="violation.escalated",
                    payload={"level": LEVEL_NAMES[level], "due_at": due.isoformat(), "overdue_hours": int((now - due).total_seconds() // 3600)},
                )
                event = EVENT_OVERDUE if level == YELLOW else EVENT_ESCALATED
                enqueue_violation_event(session, row, district, event, now, occurrence=f"r{row.rectification_round}-l{level}")
                (report.yellow if level == YELLOW else report.red).append(row.id)
    if report.yellow or report.red:
        log.info("escalated %d case(s) to yellow and %d to red", len(report.yellow), len(report.red))
    return report
