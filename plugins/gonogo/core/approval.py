"""Plan approval and the promotion guard, as pure functions over gonogo's ledgers.

Pure: no Airflow import. The ledgers are plain JSON kept in Airflow Variables
(:func:`gonogo.core.naming.approvals_key`, :func:`~gonogo.core.naming.successes_key`);
:mod:`gonogo.dag.approval` reads and writes them and checks every entry against
the Airflow run it names before trusting it.

An approvals ledger maps a fingerprint digest to its entry::

    {"digest", "short", "parts", "run_id", "approved_by": [...], "approved_at": iso,
     "revoked": null | {"by", "at", "reason", "run_id"}}

A successes ledger is a list of ``{"environment", "dag_id", "run_id", "at", "by"}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gonogo.core.fingerprint import Fingerprint, changes
from gonogo.core.model import format_duration

Ledger = dict[str, dict[str, Any]]


def approved(ledger: Mapping[str, Any], digest: str) -> dict[str, Any] | None:
    """The entry that approves ``digest``, unless there is none or it was revoked."""
    entry = ledger.get(digest)
    if isinstance(entry, dict) and entry.get("run_id") and not entry.get("revoked"):
        return entry
    return None


def latest(ledger: Mapping[str, Any]) -> dict[str, Any] | None:
    """The most recently approved entry that still stands, if any."""
    standing = [e for d, e in ledger.items() if approved(ledger, d)]
    return max(standing, key=lambda e: str(e.get("approved_at", "")), default=None)


def not_approved(ledger: Mapping[str, Any], plan: Fingerprint, approval_dag: str) -> str:
    """Why a plan may not run, and what changed since the approved version."""
    entry = ledger.get(plan.digest)
    head = f"this plan (fingerprint {plan.short}) is not approved"
    if isinstance(entry, dict) and entry.get("revoked"):
        revoked = entry["revoked"]
        head = (
            f"the approval of this plan (fingerprint {plan.short}) was revoked by "
            f"{revoked.get('by')} at {revoked.get('at')}: {revoked.get('reason')}"
        )
    last = latest(ledger)
    if last is None:
        other = "other " if isinstance(entry, dict) and entry.get("revoked") else ""
        since = f"no {other}version of this runbook is approved"
    else:
        what = changes(last.get("parts") or {}, plan.parts) or ["nothing that gonogo hashes"]
        since = (
            f"changed since the approved version {last.get('short')} "
            f"(approved by {', '.join(last.get('approved_by') or [])} at {last.get('approved_at')}): "
            + "; ".join(what)
        )
    return (
        f"not started: {head}; {since}. Ask the CAB to approve it: trigger {approval_dag}, "
        "whose request shows the kjøreplan and the fingerprint"
    )


def with_approval(
    ledger: Mapping[str, Any],
    plan: Fingerprint,
    run_id: str,
    approvers: Sequence[str],
    at: datetime,
) -> Ledger:
    """The ledger with ``plan`` approved by ``approvers`` in approval run ``run_id``."""
    entry = {
        "digest": plan.digest,
        "short": plan.short,
        "parts": dict(plan.parts),
        "run_id": run_id,
        "approved_by": list(approvers),
        "approved_at": at.isoformat(),
        "revoked": None,
    }
    return {**ledger, plan.digest: entry}


def with_revocation(
    ledger: Mapping[str, Any], which: str, by: str, reason: str, run_id: str, at: datetime
) -> tuple[Ledger, list[str]]:
    """The ledger with standing approvals revoked, and the short digests revoked.

    ``which`` is a digest or its start (as shown, 12 characters); empty revokes
    every approval that still stands.
    """
    new: Ledger = {d: dict(e) for d, e in ledger.items() if isinstance(e, dict)}
    revoked = []
    for digest, entry in new.items():
        if approved(new, digest) and digest.startswith(which.strip().lower()):
            entry["revoked"] = {"by": by, "at": at.isoformat(), "reason": reason, "run_id": run_id}
            revoked.append(str(entry.get("short") or digest[:12]))
    return new, revoked


def success(
    entries: Sequence[Mapping[str, Any]], environment: str, within: timedelta, now: datetime
) -> list[Mapping[str, Any]]:
    """The recorded successful runs in ``environment`` within ``within`` of ``now``, newest first."""
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        try:
            at = datetime.fromisoformat(str(entry["at"]))
        except (KeyError, ValueError):
            continue
        if at.tzinfo is None:
            continue  # gonogo writes UTC with its offset; anything else was not written by it
        if entry.get("environment") == environment and now - within <= at <= now:
            found.append((at, entry))
    return [entry for _, entry in sorted(found, key=lambda pair: pair[0], reverse=True)]


def promotion_refusal(plan: Fingerprint, environment: str, within: timedelta) -> str:
    period = format_duration(within)
    return (
        f"not started: the promotion guard needs this plan of work (fingerprint "
        f"{plan.work[:12]}) to have succeeded in {environment} within the last {period}, "
        f"and no such run is recorded; run it in {environment} first (a rehearsal does not count)"
    )
