"""What was approved is what runs: the plan's fingerprint, its approval DAG, the promotion guard.

For every runbook whose change type needs plan approval (:mod:`gonogo.core.change.policy`)
gonogo builds a second DAG, ``<runbook>.approval``. A run of it computes the
fingerprint of the runbook and the files it runs, asks the CAB roles
(``approval.sign_off``, else the first gate's roles) to approve it, with the
kjøreplan as the request body, and records the approval in the approvals
ledger. Triggered with ``revoke``, it revokes instead. Its gate tells people by
the runbook's own ``notify`` rules, as a rollout's gates do: each CAB role that a
``gate_waiting`` rule reaches is called to its request, and the ``gate_decided``
rules hear the decision, worded as a plan approval (with an ``itsm:`` section,
the change record gets the decision as a work note too).

The rollout's first task (:mod:`gonogo.dag.preflight`) then refuses to start a
plan that is not approved, naming what changed since the approved version, and
refuses a run whose ``requires:`` environment has no recent success of the same
work. Every later forward task checks that the files did not change since.

The ledgers are Airflow Variables (written here, by tasks only: the API server
refuses REST edits of them). An approval entry is trusted only when the run it
names is a successful run of the approval DAG whose record task recorded that
same fingerprint, so an entry typed in by hand approves nothing. The approvals
ledger is an append-only chain (:mod:`gonogo.core.change.approval`): a ledger that does
not verify was edited outside gonogo, and nothing in it is trusted or written
to. A revoked fingerprint stays revoked: re-running an approval run's ``record``
task after a revocation fails and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, Variable
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from gonogo.core import naming
from gonogo.core.change import approval as ledger
from gonogo.core.change.fingerprint import Fingerprint, changes, fingerprint
from gonogo.core.change.policy import current_policy
from gonogo.core.documents.kjoreplan import plan_data, plan_markdown
from gonogo.core.runbook.model import Gate, Runbook
from gonogo.dag.actions import Actions
from gonogo.dag.gates import build_gate, verify_gates
from gonogo.dag.hooks import Hook, Hooked, hooked
from gonogo.dag.notify import attach
from gonogo.dag.preflight import preflight, role_users
from gonogo.dag.states import is_rehearsal, run_trigger

log = logging.getLogger(__name__)


class Plan:
    """A runbook's fingerprint, computed on first use in a task and kept for the process.

    Nothing is hashed while the DAG file is parsed: only tasks ask.
    """

    def __init__(self, runbook: Runbook, runbooks_dir: Path) -> None:
        self.runbook = runbook
        self.runbooks_dir = runbooks_dir
        self._found: Fingerprint | None = None

    def fingerprint(self) -> Fingerprint:
        if self._found is None:
            self._found = fingerprint(self.runbook, self.runbooks_dir)
        return self._found


def approvers_of(runbook: Runbook) -> list[str]:
    """The CAB roles: ``approval.sign_off``, else the sign-off roles of the first gate."""
    if runbook.approval is not None:
        return list(runbook.approval.sign_off)
    return list(runbook.gates[0].sign_off) if runbook.gates else []


def needs_approval_dag(runbook: Runbook) -> bool:
    rule = current_policy().rule(runbook.change.type, runbook.environment)
    return rule.approval != "none" and bool(approvers_of(runbook))


# -- the ledgers ------------------------------------------------------------------------------


def _read(key: str, default: Any) -> Any:
    found = Variable.get(key, default=None, deserialize_json=True)
    return found if isinstance(found, type(default)) else default


class RecordOperator(Hooked, PythonOperator):
    """Writes the approval once the gate's answer records say GO (its hook checks them)."""


class LedgerEdited(AirflowFailException, ledger.BrokenLedger):
    """The approvals ledger does not verify: someone changed it outside gonogo."""


