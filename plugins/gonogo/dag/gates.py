"""GO/NOGO gates on Airflow's human-in-the-loop operators.

A gate is a TaskGroup ``gate__<id>`` (names in :mod:`gonogo.core.naming`):

- ``checks`` (when the gate lists checks) collects evidence just before the gate
  opens, running each check through the action registry; a failing
  ``required`` check is NOGO without asking anyone.
- ``<role>``: one HITL request per sign-off role, assigned to that role's users
  minus the person who triggered the run (four-eyes; Airflow answers anyone else
  with 403). With ``on_nogo: reask`` a NOGO is not final: ``<role>__round_<n>``
  asks only that role again, showing the previous comment, until it says GO or
  the gate's deadline passes. Other roles' GO answers stand.
- ``watch`` (when the gate has a timeout) emits ``gate_expiring`` at 80 % of the
  timeout, naming the roles that have not answered.
- ``result`` names the gate's decision: GO, NOGO by whom and why, or NOGO
  (timeout) naming the silent roles. It fails on NOGO.

A NOGO (or timeout) at a role's last round fails that task at once: that failure
is the single signal rollback starts from. The API server then withdraws the
gate's other open requests (they end skipped), so nobody is left answering a
gate that is already decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseSensorOperator, TaskGroup
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from gonogo.core import naming
from gonogo.core.change.fingerprint import SHORT
from gonogo.core.runbook.model import Gate, Window
from gonogo.core.runs import states
from gonogo.core.runs.gates import eligible, evidence, gate_body, gate_verdict, literal, summarize
from gonogo.core.settings import EXPIRING_AT
from gonogo.dag.actions import Actions, run_action
from gonogo.dag.clock import hold_until_open
from gonogo.dag.hitl import Request, assignees
from gonogo.dag.hooks import Hook, Hooked, hooked
from gonogo.dag.notify import asking, tell
from gonogo.dag.states import run_states, run_trigger
from gonogo.errors import GateError

log = logging.getLogger(__name__)

#: How long a gate check may take when the runbook sets no timeout.
CHECK_TIMEOUT = timedelta(minutes=10)


# -- checks ------------------------------------------------------------------------------------


def run_checks(checks: list[dict[str, Any]], gate: str, **context: Any) -> list[dict[str, Any]]:
    """Run the gate's checks; a failing required check is NOGO without asking anyone."""
    task = context["task"]
    results = []
    for check in checks:
        log.info("check %s", check["step"])
        try:
            output = run_action(check, context, task.render_template)
            detail = str(output or "as expected").strip().splitlines() or [""]
            passed, text = True, detail[-1][:200]
        except Exception as exc:
            passed, text = False, str(exc)[:200]
        log.info("check %s %s: %s", check["step"], "passed" if passed else "FAILED", text)
        results.append(
            {"id": check["step"], "required": check["required"], "passed": passed, "detail": text}
        )
    failed = [r["id"] for r in results if r["required"] and not r["passed"]]
    context["ti"].xcom_push(key=naming.XCOM_CHECKS, value=results)
    if failed:
        raise AirflowFailException(
            f"NOGO at gate {gate}: required check(s) failed: {', '.join(failed)}"
        )
    return results


class GateChecksOperator(Hooked, PythonOperator):
    """Runs the checks; each check is rendered by :func:`run_action` when it runs, not before."""

    template_fields: Sequence[str] = ()


# -- the request -------------------------------------------------------------------------------


