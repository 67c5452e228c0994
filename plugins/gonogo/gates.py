"""GO/NOGO gates on Airflow's human-in-the-loop operators.

A gate is a TaskGroup ``gate__<id>``:

- ``checks`` (when the gate lists checks) collects evidence just before the gate
  opens; a failing ``required`` check is NOGO without asking anyone.
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
import os
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseSensorOperator, TaskGroup
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk.execution_time.hitl import HITLUser

from gonogo.errors import GateError
from gonogo.model import Gate, Runbook, format_duration
from gonogo.operators import run_states, with_comment
from gonogo.runtime import check_response

if TYPE_CHECKING:
    from airflow.sdk.bases.operator import BaseOperator

    from gonogo.compile import Compiler

log = logging.getLogger("gonogo")

GO, NOGO = "GO", "NOGO"
REASKS = 3  # with on_nogo: reask, a role is asked at most this many more times
EXPIRING_AT = 0.8


def gate_group_id(gate: Gate) -> str:
    return f"gate__{gate.gate}"


def round_ids(gate: Gate, role: str) -> list[str]:
    """Task ids (inside the gate group) of every round that may ask ``role``.

    The names tell the API server which answer is final (see :mod:`gonogo.answers`):
    ``<role>`` in stop mode, the last ``<role>__round_<n>`` in reask mode.
    """
    if gate.on_nogo != "reask":
        return [role]
    return [f"{role}__round_{n}" for n in range(1, REASKS + 2)]


def is_final_round(task_id: str) -> bool:
    """Whether a NOGO on this gate task (``gate__<g>.<part>``) ends the gate."""
    part = task_id.partition(".")[2]
    if "__round_" not in part:
        return part not in ("checks", "watch", "result")
    return part.rsplit("__round_", 1)[1] == str(REASKS + 1)


def eligible_users(users: Sequence[str], triggered_by: str | None) -> list[HITLUser]:
    """The role's users who may answer: everyone but the person who started the rollout."""
    return [HITLUser(id=u, name=u) for u in users if u != triggered_by]


def _escape(text: str) -> str:
    """Runbook text is shown as written, never evaluated as a template."""
    return text.replace("{{", "{{ '{{' }}").replace("{%", "{{ '{%' }}")


def gate_body(runbook: Runbook, gate: Gate, role: str) -> str:
    """The static part of the request: what is decided, by whom, against which checklist."""
    lines = [
        f"**{_escape(runbook.title)}**",
        "",
        f"- Runbook: `{runbook.runbook}`",
        f"- Change: {_escape(runbook.change.id)} ({runbook.change.type})",
        f"- Service: {_escape(runbook.service)} in **{_escape(runbook.environment)}**",
        "- Run: `{{ run_id }}`, started by {{ dag_run.triggering_user_name or 'the scheduler' }}",
        f"- You answer for the role **{role}**. Every role in {', '.join(gate.sign_off)} must say GO.",
    ]
    if gate.timeout is not None:
        lines.append(f"- No answer within {format_duration(gate.timeout)} counts as NOGO.")
    if gate.checklist:
        lines += ["", "**Checklist**", ""]
        lines += [f"- [ ] {_escape(entry)}" for entry in gate.checklist]
    lines += ["", "A NOGO needs a comment that says what must be fixed."]
    return "\n".join(lines)


# -- evidence ------------------------------------------------------------------------------------


def evidence(
    steps: Sequence[tuple[str, str, float | None]],
    breadcrumbs: Sequence[Mapping[str, Any]],
    checks: Sequence[Mapping[str, Any]],
) -> str:
    """Markdown of what has happened so far: each finished step against plan, and the checks.

    ``steps`` are (task_id, title, planned seconds) in runbook order. Pure.
    """
    done = {b["task_id"]: b for b in breadcrumbs}
    lines = ["", "**Steps so far**", "", "| step | result | took | planned |", "|---|---|---|---|"]
    shown = 0
    for task_id, title, planned in steps:
        crumb = done.get(task_id)
        if crumb is None:
            continue
        took = crumb.get("duration")
        took_text = format_duration(timedelta(seconds=round(took))) if took else "-"
        planned_text = format_duration(timedelta(seconds=planned)) if planned else "-"
        lines.append(f"| {title} | {crumb.get('state')} | {took_text} | {planned_text} |")
        shown += 1
    if not shown:
        lines = ["", "**Steps so far:** none yet."]
    if checks:
        lines += ["", "**Checks**", ""]
        for check in checks:
            mark = "passed" if check["passed"] else "FAILED"
            required = " (required)" if check.get("required") else ""
            lines.append(f"- `{check['id']}`{required}: {mark}. {_escape(check.get('detail', ''))}")
    return "\n".join(lines)


