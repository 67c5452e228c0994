"""The run view as plain text, one frame at a time, for ``gonogo watch`` in a terminal.

A frame renders :func:`gonogo.core.documents.report.report_data` (the JSON the
run view serves), so the terminal shows what the run view and the board show:
the current activity, who is awaited and for how long, the forecast finish
against the window, and at the end the outcome and why.

Runbook text and people's comments reach a terminal here, so control and
format characters are shown escaped: a comment cannot move the cursor, clear
the screen or reorder the text around it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gonogo.core.documents.html import clock, minutes
from gonogo.core.runs.rollback import SUCCEEDED

#: A run's result when it ended without an outcome record (Airflow's own state).
_SUCCESS_STATE = "success"


def finished(data: Mapping[str, Any]) -> bool:
    """Whether the run has ended: nothing in the frame will change any more."""
    return bool(data.get("end"))


def succeeded(data: Mapping[str, Any]) -> bool:
    """Whether the run ended as planned (``gonogo watch`` exits 0 only then)."""
    return finished(data) and data.get("result") in (SUCCEEDED, _SUCCESS_STATE)


def shown(value: Any) -> str:
    """Text as a terminal may print it: control and format characters escaped."""
    return "".join(
        (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        if unicodedata.category(ch) in ("Cc", "Cf")
        else ch
        for ch in str(value)
    )


def watch_frame(data: Mapping[str, Any]) -> str:
    """One frame of a run: what it is doing, who is awaited, the forecast; or how it ended."""
    status = data.get("status") or {}
    reasons = "; ".join(status.get("reasons") or [])
    lines = [
        f"{shown(data.get('title'))} ({shown(data.get('dag_id'))})",
        f"run {shown(data.get('run_id'))}, started {clock(data.get('start'))} by "
        f"{shown(data.get('triggered_by') or 'the scheduler')}",
        f"status: {status.get('colour', '-')}" + (f": {shown(reasons)}" if reasons else ""),
    ]
    if finished(data):
        lines += _ending(data)
    else:
        activity = data.get("activity") or "starting"
        phase = data.get("phase")
        lines.append(
            f"now: {shown(phase)}: {shown(activity)}" if phase else f"now: {shown(activity)}"
        )
        lines += _awaited(data)
        lines += _timing(data)
    last = (data.get("decisions") or [])[-1:]
    for d in last:
        who = f" by {shown(d.get('by'))}" if d.get("by") else ""
        why = f": {shown(d.get('comment'))}" if d.get("comment") else ""
        where = shown(d.get("gate")) + (f"/{shown(d.get('role'))}" if d.get("role") else "")
        lines.append(f"last decision: {where}: {shown(d.get('answer'))}{who}{why}")
    return "\n".join(lines) + "\n"


def _awaited(data: Mapping[str, Any]) -> list[str]:
    awaited = data.get("awaited") or []
    if not awaited:
        return ["awaited: nobody"]
    lines = ["awaited:"]
    for w in awaited:
        users = ", ".join(shown(u) for u in w.get("users") or []) or "nobody assigned"
        lines.append(
            f"  {shown(w.get('gate'))}/{shown(w.get('role') or '-')}: {users}, "
            f"waiting {minutes(w.get('waiting'))}"
        )
    return lines


def _timing(data: Mapping[str, Any]) -> list[str]:
    forecast, window_end = data.get("forecast_finish"), data.get("window_end")
    if forecast and window_end:
        spare = (_at(window_end) - _at(forecast)).total_seconds()
        against = (
            f"{minutes(spare)} to spare" if spare >= 0 else f"{minutes(-spare)} past the window end"
        )
        line = f"forecast finish {clock(forecast)}, window ends {clock(window_end)}: {against}"
    elif forecast:
        line = f"forecast finish {clock(forecast)} (no change window)"
    else:
        line = "forecast finish: not known yet"
    lines = [line]
    if data.get("planned_end"):
        late = data.get("late")
        if late is None or abs(float(late)) < 60:
            behind = "on plan"
        else:
            behind = f"{'late' if late > 0 else 'ahead'} {minutes(abs(float(late)))}"
        lines.append(f"planned end {clock(data['planned_end'])}, {behind}")
    return lines


def _ending(data: Mapping[str, Any]) -> list[str]:
    outcome = data.get("outcome") or {}
    lines = [f"outcome: {shown(data.get('result'))} at {clock(data.get('end'))}"]
    if outcome.get("reasons"):
        lines.append(f"why: {shown('; '.join(outcome['reasons']))}")
    for label, key in (("undone", "undone"), ("not undone", "not_undone")):
        if outcome.get(key):
            lines.append(f"{label}: {shown(', '.join(outcome[key]))}")
    return lines


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)
