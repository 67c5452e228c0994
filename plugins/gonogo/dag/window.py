"""The change window: technical work waits for its start and may not run past its end."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gonogo.core.naming import WINDOW_TASK
from gonogo.core.runbook.model import Window


def wait_for_window(window: Window, begin: timedelta = timedelta(0)) -> Any:
    """A task that waits, deferred and holding no worker slot, until the run's planned begin.

    That is T (the window start, or the trigger's ``planned_start``) plus
    ``begin``, which is negative when a gate opens before T.
    """
    from gonogo.dag.clock import ClockWaitSensor

    return ClockWaitSensor(
        task_id=WINDOW_TASK,
        window=window,
        begin=begin,
        offset=begin,
        doc_md="Waits, without a worker slot, until the change window (the planned begin) opens.",
    )


def bound_to_window(window_end: str | None) -> Any:
    """A pre_execute hook: the task may run only until the window ends."""

    def hook(context: Mapping[str, Any]) -> None:
        if not window_end:
            return
        from airflow.sdk.exceptions import AirflowFailException

        end = datetime.fromisoformat(window_end)
        remaining = end - datetime.now(UTC)
        if remaining <= timedelta(0):
            raise AirflowFailException(f"the change window ended at {window_end}; not starting")
        task = context["task"]
        if task.execution_timeout is None or task.execution_timeout > remaining:
            task.execution_timeout = remaining

    return hook