def run_checks(
    checks: list[dict[str, Any]], gate: str, cwd: str, **context: Any
) -> list[dict[str, Any]]:
    """Run the gate's checks; a failing required check is NOGO without asking anyone."""
    import requests

    results = []
    for check in checks:
        if check.get("bash"):
            log.info("check %s: bash: %s", check["id"], check["bash"])
            done = subprocess.run(
                ["bash", "-c", check["bash"]],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=check.get("timeout") or 600,
                env=os.environ.copy(),
            )
            output = (done.stdout + done.stderr).strip()
            log.info("exit %d; output:\n%s", done.returncode, output)
            passed, detail = done.returncode == 0, (output.splitlines() or [""])[-1][:200]
        else:
            http = check["http"]
            log.info("check %s: %s %s", check["id"], http.get("method", "GET"), http["url"])
            try:
                response = requests.request(
                    http.get("method", "GET"),
                    http["url"],
                    headers=http.get("headers") or {},
                    timeout=http.get("request_timeout", 30),
                    verify=http.get("verify", True),
                )
                misses = check_response(
                    response.status_code, response.text, http.get("expect") or {}
                )
            except requests.RequestException as exc:
                misses = [f"request failed: {exc}"]
            passed, detail = not misses, "; ".join(misses) or "as expected"
            log.info("%s", detail)
        results.append(
            {
                "id": check["id"],
                "required": check.get("required", False),
                "passed": passed,
                "detail": detail,
            }
        )
    failed = [r["id"] for r in results if r["required"] and not r["passed"]]
    context["ti"].xcom_push(key="checks", value=results)
    if failed:
        raise AirflowFailException(
            f"NOGO at gate {gate}: required check(s) failed: {', '.join(failed)}"
        )
    return results


# -- the request ---------------------------------------------------------------------------------