def _approvals(runbook_id: str) -> dict[str, Any]:
    """The runbook's approvals ledger, verified; refuses one that was edited.

    No ledger yet is an empty one. Anything else that is not the chain gonogo
    wrote (not JSON, not an object, a broken link) is refused, so an edit cannot
    turn revocations into an empty ledger.
    """
    key = naming.approvals_key(runbook_id)
    problem: str | None
    try:
        found = Variable.get(key, default=None, deserialize_json=True)
    except ValueError:
        found, problem = None, "it is not JSON"
    else:
        if found is None:
            return {}
        if not isinstance(found, dict):
            problem = "it is not a JSON object"
        elif (problem := ledger.broken_link(found)) is None:
            return found
    raise LedgerEdited(
        f"the approvals ledger {key} was edited outside gonogo, which only appends to it: "
        f"{problem}. Nothing it approves is trusted, and nothing is written to it, until "
        "an administrator restores what gonogo wrote"
    )


def _succeeded(dag_id: str, run_id: str) -> bool:
    """Whether Airflow says run ``run_id`` of ``dag_id`` ended ``success`` (False if unreadable)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    try:
        state = RuntimeTaskInstance.get_dagrun_state(dag_id, run_id)
    except Exception:
        log.warning("run %s of %s could not be read", run_id, dag_id, exc_info=True)
        return False
    if str(getattr(state, "value", state)) != "success":
        log.warning("gonogo's records name run %s of %s, which is %s", run_id, dag_id, state)
        return False
    return True


def _verified(runbook_id: str, entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """``entry`` if the approval run it names succeeded."""
    if entry is None or not _succeeded(naming.approval_dag(runbook_id), str(entry["run_id"])):
        return None
    return entry


def _recorded_digest(context: Any, runbook_id: str, run_id: str) -> str | None:
    found = context["ti"].xcom_pull(
        task_ids=naming.APPROVAL_RECORD, dag_id=naming.approval_dag(runbook_id), run_id=run_id
    )
    return found.get("digest") if isinstance(found, dict) else None


def approval_of(context: Any, runbook_id: str, plan: Fingerprint) -> dict[str, Any] | None:
    """The standing, verified approval of ``plan``, or None.

    Raises:
        LedgerEdited: the approvals ledger does not verify.
    """
    entry = ledger.approved(_approvals(runbook_id), plan.digest)
    entry = _verified(runbook_id, entry)
    if entry is None or _recorded_digest(context, runbook_id, entry["run_id"]) != plan.digest:
        return None
    return {k: v for k, v in entry.items() if k != "parts"}


def _promotion(context: Any, runbook: Runbook, plan: Fingerprint) -> dict[str, Any]:
    """The recent successful run in the ``requires`` environment; refuses the run without one."""
    assert runbook.requires is not None
    needed = runbook.requires
    entries = _read(naming.successes_key(plan.work), [])
    for entry in ledger.success(entries, needed.environment, needed.within, datetime.now(UTC)):
        if _succeeded(str(entry["dag_id"]), str(entry["run_id"])):
            return dict(entry)
    raise AirflowFailException(ledger.promotion_refusal(plan, needed.environment, needed.within))


def plan_check(runbook: Runbook, plan: Plan) -> Callable[[Any], dict[str, Any]]:
    """The preflight's part: record the fingerprint, then apply the change type's policy."""

    def check(context: Any) -> dict[str, Any]:
        ti = context["ti"]
        found = plan.fingerprint()
        ti.xcom_push(key=naming.XCOM_FINGERPRINT, value=found.as_dict())
        rehearsal = is_rehearsal(context)
        rule = current_policy().rule(runbook.change.type, runbook.environment)
        result: dict[str, Any] = {"fingerprint": found.short, "rehearsal": rehearsal}
        log.info(
            "plan fingerprint %s (work %s); %s change in %s: approval %s%s",
            found.short,
            found.work[:12],
            runbook.change.type,
            runbook.environment,
            rule.approval,
            "; a rehearsal" if rehearsal else "",
        )
        if rule.approval != "none":
            needed = rule.approval == "required" and not rehearsal
            try:
                approved = approval_of(context, runbook.runbook, found)
            except LedgerEdited as edited:
                if needed:
                    raise AirflowFailException(f"not started: {edited}") from None
                log.warning("%s; this run does not need the approval, so it goes on", edited)
                approved = None
            result["approval"] = approved
            if approved is None and needed:
                known = _approvals(runbook.runbook)
                raise AirflowFailException(
                    ledger.not_approved(known, found, naming.approval_dag(runbook.runbook))
                )
            result["retrospective"] = approved is None and rule.approval == "retrospective"
            if approved is not None:
                log.info("plan approved by %s", ", ".join(approved.get("approved_by") or []))
        if runbook.requires is not None and not rehearsal:
            result["promotion"] = promotion = _promotion(context, runbook, found)
            ti.xcom_push(key=naming.XCOM_PROMOTION, value=promotion)
            log.info("promotion guard: %s", promotion)
        return result

    return check


def unchanged(plan: Plan) -> Hook:
    """A pre_execute hook: the files still hash to what the preflight recorded."""

    def hook(context: Any) -> None:
        recorded = context["ti"].xcom_pull(
            task_ids=naming.PREFLIGHT_TASK, key=naming.XCOM_FINGERPRINT
        )
        if not isinstance(recorded, dict):
            return  # the preflight did not get that far; it has said why
        now = plan.fingerprint()
        if recorded.get("digest") != now.digest:
            what = changes(recorded.get("parts") or {}, now.parts)
            raise AirflowFailException(
                f"not started: the runbook changed after this run started (fingerprint "
                f"{str(recorded.get('digest'))[:12]}, now {now.short}): {'; '.join(what)}"
            )

    return hook


def record_success(context: Any, runbook: Runbook, plan: Fingerprint) -> None:
    """Remember a successful rollout of this work, for the promotion guard of later ones."""
    _, by = run_trigger(context)
    key = naming.successes_key(plan.work)
    entries = _read(key, [])
    entries.append(
        {
            "environment": runbook.environment,
            "dag_id": context["dag"].dag_id,
            "run_id": context["run_id"],
            "at": datetime.now(UTC).isoformat(),
            "by": by,
            "fingerprint": plan.short,
        }
    )
    Variable.set(key, entries[-50:], serialize_json=True)


# -- the approval DAG -------------------------------------------------------------------------


def _start(runbook: Runbook, plan: Plan, roles: list[str], **context: Any) -> dict[str, Any]:
    """Fingerprint the plan; or, for a revoke run, revoke and stop here."""
    found = plan.fingerprint()
    context["ti"].xcom_push(key=naming.XCOM_FINGERPRINT, value=found.as_dict())
    params = context["params"]
    if params.get(naming.REVOKE_PARAM):
        _revoke(context, runbook, str(params.get(naming.REASON_PARAM) or ""))
    checked = preflight({naming.APPROVAL_GATE: roles}, role_users(runbook), **context)
    log.info("asking %s to approve plan %s", ", ".join(roles), found.short)
    return {**checked, "fingerprint": found.short}


def _revoke(context: Any, runbook: Runbook, reason: str) -> None:
    if not reason.strip():
        raise AirflowFailException("a revocation needs a reason: fill in the 'reason' field")
    trigger_id, by = run_trigger(context)
    if trigger_id is None:
        raise AirflowFailException("a revocation is started by a named user (UI or REST API)")
    key = naming.approvals_key(runbook.runbook)
    which = str(context["params"].get("fingerprint") or "")
    new, revoked = ledger.with_revocation(
        _approvals(runbook.runbook),
        which,
        by or trigger_id,
        reason.strip(),
        context["run_id"],
        datetime.now(UTC),
    )
    if not revoked:
        raise AirflowFailException(
            f"nothing to revoke: no standing approval{' matches ' + which if which else ''}"
        )
    Variable.set(key, new, serialize_json=True)
    record = {"outcome": "revoked", "reasons": [f"revoked {', '.join(revoked)}: {reason.strip()}"]}
    context["ti"].xcom_push(key=naming.XCOM_OUTCOME, value=record)
    log.info("revoked the approval of %s by %s: %s", ", ".join(revoked), by, reason)
    raise AirflowSkipException(f"revoked {', '.join(revoked)}; nobody is asked")


def _record(runbook: Runbook, plan: Plan, roles: list[str], **context: Any) -> dict[str, Any]:
    """Write the approval to the ledger, if the files are still what the CAB saw."""
    ti = context["ti"]
    asked = Fingerprint.from_dict(
        ti.xcom_pull(task_ids=naming.PREFLIGHT_TASK, key=naming.XCOM_FINGERPRINT)
    )
    now = plan.fingerprint()
    if now.digest != asked.digest:
        raise AirflowFailException(
            f"not approved: the runbook changed while the CAB decided (approved {asked.short}, "
            f"now {now.short}: {'; '.join(changes(asked.parts, now.parts))}); ask again"
        )
    answers = [
        ti.xcom_pull(task_ids=naming.gate_task(naming.APPROVAL_GATE, role)) or {} for role in roles
    ]
    approvers = [f"{a.get('by')} ({a.get('role')})" for a in answers]
    known = _approvals(runbook.runbook)
    try:
        new = ledger.with_approval(known, now, context["run_id"], approvers, datetime.now(UTC))
    except ledger.RevokedFingerprint as revoked:
        raise AirflowFailException(f"not approved: {revoked}") from None
    Variable.set(naming.approvals_key(runbook.runbook), new, serialize_json=True)
    reason = f"plan {now.short} approved by {', '.join(approvers)}"
    ti.xcom_push(key=naming.XCOM_OUTCOME, value={"outcome": "approved", "reasons": [reason]})
    log.info("%s", reason)
    return {"digest": now.digest, "approved_by": approvers}


def approval_gate(runbook: Runbook, roles: list[str]) -> Gate:
    timeout = runbook.approval.timeout if runbook.approval else None
    return Gate(
        gate=naming.APPROVAL_GATE,
        title="Plan approval (CAB)",
        sign_off=roles,
        timeout=timeout,
        checklist=[
            "The kjøreplan below is what will run: its fingerprint is shown above",
            "Risk, rollback plan and communication plan are acceptable",
            "The change window and the people named are agreed",
        ],
    )


def build_approval_dag(runbook: Runbook, runbooks_dir: Path, plan: Plan) -> DAG:
    """``<runbook>.approval``: the CAB approves (or revokes) the plan's fingerprint."""
    roles = approvers_of(runbook)
    gate = approval_gate(runbook, roles)
    dag = DAG(
        dag_id=naming.approval_dag(runbook.runbook),
        description=f"Plan approval (CAB): {runbook.title}",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["gonogo", naming.DAG_MARKER_TAG, "gonogo:approval", runbook.service],
        params={
            naming.REVOKE_PARAM: Param(
                False, type="boolean", description="Revoke instead of approving"
            ),
            naming.REASON_PARAM: Param(
                "", type="string", description="Why the approval is revoked (needed to revoke)"
            ),
            "fingerprint": Param(
                "", type="string", description="Which approval to revoke (empty: every one)"
            ),
        },
        doc_md=f"Approve the plan of `{runbook.runbook}` for the CAB: "
        f"{', '.join(roles)} must each approve its fingerprint.",
        default_args={"retries": 0},
    )
    attach(dag, runbook)  # the gate's notifications find the runbook's rules here
    with dag:
        start = PythonOperator(
            task_id=naming.PREFLIGHT_TASK, python_callable=partial(_start, runbook, plan, roles)
        )
        entries, exits, _ = build_gate(
            Actions(runbook, runbooks_dir),
            gate,
            unchanged(plan),
            appendix=lambda: plan_markdown(plan_data(runbook)),
        )
        record = hooked(
            RecordOperator(
                task_id=naming.APPROVAL_RECORD,
                python_callable=partial(_record, runbook, plan, roles),
            ),
            verify_gates([gate], role_users(runbook)),
        )
        start >> entries
        exits >> record
    return dag
