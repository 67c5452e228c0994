"""The approvals and successes ledgers, as the pure functions the approval DAG calls."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gonogo.core.change.approval import (
    approved,
    latest,
    not_approved,
    promotion_refusal,
    success,
    with_approval,
    with_revocation,
)
from gonogo.core.change.fingerprint import Fingerprint

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
DAG = "demo.approval"

#: Three versions of one runbook's plan, as fingerprint parts.
V1 = {"file:scripts/x.sh": "x1", "step:deploy": "d1", "step:check": "c1", "runbook:order": "o1"}
V2 = {**V1, "file:scripts/x.sh": "x2", "step:deploy": "d2"}
V3 = {**V2, "step:check": "c3"}


def plan(parts: Mapping[str, str], digest: str) -> Fingerprint:
    return Fingerprint(digest * 64, f"w{digest}" * 32, dict(parts))


P1, P2, P3 = plan(V1, "a"), plan(V2, "b"), plan(V3, "c")


def ledger_of(*plans: Fingerprint) -> dict[str, dict[str, Any]]:
    """Each plan approved an hour after the one before."""
    ledger: dict[str, dict[str, Any]] = {}
    for i, p in enumerate(plans):
        ledger = with_approval(ledger, p, f"run-{i}", ["alice", "bob"], T0 + timedelta(hours=i))
    return ledger


def revoked(ledger: dict[str, dict[str, Any]], p: Fingerprint) -> dict[str, dict[str, Any]]:
    new, _ = with_revocation(
        ledger, p.digest, "carol", "wrong window", "revoke-1", T0 + timedelta(days=1)
    )
    return new


# -- approved and latest ------------------------------------------------------------------------


def test_an_approval_stands_for_its_own_digest_only() -> None:
    ledger = ledger_of(P1)
    entry = approved(ledger, P1.digest)
    assert entry is not None
    assert entry["approved_by"] == ["alice", "bob"]
    assert entry["short"] == P1.short
    assert entry["parts"] == V1
    assert approved(ledger, P2.digest) is None


def test_a_revoked_approval_does_not_stand() -> None:
    ledger = revoked(ledger_of(P1), P1)
    assert approved(ledger, P1.digest) is None


@pytest.mark.parametrize(
    "entry",
    [
        {"approved_by": ["alice"], "approved_at": "2030-03-01T09:00:00+00:00"},
        {"run_id": "", "approved_by": ["alice"]},
        "approved",
        None,
    ],
    ids=["no run id", "empty run id", "a string", "null"],
)
def test_a_malformed_entry_approves_nothing(entry: Any) -> None:
    assert approved({P1.digest: entry}, P1.digest) is None
    assert latest({P1.digest: entry}) is None


def test_latest_is_the_newest_standing_approval() -> None:
    ledger = ledger_of(P1, P2, P3)
    assert latest(ledger) == ledger[P3.digest]
    assert latest(revoked(ledger, P3)) == ledger[P2.digest]
    assert latest(revoked(revoked(revoked(ledger, P3), P2), P1)) is None
    assert latest({}) is None


def test_latest_goes_by_approval_time_not_ledger_order() -> None:
    ledger = ledger_of(P1, P2)
    reordered = {P2.digest: ledger[P2.digest], P1.digest: ledger[P1.digest]}
    older_last = with_approval(reordered, P3, "run-x", ["dave"], T0 - timedelta(days=1))
    assert latest(older_last) == ledger[P2.digest]


# -- why a plan may not run ---------------------------------------------------------------------


def test_a_plan_with_no_approval_at_all() -> None:
    message = not_approved({}, P1, DAG)
    assert message == (
        f"not started: this plan (fingerprint {P1.short}) is not approved; no version of this "
        f"runbook is approved. Ask the CAB to approve it: trigger {DAG}, whose request "
        "shows the kjøreplan and the fingerprint"
    )


def test_a_changed_plan_names_what_changed_since_the_approved_version() -> None:
    message = not_approved(ledger_of(P1), P2, DAG)
    assert message == (
        f"not started: this plan (fingerprint {P2.short}) is not approved; changed since the "
        f"approved version {P1.short} (approved by alice, bob at {T0.isoformat()}): "
        f"file scripts/x.sh changed; step deploy changed. Ask the CAB to approve it: trigger "
        f"{DAG}, whose request shows the kjøreplan and the fingerprint"
    )


def test_changes_are_named_against_the_latest_standing_approval() -> None:
    # P2 is the newest approval; P3 differs from it only in the check step.
    assert "approved version " + P2.short in not_approved(ledger_of(P1, P2), P3, DAG)
    assert ": step check changed." in not_approved(ledger_of(P1, P2), P3, DAG)
    # With P2 revoked, P1 is the version that stands, and more has changed since.
    message = not_approved(revoked(ledger_of(P1, P2), P2), P3, DAG)
    assert f"approved version {P1.short} " in message
    assert ": file scripts/x.sh changed; step check changed; step deploy changed." in message


def test_steps_added_and_removed_since_the_approval_are_named_so() -> None:
    grown = plan({**V1, "step:verify": "v1"}, "d")
    assert ": step verify added." in not_approved(ledger_of(P1), grown, DAG)
    shrunk = plan({k: v for k, v in V1.items() if k != "step:check"}, "e")
    assert ": step check removed." in not_approved(ledger_of(P1), shrunk, DAG)


def test_a_revoked_plan_says_who_revoked_it_and_why() -> None:
    ledger = revoked(ledger_of(P1, P2), P2)
    message = not_approved(ledger, P2, DAG)
    at = (T0 + timedelta(days=1)).isoformat()
    assert message.startswith(
        f"not started: the approval of this plan (fingerprint {P2.short}) was revoked by "
        f"carol at {at}: wrong window; changed since the approved version {P1.short} "
    )
    assert f"trigger {DAG}" in message


def test_a_plan_equal_in_every_part_says_nothing_hashed_changed() -> None:
    same_parts = plan(V1, "d")
    assert ": nothing that gonogo hashes." in not_approved(ledger_of(P1), same_parts, DAG)


# -- revoking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "which",
    [P2.digest, P2.short, P2.short.upper(), f"  {P2.short}  ", P2.digest[:4]],
    ids=["digest", "short", "upper case", "spaces", "any start"],
)
def test_revoking_by_digest_prefix(which: str) -> None:
    ledger = ledger_of(P1, P2)
    new, shorts = with_revocation(ledger, which, "carol", "wrong window", "revoke-1", T0)
    assert shorts == [P2.short]
    assert new[P2.digest]["revoked"] == {
        "by": "carol",
        "at": T0.isoformat(),
        "reason": "wrong window",
        "run_id": "revoke-1",
    }
    assert approved(new, P1.digest) == ledger[P1.digest]
    assert approved(new, P2.digest) is None


@pytest.mark.parametrize("which", ["", "   "], ids=["empty", "blank"])
def test_revoking_nothing_named_revokes_every_standing_approval(which: str) -> None:
    new, shorts = with_revocation(ledger_of(P1, P2, P3), which, "carol", "freeze", "r", T0)
    assert sorted(shorts) == sorted([P1.short, P2.short, P3.short])
    assert latest(new) is None


def test_an_approval_already_revoked_is_left_alone() -> None:
    first = revoked(ledger_of(P1, P2), P1)
    new, shorts = with_revocation(first, "", "dave", "second thoughts", "revoke-2", T0)
    assert shorts == [P2.short]
    assert new[P1.digest]["revoked"] == first[P1.digest]["revoked"]
    assert new[P1.digest]["revoked"]["by"] == "carol"
    assert new[P2.digest]["revoked"]["by"] == "dave"


def test_revoking_an_unknown_digest_revokes_nothing() -> None:
    ledger = ledger_of(P1)
    new, shorts = with_revocation(ledger, "f" * 12, "carol", "why", "r", T0)
    assert shorts == []
    assert new == ledger


def test_revoking_leaves_the_given_ledger_as_it_was() -> None:
    ledger = ledger_of(P1, P2)
    kept = copy.deepcopy(ledger)
    with_revocation(ledger, "", "carol", "why", "r", T0)
    assert ledger == kept


def test_an_entry_without_a_short_digest_is_reported_by_its_digest_start() -> None:
    # A ledger from before the history, which did not always keep the short digest.
    ledger = {P1.digest: {k: v for k, v in ledger_of(P1)[P1.digest].items() if k != "short"}}
    _, shorts = with_revocation(ledger, "", "carol", "why", "r", T0)
    assert shorts == [P1.digest[:12]]


# -- the promotion guard ------------------------------------------------------------------------

NOW = datetime(2030, 3, 15, 12, 0, tzinfo=UTC)


def run(environment: str, at: datetime | str, run_id: str = "r") -> dict[str, Any]:
    when = at if isinstance(at, str) else at.isoformat()
    return {"environment": environment, "dag_id": "demo", "run_id": run_id, "at": when, "by": "x"}


def test_success_keeps_runs_in_the_environment_within_the_period_newest_first() -> None:
    old = run("test", NOW - timedelta(days=20), "old")
    early = run("test", NOW - timedelta(days=10), "early")
    late = run("test", NOW - timedelta(hours=1), "late")
    elsewhere = run("prod", NOW - timedelta(hours=2), "prod")
    future = run("test", NOW + timedelta(hours=1), "future")
    found = success([old, early, elsewhere, late, future], "test", timedelta(days=14), NOW)
    assert [e["run_id"] for e in found] == ["late", "early"]


def test_the_period_includes_both_ends() -> None:
    edge = run("test", NOW - timedelta(days=14), "edge")
    now = run("test", NOW, "now")
    found = success([edge, now], "test", timedelta(days=14), NOW)
    assert [e["run_id"] for e in found] == ["now", "edge"]
    assert success([edge], "test", timedelta(days=14) - timedelta(seconds=1), NOW) == []


@pytest.mark.parametrize(
    "entry",
    [
        {"environment": "test", "run_id": "r"},
        run("test", "yesterday"),
        run("test", ""),
        {**run("test", NOW), "at": None},
        pytest.param(
            run("test", "2030-03-15T11:00:00"),
        ),
        pytest.param(
            "test",
        ),
        pytest.param(
            None,
        ),
    ],
    ids=["no time", "not a time", "empty time", "null time", "naive time", "a string", "null"],
)
def test_a_malformed_success_is_ignored(entry: Any) -> None:
    good = run("test", NOW - timedelta(hours=1), "good")
    assert success([entry, good], "test", timedelta(days=14), NOW) == [good]


@pytest.mark.parametrize(
    ("within", "period"),
    [
        (timedelta(days=14), "14d"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(hours=12), "12h"),
    ],
)
def test_the_promotion_refusal_names_the_environment_and_period(
    within: timedelta, period: str
) -> None:
    message = promotion_refusal(P1, "test", within)
    assert message == (
        f"not started: the promotion guard needs this plan of work (fingerprint "
        f"{P1.work[:12]}) to have succeeded in test within the last {period}, and no such "
        "run is recorded; run it in test first (a rehearsal does not count)"
    )