class GateRoleOperator(HITLOperator):
    """One round of one role's sign-off at a gate."""

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
        **kwargs: Any,
    ) -> None:
        self.gate_id = gate.gate
        self.group = gate_group_id(gate)
        self.role = role
        self.users = list(users)
        self.round_no = round_no
        self.rounds = round_ids(gate, role)
        self.reask = gate.on_nogo == "reask"
        self.gate_timeout = gate.timeout
        self.has_checks = bool(gate.checks)
        self.evidence_steps = list(evidence_steps)
        kwargs["retries"] = 0  # a retry would re-open the request and wipe the answer
        super().__init__(
            subject=subject,
            body=body,
            options=[GO, NOGO],
            params=with_comment(kwargs, "Why; required for NOGO"),
            assigned_users=[{"id": u, "name": u} for u in self.users],
            **kwargs,
        )

    @property
    def is_last_round(self) -> bool:
        return self.round_no == len(self.rounds) - 1

    def _pull(self, context: Any, task_id: str, key: str = "return_value") -> Any:
        return context["ti"].xcom_pull(task_ids=f"{self.group}.{task_id}", key=key)

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        previous: dict[str, Any] | None = None
        if self.round_no:
            previous = self._pull(context, self.rounds[self.round_no - 1])
            if not previous or previous.get("answer") != NOGO:
                raise AirflowSkipException(f"role {self.role} already answered; not asking again")
        deadline = self._deadline(context, previous)
        triggered_by = getattr(context.get("dag_run"), "triggering_user_name", None)
        self.assigned_users = eligible_users(self.users, triggered_by)
        if not self.assigned_users:
            raise GateError(
                f"gate {self.gate_id}: role {self.role!r} has no eligible approver: its only member "
                f"{triggered_by!r} started this rollout and may not approve it (four-eyes rule)"
            )
        if deadline is not None:
            remaining = deadline - datetime.now(UTC)
            if remaining <= timedelta(0):
                return self._timed_out(context)
            self.response_timeout = remaining
        ti.xcom_push(key="deadline", value=deadline.isoformat() if deadline else None)
        self.body = self._full_body(context, previous)
        log.info(
            "gate %s: asking role %s (%s)%s%s",
            self.gate_id,
            self.role,
            ", ".join(u["id"] for u in self.assigned_users),
            f", round {self.round_no + 1}" if self.round_no else "",
            f"; {triggered_by} started the run and may not answer"
            if triggered_by in self.users
            else "",
        )
        return super().execute(context)

    def _deadline(self, context: Any, previous: Mapping[str, Any] | None) -> datetime | None:
        if self.gate_timeout is None:
            return None
        if previous and previous.get("deadline"):
            return datetime.fromisoformat(previous["deadline"])
        return datetime.now(UTC) + self.gate_timeout

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
        checks = self._pull(context, "checks", key="checks") if self.has_checks else None
        return body + "\n" + evidence(self.evidence_steps, crumbs, checks or [])

    def _record(self, context: Any, answer: str, by: str | None, comment: str) -> dict[str, Any]:
        deadline = context["ti"].xcom_pull(task_ids=self.task_id, key="deadline")
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
        context["ti"].xcom_push(key="return_value", value=record)
        raise AirflowFailException(
            f"NOGO (timeout) at gate {self.gate_id}: role {self.role} did not answer in time"
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("error_type") == "timeout":
            return self._timed_out(context)
        super().execute_complete(context, event)
        who = (event.get("responded_by_user") or {}).get("name")
        comment = ((event.get("params_input") or {}).get("comment") or "").strip()
        answer = event["chosen_options"][0]
        log.info(
            "gate %s: %s answered %s for role %s%s",
            self.gate_id,
            who,
            answer,
            self.role,
            f": {comment}" if comment else "",
        )
        record = self._record(context, answer, who, comment)
        if answer == NOGO and (not self.reask or self.is_last_round):
            context["ti"].xcom_push(key="return_value", value=record)
            raise AirflowFailException(
                f"NOGO at gate {self.gate_id} from {who} for {self.role}: {comment}"
            )
        if answer == NOGO:
            log.info("on_nogo is reask: role %s will be asked again", self.role)
        return record


# -- watch and result ----------------------------------------------------------------------------


class GateWatchSensor(BaseSensorOperator):
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
        self.group = gate_group_id(gate)
        self.timeout_seconds = gate.timeout.total_seconds()
        self.roles = {role: round_ids(gate, role) for role in gate.sign_off}

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        # The gate opened when its requests did: each round-1 request records its deadline.
        # (Read from there, not kept here: a retry of this sensor clears its own XCom.)
        deadlines = [
            ti.xcom_pull(task_ids=f"{self.group}.{rounds[0]}", key="deadline")
            for rounds in self.roles.values()
        ]
        known = [datetime.fromisoformat(d) for d in deadlines if d]
        if not known:
            return False
        opened = (min(known) - timedelta(seconds=self.timeout_seconds)).isoformat()
        states = run_states(context)
        silent = [
            role
            for role, rounds in self.roles.items()
            if not any(_answered(states.get(f"{self.group}.{r}")) for r in rounds)
            or any(
                states.get(f"{self.group}.{r}")
                in ("awaiting_input", "running", "queued", "scheduled")
                for r in rounds
            )
        ]
        if not silent:
            log.info("gate %s: every role has answered", self.gate_id)
            return True
        elapsed = (datetime.now(UTC) - datetime.fromisoformat(opened)).total_seconds()
        if elapsed >= EXPIRING_AT * self.timeout_seconds:
            event = {
                "event": "gate_expiring",
                "gate": self.gate_id,
                "silent_roles": silent,
                "at": datetime.now(UTC).isoformat(),
            }
            ti.xcom_push(key="events", value=[event])
            log.warning(
                "gate_expiring: gate %s expires soon; no answer yet from %s",
                self.gate_id,
                ", ".join(silent),
            )
            return True
        return False


def _answered(state: str | None) -> bool:
    return state in ("success", "failed", "skipped")


def summarize(
    gate: str, answers: Mapping[str, Sequence[Mapping[str, Any] | None]]
) -> tuple[bool, str]:
    """The gate's decision from each role's rounds. Pure: ``answers[role]`` in round order."""
    nogo, silent, go = [], [], []
    for role, rounds in answers.items():
        final = next((a for a in reversed(rounds) if a), None)
        if final is None or final.get("answer") == "timeout":
            silent.append(role)
        elif final.get("answer") == GO:
            go.append(f"{role} ({final.get('by')})")
        else:
            nogo.append(f"{role} ({final.get('by')}): {final.get('comment')}")
    if nogo:
        return False, f"gate {gate}: NOGO from " + "; ".join(nogo)
    if silent:
        return False, f"gate {gate}: NOGO (timeout): no answer from {', '.join(silent)}"
    return True, f"gate {gate}: GO from " + ", ".join(go)


def gate_result(gate: str, roles: dict[str, list[str]], **context: Any) -> dict[str, Any]:
    group = f"gate__{gate}"
    ti = context["ti"]
    answers = {
        role: [ti.xcom_pull(task_ids=f"{group}.{r}") for r in rounds]
        for role, rounds in roles.items()
    }
    go, summary = summarize(gate, answers)
    log.info("%s", summary)
    if not go:
        raise AirflowFailException(summary)
    return {"gate": gate, "decision": "GO", "summary": summary}


def build_gate(
    compiler: Compiler, gate: Gate, guard: Any
) -> tuple[list[BaseOperator], list[BaseOperator], list[BaseOperator]]:
    """The gate's TaskGroup: entry tasks, exit tasks, and every task in it."""
    runbook = compiler.runbook
    evidence_steps = [
        (
            f"{phase.id}.{step.id}",
            step.title or step.id,
            step.planned.total_seconds() if step.planned else None,
        )
        for phase, step in runbook.steps()
    ]
    tasks: list[BaseOperator] = []
    with TaskGroup(group_id=gate_group_id(gate), tooltip=gate.title or gate.gate):
        entries: list[BaseOperator] = []
        checks = None
        if gate.checks:
            specs = []
            for check in gate.checks:
                spec: dict[str, Any] = {
                    "id": check.id,
                    "required": check.required,
                    "timeout": check.timeout.total_seconds() if check.timeout else None,
                }
                if check.bash is not None:
                    spec["bash"] = check.bash
                else:
                    from gonogo.compile import http_spec

                    assert check.http is not None
                    spec["http"] = http_spec(check.http)
                specs.append(spec)
            checks = PythonOperator(
                task_id="checks",
                python_callable=run_checks,
                op_kwargs={"checks": specs, "gate": gate.gate, "cwd": compiler.runbooks_dir},
                pre_execute=guard,
            )
            entries.append(checks)
            tasks.append(checks)
        finals = []
        for role in gate.sign_off:
            previous = None
            for number, task_id in enumerate(round_ids(gate, role)):
                request = GateRoleOperator(
                    task_id=task_id,
                    gate=gate,
                    role=role,
                    users=runbook.roles[role].users,
                    round_no=number,
                    evidence_steps=evidence_steps,
                    subject=f"{gate.title or gate.gate}: {runbook.title} ({role})",
                    body=gate_body(runbook, gate, role),
                    pre_execute=guard,
                    doc_md=f"GO/NOGO for role {role}" + (f", round {number + 1}" if number else ""),
                )
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
            watch = GateWatchSensor(task_id="watch", gate=gate, pre_execute=guard)
            (checks >> watch) if checks is not None else entries.append(watch)
        result = PythonOperator(
            task_id="result",
            python_callable=gate_result,
            op_kwargs={"gate": gate.gate, "roles": {r: round_ids(gate, r) for r in gate.sign_off}},
            trigger_rule="none_failed_min_one_success",
        )
        [t for t in tasks if isinstance(t, GateRoleOperator)] >> result
        tasks.append(result)
    # In stop mode every round is final, so the next phase waits for the requests
    # themselves: no extra scheduling hop after the last GO. Reask rounds that are
    # skipped need the result task to join them.
    exits: list[BaseOperator] = [result] if gate.on_nogo == "reask" else [f for f in finals if f]
    return entries, exits, tasks
