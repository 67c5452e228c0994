"""Reading a run from inside a task: its task states, who started it, whether it is a rehearsal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gonogo.core.naming import CONF_TRIGGER, REHEARSAL_PARAM
from gonogo.core.runs import stamp
from gonogo.core.runs.decisions import recorded_trigger
from gonogo.dag.stamp import SETTING, stamp_secret


def run_states(context: Mapping[str, Any]) -> dict[str, str]:
    """Every task's state in the running DAG run, as the strings Airflow stores.

    Task code cannot reach the metadata database; ``get_task_states`` asks the
    Execution API. States come back as ``TaskInstanceState`` (a ``str`` enum) or
    plain strings, depending on the path; both compare equal to the values in
    :mod:`gonogo.core.runs.states`.
    """
    found = context["ti"].get_task_states(dag_id=context["dag"].dag_id, run_ids=[context["run_id"]])
    return {
        task: str(getattr(state, "value", state))
        for task, state in found.get(context["run_id"], {}).items()
    }


def run_trigger(context: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Who triggered the run: (user id, user name) as the API server recorded and signed them.

    The id comes from the run's conf, written and signed by gonogo's middleware
    from the caller's token (:mod:`gonogo.core.runs.stamp`); the name from Airflow's own
    ``triggering_user_name``. A run started another way (the CLI, another DAG, a
    conf written by hand) has no valid stamp, and so no id.
    """
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None)
    found = conf.get(CONF_TRIGGER) if isinstance(conf, Mapping) else None
    recorded = stamp.verified(stamp_secret(), _dag_id(context), str(context.get("run_id")), found)
    return (recorded["id"] if recorded else None), getattr(dag_run, "triggering_user_name", None)


def _dag_id(context: Mapping[str, Any]) -> str:
    return str(getattr(context.get("dag"), "dag_id", ""))


def stamp_problem(context: Mapping[str, Any]) -> str | None:
    """Why the run's trigger stamp is not valid: missing, or not signed by this installation."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None)
    found = conf.get(CONF_TRIGGER) if isinstance(conf, Mapping) else None
    if recorded_trigger(conf) is None:
        return "nobody known triggered this run"
    if not stamp_secret():
        return f"this worker cannot check who triggered the run: set {SETTING} as on the API server"
    signed = stamp.verified(stamp_secret(), _dag_id(context), str(context.get("run_id")), found)
    if signed is None:
        return (
            "the record of who triggered this run is not the API server's "
            "(its signature is wrong for this DAG and run)"
        )
    airflow_says = getattr(dag_run, "triggering_user_name", None)
    if signed["name"] != airflow_says:
        return (
            f"the API server signed this run for {signed['name']}, but Airflow says "
            f"{airflow_says or 'nobody'} triggered it"
        )
    return None


def is_rehearsal(context: Mapping[str, Any]) -> bool:
    """Whether the run was triggered as a rehearsal (the ``rehearsal`` param of the trigger form)."""
    return bool((context.get("params") or {}).get(REHEARSAL_PARAM))


class Rehearsable:
    """A step's task that, in a rehearsal run, returns what its rehearse action gave instead.

    The rehearse hook (:func:`gonogo.dag.actions.rehearse_instead`) runs in
    pre_execute, after Airflow has already picked the method to run, so the swap
    happens here.
    """

    rehearsed: tuple[Any] | None = None

    def execute(self, context: Any) -> Any:
        if self.rehearsed is not None:
            return self.rehearsed[0]
        return super().execute(context)  # type: ignore[misc]
