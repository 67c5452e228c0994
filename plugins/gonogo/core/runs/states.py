"""Airflow's task-instance states, as the pure core sees them.

The core never imports Airflow, so it cannot name ``TaskInstanceState``. Its
functions take states as the strings Airflow stores (``TaskInstanceState`` is a
``str`` enum, so its members compare equal to these). A test checks that every
value here is one of Airflow's; the DAG and server layers use
``TaskInstanceState`` itself.
"""

from __future__ import annotations

SUCCESS = "success"
FAILED = "failed"
UPSTREAM_FAILED = "upstream_failed"
SKIPPED = "skipped"
AWAITING_INPUT = "awaiting_input"
QUEUED = "queued"
RUNNING = "running"
SCHEDULED = "scheduled"
UP_FOR_RETRY = "up_for_retry"
UP_FOR_RESCHEDULE = "up_for_reschedule"
DEFERRED = "deferred"
RESTARTING = "restarting"

FAILED_STATES = frozenset({FAILED, UPSTREAM_FAILED})
#: Work that has started or is about to, and may still change something.
IN_FLIGHT = frozenset(
    {QUEUED, RUNNING, SCHEDULED, UP_FOR_RETRY, UP_FOR_RESCHEDULE, DEFERRED, RESTARTING}
)
#: A request still open, or about to be.
OPEN = frozenset({AWAITING_INPUT, RUNNING, QUEUED, SCHEDULED})
ENDED = frozenset({SUCCESS, FAILED, SKIPPED})
