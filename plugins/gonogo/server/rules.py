"""What gonogo refuses in front of Airflow's REST API, as plain functions over plain data.

The middleware (:mod:`gonogo.server.middleware`) finds the route, reads the body
and the records; these functions decide. Every refusal says what to do instead,
because a person reads it on the Required Actions page or in a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gonogo.core import naming
from gonogo.core.earlylife.incident import ONLY_WITH
from gonogo.core.runbook.rules import is_json_type

#: Task types whose state is a person's decision or gonogo's own bookkeeping.
PROTECTED_TYPES = frozenset(
    {
        "GateRoleOperator",
        "GateChecksOperator",
        "ManualStepOperator",
        "GuidedStepOperator",
        "UndoSlot",
        "RollbackStartSensor",
        "RollbackApprovalOperator",
        "AcquireLockSensor",
        "CallOperator",
        "IncidentReportOperator",
    }
)
PROTECTED_IDS = frozenset(naming.RESERVED_IDS - {naming.ROLLBACK_GROUP, naming.INCIDENT_GROUP})


def is_protected(task_id: str, task_type: str | None) -> bool:
    """Whether a task of a gonogo DAG may not be moved by hand: gates, people's answers, rollback."""
    return (
        task_id in PROTECTED_IDS
        or naming.parse_gate_task(task_id) is not None
        or naming.is_rollback_task(task_id)
        or (task_type or "") in PROTECTED_TYPES
    )


def parse_answer(body: bytes) -> dict[str, Any]:
    """The answer's JSON, or ValueError with what is wrong with its shape."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise ValueError("the answer is not JSON") from None
    if not isinstance(payload, dict):
        raise ValueError("the answer must be a JSON object")
    chosen = payload.get("chosen_options")
    if not isinstance(chosen, list) or not all(isinstance(o, str) for o in chosen):
        raise ValueError("chosen_options must be a list of option names")
    params = payload.get("params_input", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError("params_input must be an object")
    return {"chosen_options": chosen, "params_input": params}


def form_refusal(params_input: Mapping[str, Any], form: Mapping[str, Any] | None) -> str | None:
    """Why ``params_input`` is not exactly what the request's form asked for, or None.

    ``form`` is the request's serialized params (``{name: {"value": …, "schema": {…}}}``).
    Unknown fields and values of the wrong type are refused before Airflow stores them,
    so an answer can never be accepted and then fail the task.
    """
    fields = dict(form or {})
    unknown = sorted(set(params_input) - set(fields))
    if unknown:
        asked = ", ".join(sorted(fields)) or "nothing"
        return f"the form has no field {', '.join(unknown)} (it asks for: {asked}); nothing was recorded"
    for name, value in params_input.items():
        spec = fields[name] if isinstance(fields[name], Mapping) else {}
        schema = spec.get("schema") if isinstance(spec.get("schema"), Mapping) else spec
        wanted = schema.get("type") if isinstance(schema, Mapping) else None
        types = [wanted] if isinstance(wanted, str) else list(wanted or [])
        if types and not is_json_type(value, types):
            return (
                f"{name} must be {' or '.join(types)}, got {type(value).__name__}; "
                "nothing was recorded"
            )
        allowed = schema.get("enum") if isinstance(schema, Mapping) else None
        if isinstance(allowed, list) and value not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            return f"{name} must be one of {shown}, got {value!r}; nothing was recorded"
    return None


def only_with_refusal(
    chosen: Sequence[str], params_input: Mapping[str, Any], form: Mapping[str, Any] | None
) -> str | None:
    """Why a field was set with an option it does not go with, or None.

    A field declares the options it goes with under :data:`ONLY_WITH` in its schema
    (an area report's ``incident`` only with Red); set to anything but its default
    with another option, the answer is refused.
    """
    for name, value in params_input.items():
        spec = (form or {}).get(name)
        if not isinstance(spec, Mapping):
            continue
        schema = spec.get("schema", spec)
        allowed = schema.get(ONLY_WITH) if isinstance(schema, Mapping) else None
        if not isinstance(allowed, list) or value in (None, "", False, spec.get("value")):
            continue
        if not set(chosen) & set(allowed):
            return (
                f"{name} {value!r} goes only with {' or '.join(allowed)}, not with "
                f"{', '.join(chosen) or 'no option'}; nothing was recorded"
            )
    return None


def second_role_refusal(
    user_id: str, task_id: str, answered: Iterable[tuple[str, str | None]]
) -> str | None:
    """One person counts for at most one role per gate.

    ``answered`` is (task id, responder id) of the gate's other answered requests.
    """
    mine = naming.parse_gate_task(task_id)
    if mine is None or mine.role is None:
        return None
    for other_task, responder in answered:
        other = naming.parse_gate_task(other_task)
        if other is None or other.role in (None, mine.role) or other.gate != mine.gate:
            continue
        if responder is not None and str(responder) == user_id:
            return (
                f"you already answered for role {other.role} at gate {mine.gate}; "
                f"one person counts for one role, so another member of {mine.role} must answer"
            )
    return None


def state_change_refusal(
    targets: Iterable[tuple[str, str | None]], *, widened: bool = False, whole_run: bool = False
) -> str | None:
    """Why a manual state change or clear of these tasks of a gonogo run is refused, or None.

    ``targets`` are (task id, task type). ``widened``: the change also reaches upstream or
    downstream tasks; ``whole_run``: it names no task, so it reaches every task.
    """
    fix = (
        "gates are decided only by answers on the Required Actions page, "
        "and rollback and the outcome only by gonogo"
    )
    if whole_run:
        return f"a gonogo run cannot be changed or cleared as a whole by hand: {fix}"
    protected = sorted({t for t, kind in targets if is_protected(t, kind)})
    if protected:
        return f"{', '.join(protected)} cannot be changed by hand: {fix}"
    if widened:
        return (
            "a change that reaches upstream or downstream tasks of a gonogo run cannot be made "
            f"by hand, as it would also move its gates or rollback: {fix}"
        )
    return None
