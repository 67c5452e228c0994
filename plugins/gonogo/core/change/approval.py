"""Plan approval and the promotion guard, as pure functions over gonogo's ledgers.

Pure: no Airflow import. The ledgers are plain JSON kept in Airflow Variables
(:func:`gonogo.core.naming.approvals_key`, :func:`~gonogo.core.naming.successes_key`);
:mod:`gonogo.dag.approval` reads and writes them and checks every entry against
the Airflow run it names before trusting it.

An approvals ledger is an append-only history, and a view of it by digest::

    {"history": [entry, ...],
     <digest>: {"digest", "short", "parts", "run_id", "approved_by": [...], "approved_at": iso,
                "revoked": null | {"by", "at", "reason", "run_id"}}, ...}

Each history entry is an approval (``kind: approval``, the fields of the view but
``revoked``) or a revocation (``kind: revocation``: ``digest``, ``short``, ``by``,
``at``, ``reason``, ``run_id``), and carries ``prev``, the sha256 of the canonical
JSON of the entry before it (of nothing for the first). Editing, removing or
moving an entry breaks the link after it, and the view must be what the history
says, so :func:`broken_link` finds a hand edit of either. The reading functions
read the history, never the view: the view is there for people and for readers
that list digests. A chain without a secret shows edits; it does not stop
someone who rewrites an entry and every link after it, drops the last entries
together with the view, or removes the history (the ledger then reads as one
from before it), so the Variables stay writable by tasks only (the API server
refuses other writes).

A revoked fingerprint stays revoked: :func:`with_approval` refuses it, so
clearing and re-running an approval run cannot undo a revocation made since.

A successes ledger is a list of ``{"environment", "dag_id", "run_id", "at", "by"}``.

Errors::

    GonogoError
    ├── RevokedFingerprint    recording an approval of a fingerprint that was revoked
    └── BrokenLedger          the approvals history does not verify: it was edited
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gonogo.core.change.fingerprint import Fingerprint, changes
from gonogo.core.timing.clock import format_duration
from gonogo.errors import GonogoError

Ledger = dict[str, Any]

#: The ledger key of the history; every other key is a digest (64 hex digits).
HISTORY = "history"
APPROVAL = "approval"
REVOCATION = "revocation"
#: The fields of an approval, in its history entry and in the view.
_APPROVAL_FIELDS = ("digest", "short", "parts", "run_id", "approved_by", "approved_at")
_REVOCATION_FIELDS = ("by", "at", "reason", "run_id")


class RevokedFingerprint(GonogoError):
    """An approval of a fingerprint that was revoked: recording it would undo the revocation."""


class BrokenLedger(GonogoError):
    """The approvals history does not verify: an entry was edited, removed or moved."""


# -- the history --------------------------------------------------------------------------------


def link(entry: Mapping[str, Any] | None) -> str:
    """What the entry after ``entry`` carries as ``prev``: the sha256 of its canonical JSON."""
    if entry is None:
        return hashlib.sha256(b"").hexdigest()
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _chained(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` with each ``prev`` set to the link of the one before."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        out.append({**entry, "prev": link(out[-1] if out else None)})
    return out


def _before_chain(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A ledger written before the history existed, as the history it starts with.

    Such a ledger (a bare map of digest to entry) cannot be checked: it is taken
    as it stands, as the start of the chain, each entry marked ``before_chain``.
    Approvals come first, oldest first, then the revocations: the order between
    them was not kept, and a revocation stands whenever it came.
    """
    old = [(d, e) for d, e in ledger.items() if d != HISTORY and isinstance(e, dict)]
    approvals = [
        {"kind": APPROVAL, **{k: e.get(k) for k in _APPROVAL_FIELDS}, "digest": d}
        for d, e in sorted(old, key=lambda pair: str(pair[1].get("approved_at", "")))
    ]
    revocations = [
        {
            "kind": REVOCATION,
            "digest": d,
            "short": e.get("short"),
            **{k: e["revoked"].get(k) for k in _REVOCATION_FIELDS},
        }
        for d, e in old
        if isinstance(e.get("revoked"), dict)
    ]
    return _chained([{**e, "before_chain": True} for e in approvals + revocations])