class GateRoleOperator(Request):
    """One round of one role's sign-off at a gate."""

    event = "gate_waiting"

    def __init__(
        self,
        *,
        gate: Gate,
        role: str,
        users: Sequence[str],
        round_no: int,
        evidence_steps: Sequence[tuple[str, str, float | None]],
        subject: str,
        body: str,
        window: Window | None,
        begin: timedelta,
        appendix: Callable[[], str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.gate_id = gate.gate
        self.gate_title = gate.title or gate.gate
        self.appendix = appendix
        self.role = role
        self.users = list(users)
        self.round_no = round_no
        self.rounds = naming.round_ids(role, gate.on_nogo == "reask")
        self.reask = gate.on_nogo == "reask"
        self.gate_timeout = gate.timeout
        self.decide_by = gate.decide_by
        self.window = window
        self.begin = begin
        self.has_checks = bool(gate.checks)
        self.evidence_steps = list(evidence_steps)
        super().__init__(
            subject=subject,
            body=body,
            options=[naming.GO, naming.NOGO],
            assigned_users=assignees(self.users),
            **self._request(kwargs, "Why; required for NOGO", [naming.NOGO]),
        )

    @property
    def is_last_round(self) -> bool:
        return self.round_no == len(self.rounds) - 1

    def _pull(self, context: Any, part: str, key: str = naming.RETURN_VALUE) -> Any:
        return context["ti"].xcom_pull(task_ids=naming.gate_task(self.gate_id, part), key=key)

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        previous: dict[str, Any] | None = None
        if self.round_no:
            previous = self._pull(context, self.rounds[self.round_no - 1])
            if not previous or previous.get("answer") != naming.NOGO:
                raise AirflowSkipException(f"role {self.role} already answered; not asking again")
        deadline = self._deadline(context, previous)
        trigger_id, triggered_by = run_trigger(context)
        allowed = eligible(self.users, trigger_id, triggered_by)
        if not allowed:
            raise GateError(
                f"gate {self.gate_id}: role {self.role!r} has no eligible approver: its only member "
                f"{triggered_by!r} started this rollout and may not approve it (four-eyes rule)"
            )
        self.assigned_users = assignees(allowed)
        if deadline is not None:
            remaining = deadline - datetime.now(UTC)
            if remaining <= timedelta(0):
                return self._timed_out(context)
            self.response_timeout = remaining
        ti.xcom_push(key=naming.XCOM_DEADLINE, value=deadline.isoformat() if deadline else None)
        self.body = self._full_body(context, previous)
        log.info(
            "gate %s: asking role %s (%s)%s%s",
            self.gate_id,
            self.role,
            ", ".join(allowed),
            f", round {self.round_no + 1}" if self.round_no else "",
            f"; {triggered_by} started the run and may not answer"
            if len(allowed) < len(self.users)  # by id or name: FAB's ids are not names
            else "",
        )
        return super().execute(context)

    def _deadline(self, context: Any, previous: Mapping[str, Any] | None) -> datetime | None:
        """When the gate must be decided: the earliest of its timeout and its ``decide_by``.

        Rounds of a reask gate share the first round's deadline.
        """
        if previous and previous.get("deadline"):
            return datetime.fromisoformat(previous["deadline"])
        now = datetime.now(UTC)
        limits = []
        if self.gate_timeout is not None:
            limits.append(now + self.gate_timeout)
        if isinstance(self.decide_by, timedelta):
            limits.append(now + self.decide_by)
        elif self.decide_by is not None:  # a moment relative to T
            from gonogo.dag.clock import run_start

            limits.append(run_start(context, self.window, self.begin) + self.decide_by.offset)
        return min(limits) if limits else None

    def _full_body(self, context: Any, previous: Mapping[str, Any] | None) -> str:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        body = self.body or ""
        if previous:
            body = (
                f"**Asked again.** Last time {previous.get('by')} answered NOGO for {self.role}: "
                f"\u201c{previous.get('comment')}\u201d\n\n" + body
            )
        try:
            crumbs = list(
                RuntimeTaskInstance.get_task_breadcrumbs(context["dag"].dag_id, context["run_id"])
            )
        except Exception:  # evidence is a help, never a reason to fail the gate
            log.warning("could not read the run's finished steps", exc_info=True)
            crumbs = []
        checks = (
            self._pull(context, naming.CHECKS, key=naming.XCOM_CHECKS) if self.has_checks else None
        )
        body += "\n" + plan_evidence(context)
        if self.appendix is not None:  # a plan approval: nothing has run, the plan is the body
            return body + "\n\n---\n\n" + self.appendix()
        return body + "\n" + evidence(self.evidence_steps, crumbs, checks or [])

    def _record(self, context: Any, answer: str, by: str | None, comment: str) -> dict[str, Any]:
        deadline = context["ti"].xcom_pull(task_ids=self.task_id, key=naming.XCOM_DEADLINE)
        return {
            "gate": self.gate_id,
            "role": self.role,
            "round": self.round_no + 1,
            "answer": answer,
            "by": by,
            "comment": comment,
            "at": datetime.now(UTC).isoformat(),
            "deadline": deadline,
        }

    def _timed_out(self, context: Any) -> Any:
        record = self._record(context, "timeout", None, "")
        context["ti"].xcom_push(key=naming.RETURN_VALUE, value=record)
        tell(
            context,
            "gate_decided",
            self.gate_id,
            **record,
            gate_title=self.gate_title,
            decision=naming.NOGO,
            timed_out=True,
        )
        raise AirflowFailException(
            f"NOGO (timeout) at gate {self.gate_id}: role {self.role} did not answer in time"
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            return self._timed_out(context)
        log.info(
            "gate %s: %s answered %s for role %s%s",
            self.gate_id,
            given.by,
            given.option,
            self.role,
            f": {given.comment}" if given.comment else "",
        )
        record = self._record(context, str(given.option), given.by, given.comment)
        record["by_id"] = given.by_id
        if given.option == naming.NOGO and (not self.reask or self.is_last_round):
            context["ti"].xcom_push(key=naming.RETURN_VALUE, value=record)
            tell(
                context,
                "gate_decided",
                self.gate_id,
                **record,
                gate_title=self.gate_title,
                decision=naming.NOGO,
            )
            raise AirflowFailException(
                f"NOGO at gate {self.gate_id} from {given.by} for {self.role}: {given.comment}"
            )
        if given.option == naming.NOGO:
            log.info("on_nogo is reask: role %s will be asked again", self.role)
        return record


def plan_evidence(context: Any) -> str:
    """What the preflight found: the plan's fingerprint, its approval, its run elsewhere."""
    ti = context["ti"]
    found = ti.xcom_pull(task_ids=naming.PREFLIGHT_TASK) or {}
    plan = ti.xcom_pull(task_ids=naming.PREFLIGHT_TASK, key=naming.XCOM_FINGERPRINT) or {}
    lines = []
    if plan.get("digest"):
        lines.append(f"- Plan fingerprint: `{str(plan['digest'])[:SHORT]}`")
    if found.get("rehearsal"):
        lines.append("- **Rehearsal:** steps run their rehearse action; nothing real changes.")
    approval = found.get("approval") or {}
    if approval.get("approved_by"):
        lines.append(
            f"- Plan approved by {', '.join(approval['approved_by'])} at "
            f"{approval.get('approved_at')} (approval run `{approval.get('run_id')}`)"
        )
    elif found.get("retrospective"):
        lines.append("- Emergency change: **retrospective approval required** by the CAB.")
    promotion = found.get("promotion") or {}
    if promotion.get("run_id"):
        lines.append(
            f"- Succeeded in {promotion.get('environment')}: run `{promotion['run_id']}` of "
            f"`{promotion.get('dag_id')}` at {promotion.get('at')}, started by {promotion.get('by')}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


# -- the next phase checks the records ------------------------------------------------------


def verify_gates(gates: Sequence[Gate], role_users: Mapping[str, Sequence[str]]) -> Hook:
    """A pre_execute hook for work after gates: each gate must be GO by its answer records.

    A gate task marked success by hand leaves no answer record, so the work after it
    fails here, and rollback starts, instead of running on a decision nobody made.
    """
    wanted = [
        (g.gate, {r: naming.round_ids(r, g.on_nogo == "reask") for r in g.sign_off}) for g in gates
    ]
    users = {role: list(members) for role, members in role_users.items()}

    def hook(context: Any) -> None:
        ti = context["ti"]
        trigger_id, trigger_name = run_trigger(context)
        for gate_id, roles in wanted:
            records = {
                role: [ti.xcom_pull(task_ids=naming.gate_task(gate_id, r)) for r in rounds]
                for role, rounds in roles.items()
            }
            reason = gate_verdict(gate_id, records, users, trigger_id, trigger_name)
            if reason:
                raise AirflowFailException(f"not started: {reason}")

    return hook


# -- watch and result --------------------------------------------------------------------------


class GateWatchSensor(Hooked, BaseSensorOperator):
    """Emits ``gate_expiring`` at 80 % of the gate's timeout, naming who has not answered."""

    def __init__(self, *, gate: Gate, **kwargs: Any) -> None:
        assert gate.timeout is not None
        # Reschedules re-queue the same try; Airflow 3.3 can fail such a task when the
        # worker's exit event arrives late, so pokes stay >= 5 s apart and a retry covers it.
        interval = max(5.0, min(30.0, gate.timeout.total_seconds() / 20))
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", interval)
        kwargs.setdefault("timeout", gate.timeout.total_seconds() * 2 + 60)
        kwargs["retries"] = 3
        kwargs["retry_delay"] = timedelta(seconds=2)
        super().__init__(**kwargs)
        self.gate_id = gate.gate
        self.gate_title = gate.title or gate.gate
        self.timeout_seconds = gate.timeout.total_seconds()
        reask = gate.on_nogo == "reask"
        self.roles = {role: naming.round_ids(role, reask) for role in gate.sign_off}

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        # The gate opened when its requests did: each round-1 request records its deadline.
        # (Read from there, not kept here: a retry of this sensor clears its own XCom.)
        deadlines = [
            ti.xcom_pull(
                task_ids=naming.gate_task(self.gate_id, rounds[0]), key=naming.XCOM_DEADLINE
            )
            for rounds in self.roles.values()
        ]
        known = [datetime.fromisoformat(d) for d in deadlines if d]
        if not known:
            return False
        opened = min(known) - timedelta(seconds=self.timeout_seconds)
        task_states = run_states(context)

        def state(part: str) -> str | None:
            return task_states.get(naming.gate_task(self.gate_id, part))

        silent = [
            role
            for role, rounds in self.roles.items()
            if not any(state(r) in states.ENDED for r in rounds)
            or any(state(r) in states.OPEN for r in rounds)
        ]
        if not silent:
            log.info("gate %s: every role has answered", self.gate_id)
            return True
        elapsed = (datetime.now(UTC) - opened).total_seconds()
        if elapsed >= EXPIRING_AT * self.timeout_seconds:
            event = {
                "event": "gate_expiring",
                "gate": self.gate_id,
                "silent_roles": silent,
                "at": datetime.now(UTC).isoformat(),
            }
            ti.xcom_push(key=naming.XCOM_EVENTS, value=[event])
            tell(
                context,
                "gate_expiring",
                self.gate_id,
                **event,
                gate_title=self.gate_title,
                **asking(context, self.gate_id, self.roles, silent),
            )
            log.warning(
                "gate_expiring: gate %s expires soon; no answer yet from %s",
                self.gate_id,
                ", ".join(silent),
            )
            return True
        return False


def gate_result(
    gate: str, roles: dict[str, list[str]], gate_title: str = "", **context: Any
) -> dict[str, Any]:
    ti = context["ti"]
    answers = {
        role: [ti.xcom_pull(task_ids=naming.gate_task(gate, r)) for r in rounds]
        for role, rounds in roles.items()
    }
    go, summary = summarize(gate, answers)
    log.info("%s", summary)
    if not go:
        raise AirflowFailException(summary)
    tell(
        context,
        "gate_decided",
        gate,
        gate=gate,
        gate_title=gate_title or gate,
        decision=naming.GO,
        summary=summary,
    )
    return {"gate": gate, "decision": naming.GO, "summary": summary}


# -- the group ---------------------------------------------------------------------------------


def build_gate(
    actions: Actions, gate: Gate, guard: Hook, appendix: Callable[[], str] | None = None
) -> tuple[list[BaseOperator], list[BaseOperator], list[BaseOperator]]:
    """The gate's TaskGroup: entry tasks, exit tasks, and every task in it.

    ``appendix`` gives Markdown that ends every request's body, made when the
    request opens (not while the DAG file is parsed). A gate with one (the plan
    approval, whose appendix is the kjøreplan) comes before any step, so its body
    shows no steps so far.
    """
    runbook = actions.runbook
    reask = gate.on_nogo == "reask"
    evidence_steps = [
        (
            naming.step_task(phase.id, step.id),
            step.title or step.id,
            step.planned.total_seconds() if step.planned else None,
        )
        for phase, step in runbook.steps()
        if appendix is None
    ]
    tasks: list[BaseOperator] = []
    with TaskGroup(group_id=naming.gate_group(gate.gate), tooltip=gate.title or gate.gate):
        entries: list[BaseOperator] = []
        checks = None
        if gate.checks:
            specs = [
                {
                    **actions.spec(check.id, check, None),
                    "required": check.required,
                    "retries": 0,
                    "timeout": (check.timeout or CHECK_TIMEOUT).total_seconds(),
                }
                for check in gate.checks
            ]
            checks = hooked(
                GateChecksOperator(
                    task_id=naming.CHECKS,
                    python_callable=run_checks,
                    op_kwargs={"checks": specs, "gate": gate.gate},
                ),
                guard,
            )
            entries.append(checks)
            tasks.append(checks)
        finals = []
        for role in gate.sign_off:
            previous = None
            for number, task_id in enumerate(naming.round_ids(role, reask)):
                request = GateRoleOperator(
                    task_id=task_id,
                    gate=gate,
                    role=role,
                    users=actions.users(role),
                    round_no=number,
                    window=runbook.window,
                    begin=actions.plan.begin,
                    evidence_steps=evidence_steps,
                    subject=literal(f"{gate.title or gate.gate}: {runbook.title} ({role})"),
                    body=gate_body(runbook, gate, role),
                    appendix=appendix,
                    doc_md=f"GO/NOGO for role {role}" + (f", round {number + 1}" if number else ""),
                )
                hooked(request, guard)
                tasks.append(request)
                if previous is not None:
                    previous >> request
                elif checks is not None:
                    checks >> request
                else:
                    entries.append(request)
                previous = request
            finals.append(previous)
        if gate.timeout is not None:
            # Not forward work: its failure never starts a rollback, so it is not in `tasks`.
            watch = hooked(GateWatchSensor(task_id=naming.WATCH, gate=gate), guard)
            (checks >> watch) if checks is not None else entries.append(watch)
        result = PythonOperator(
            task_id=naming.RESULT,
            python_callable=gate_result,
            op_kwargs={
                "gate": gate.gate,
                "roles": {r: naming.round_ids(r, reask) for r in gate.sign_off},
                "gate_title": gate.title or gate.gate,
            },
            trigger_rule="none_failed_min_one_success",
        )
        [t for t in tasks if isinstance(t, GateRoleOperator)] >> result
        tasks.append(result)
        entries = hold_until_open(gate, runbook, entries, tasks)
    # In stop mode every round is final, so the next phase waits for the requests
    # themselves: no extra scheduling hop after the last GO. Reask rounds that are
    # skipped need the result task to join them.
    exits: list[BaseOperator] = [result] if reask else [f for f in finals if f]
    return entries, exits, tasks