def history(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ledger's entries, oldest first (a ledger from before the history: its start)."""
    if HISTORY not in ledger:
        return _before_chain(ledger)
    found = ledger[HISTORY]
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _view(entries: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each digest's standing: its newest approval, and its first revocation, which stays."""
    view: dict[str, dict[str, Any]] = {}
    for entry in entries:
        digest = entry.get("digest")
        if not isinstance(digest, str):
            continue
        kept = view.get(digest, {}).get("revoked")
        if entry.get("kind") == APPROVAL:
            view[digest] = {**{k: entry.get(k) for k in _APPROVAL_FIELDS}, "revoked": kept}
        elif entry.get("kind") == REVOCATION and not kept:
            standing = view.setdefault(digest, {"digest": digest, "short": entry.get("short")})
            standing["revoked"] = {k: entry.get(k) for k in _REVOCATION_FIELDS}
    return view


def _ledger(entries: list[dict[str, Any]]) -> Ledger:
    return {**_view(entries), HISTORY: entries}


def _describe(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "not an entry"
    short = str(entry.get("short") or str(entry.get("digest"))[:12])
    if entry.get("kind") == REVOCATION:
        return f"revocation of {short} by {entry.get('by')} at {entry.get('at')}"
    if entry.get("kind") == APPROVAL:
        return f"approval of {short} in run {entry.get('run_id')}"
    return f"an entry of unknown kind {entry.get('kind')!r}"


def broken_link(ledger: Mapping[str, Any]) -> str | None:
    """The first place the approvals ledger was edited, or None if it is what gonogo wrote.

    A ledger from before the history has nothing to check (see :func:`_before_chain`).
    """
    if HISTORY not in ledger:
        return None
    found = ledger[HISTORY]
    if not isinstance(found, list):
        return "its history is not a list"
    for i, entry in enumerate(found):
        where = f"entry {i + 1} of {len(found)} ({_describe(entry)})"
        if not isinstance(entry, dict) or entry.get("kind") not in (APPROVAL, REVOCATION):
            return f"{where} is not an approval or a revocation"
        if not isinstance(entry.get("digest"), str):
            return f"{where} names no fingerprint"
        if i == 0 and entry.get("prev") != link(None):
            return f"{where} is not the first entry written: an entry before it was removed"
        if i > 0 and entry.get("prev") != link(found[i - 1]):
            return (
                f"{where} does not follow entry {i} ({_describe(found[i - 1])}): "
                "an entry between them was edited, removed or moved"
            )
    view = _view(found)
    for digest in sorted(set(view) | {d for d in ledger if d != HISTORY}):
        if ledger.get(digest) != view.get(digest):
            return f"the entry for fingerprint {digest[:12]} is not what its history says"
    return None


def _unbroken(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    problem = broken_link(ledger)
    if problem is not None:
        raise BrokenLedger(f"the approvals ledger was edited outside gonogo: {problem}")
    return copy.deepcopy(history(ledger))


# -- reading ------------------------------------------------------------------------------------


def _stands(entry: Mapping[str, Any] | None) -> bool:
    return bool(entry and entry.get("run_id") and not entry.get("revoked"))


def approved(ledger: Mapping[str, Any], digest: str) -> dict[str, Any] | None:
    """The entry that approves ``digest``, unless there is none or it was revoked."""
    entry = _view(history(ledger)).get(digest)
    return entry if _stands(entry) else None


def latest(ledger: Mapping[str, Any]) -> dict[str, Any] | None:
    """The most recently approved entry that still stands, if any."""
    standing = [e for e in _view(history(ledger)).values() if _stands(e)]
    return max(standing, key=lambda e: str(e.get("approved_at", "")), default=None)


def revocation(ledger: Mapping[str, Any], digest: str) -> dict[str, Any] | None:
    """The first revocation of ``digest``, if it was ever revoked."""
    entry = _view(history(ledger)).get(digest)
    return entry.get("revoked") if entry else None


def not_approved(ledger: Mapping[str, Any], plan: Fingerprint, approval_dag: str) -> str:
    """Why a plan may not run, and what changed since the approved version."""
    revoked = revocation(ledger, plan.digest)
    head = f"this plan (fingerprint {plan.short}) is not approved"
    if revoked:
        head = (
            f"the approval of this plan (fingerprint {plan.short}) was revoked by "
            f"{revoked.get('by')} at {revoked.get('at')}: {revoked.get('reason')}"
        )
    last = latest(ledger)
    if last is None:
        other = "other " if revoked else ""
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


# -- writing: appending only --------------------------------------------------------------------


def with_approval(
    ledger: Mapping[str, Any],
    plan: Fingerprint,
    run_id: str,
    approvers: Sequence[str],
    at: datetime,
) -> Ledger:
    """The ledger with ``plan`` approved by ``approvers`` in approval run ``run_id`` appended.

    Raises:
        RevokedFingerprint: ``plan``'s fingerprint was revoked, whenever that was.
            A cleared and re-run approval run would otherwise undo the revocation.
        BrokenLedger: the ledger does not verify; appending would hide the edit.
    """
    entries = _unbroken(ledger)
    revoked = revocation(ledger, plan.digest)
    if revoked:
        raise RevokedFingerprint(
            f"fingerprint {plan.short} was revoked by {revoked.get('by')} at "
            f"{revoked.get('at')}: {revoked.get('reason')} (revocation run "
            f"{revoked.get('run_id')}). A revoked fingerprint stays revoked: change the plan "
            "and ask the CAB to approve its new fingerprint"
        )
    standing = approved(ledger, plan.digest)
    if standing is not None and standing.get("run_id") == run_id:
        return _ledger(entries)  # this run's approval is recorded already
    entry = {
        "kind": APPROVAL,
        "digest": plan.digest,
        "short": plan.short,
        "parts": dict(plan.parts),
        "run_id": run_id,
        "approved_by": list(approvers),
        "approved_at": at.isoformat(),
        "prev": link(entries[-1] if entries else None),
    }
    return _ledger([*entries, entry])


def with_revocation(
    ledger: Mapping[str, Any], which: str, by: str, reason: str, run_id: str, at: datetime
) -> tuple[Ledger, list[str]]:
    """The ledger with a revocation of each standing approval appended, and the short digests.

    ``which`` is a digest or its start (as shown, 12 characters); empty revokes
    every approval that still stands.

    Raises:
        BrokenLedger: the ledger does not verify; appending would hide the edit.
    """
    entries = _unbroken(ledger)
    revoked = []
    for digest, standing in _view(entries).items():
        if not (_stands(standing) and digest.startswith(which.strip().lower())):
            continue
        short = str(standing.get("short") or digest[:12])
        entries.append(
            {
                "kind": REVOCATION,
                "digest": digest,
                "short": short,
                "by": by,
                "at": at.isoformat(),
                "reason": reason,
                "run_id": run_id,
                "prev": link(entries[-1] if entries else None),
            }
        )
        revoked.append(short)
    if not revoked:
        return copy.deepcopy(dict(ledger)), []
    return _ledger(entries), revoked


# -- the promotion guard ------------------------------------------------------------------------


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
