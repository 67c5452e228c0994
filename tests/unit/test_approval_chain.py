"""The approvals ledger is an append-only chain: an edit shows, and a revocation stays."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gonogo.core.change.approval import (
    HISTORY,
    BrokenLedger,
    RevokedFingerprint,
    approved,
    broken_link,
    history,
    latest,
    link,
    not_approved,
    with_approval,
    with_revocation,
)
from gonogo.core.change.fingerprint import Fingerprint

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
P1 = Fingerprint("a" * 64, "w" * 64, {"step:deploy": "d1"})
P2 = Fingerprint("b" * 64, "w" * 64, {"step:deploy": "d2"})
P3 = Fingerprint("c" * 64, "w" * 64, {"step:deploy": "d3"})

Ledger = dict[str, Any]


def approve(ledger: Ledger, p: Fingerprint, run_id: str, hours: int = 0) -> Ledger:
    return with_approval(ledger, p, run_id, ["alice (cab)"], T0 + timedelta(hours=hours))


def revoke(ledger: Ledger, p: Fingerprint, by: str = "carol") -> Ledger:
    new, shorts = with_revocation(
        ledger, p.short, by, "wrong window", "revoke-1", T0 + timedelta(1)
    )
    assert shorts == [p.short]
    return new


def three() -> Ledger:
    """P1 and P2 approved, then P1 revoked: three entries."""
    return revoke(approve(approve({}, P1, "run-1"), P2, "run-2", 1), P1)


def stored(ledger: Ledger) -> Ledger:
    """The ledger as Airflow gives it back: JSON, written and read."""
    loaded: Ledger = json.loads(json.dumps(ledger))
    return loaded


def legacy() -> Ledger:
    """A ledger from before the history: P1 approved and revoked, P2 approved."""
    return {
        P1.digest: {
            "digest": P1.digest,
            "short": P1.short,
            "parts": dict(P1.parts),
            "run_id": "old-1",
            "approved_by": ["alice (cab)"],
            "approved_at": T0.isoformat(),
            "revoked": {"by": "carol", "at": T0.isoformat(), "reason": "bug", "run_id": "old-r"},
        },
        P2.digest: {
            "digest": P2.digest,
            "short": P2.short,
            "parts": dict(P2.parts),
            "run_id": "old-2",
            "approved_by": ["bob (cab)"],
            "approved_at": (T0 + timedelta(hours=1)).isoformat(),
            "revoked": None,
        },
    }


# -- the chain holds ----------------------------------------------------------------------------


def test_each_entry_links_to_the_one_before_and_the_first_to_nothing() -> None:
    entries = three()[HISTORY]
    assert [e["kind"] for e in entries] == ["approval", "approval", "revocation"]
    assert entries[0]["prev"] == hashlib.sha256(b"").hexdigest()
    assert entries[1]["prev"] == link(entries[0])
    assert entries[2]["prev"] == link(entries[1])
    canonical = json.dumps(entries[0], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert link(entries[0]) == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_ledger_gonogo_wrote_verifies_also_after_json_storage() -> None:
    assert broken_link(three()) is None
    assert broken_link(stored(three())) is None
    assert broken_link({}) is None


def test_the_view_is_what_the_history_says() -> None:
    ledger = stored(three())
    assert approved(ledger, P1.digest) is None
    assert ledger[P1.digest]["revoked"]["by"] == "carol"
    assert approved(ledger, P2.digest) == ledger[P2.digest]
    assert latest(ledger) == ledger[P2.digest]


def test_writing_only_appends() -> None:
    before = stored(approve({}, P1, "run-1"))
    after = approve(before, P2, "run-2")
    assert after[HISTORY][:1] == before[HISTORY] and len(after[HISTORY]) == 2
    revoked = revoke(after, P2)
    assert revoked[HISTORY][:2] == after[HISTORY] and len(revoked[HISTORY]) == 3
    assert before == stored(approve({}, P1, "run-1"))  # the given ledger is left as it was


def test_recording_the_same_approval_run_again_adds_nothing() -> None:
    once = approve({}, P1, "run-1")
    assert approve(once, P1, "run-1", hours=5) == once


# -- an edit shows ------------------------------------------------------------------------------


def edit_entry(ledger: Ledger) -> None:
    ledger[HISTORY][0]["approved_by"] = ["mallory (cab)"]


def remove_entry(ledger: Ledger) -> None:
    del ledger[HISTORY][1]


def swap_entries(ledger: Ledger) -> None:
    h = ledger[HISTORY]
    h[0], h[1] = h[1], h[0]


def remove_first(ledger: Ledger) -> None:
    del ledger[HISTORY][0]


def edit_last(ledger: Ledger) -> None:
    ledger[HISTORY][2]["reason"] = "never mind"


def unrevoke_view(ledger: Ledger) -> None:
    ledger[P1.digest]["revoked"] = None


def drop_revocation(ledger: Ledger) -> None:
    del ledger[HISTORY][2]


def add_to_view(ledger: Ledger) -> None:
    ledger[P3.digest] = {**ledger[P2.digest], "digest": P3.digest, "short": P3.short}


def not_a_list(ledger: Ledger) -> None:
    ledger[HISTORY] = {"0": ledger[HISTORY][0]}


def not_an_entry(ledger: Ledger) -> None:
    ledger[HISTORY][1] = "approved"


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        (
            edit_entry,
            "entry 2 of 3 (approval of bbbbbbbbbbbb in run run-2) does not follow entry 1",
        ),
        (remove_entry, "entry 2 of 2 (revocation of aaaaaaaaaaaa by carol at"),
        (swap_entries, "entry 1 of 3 (approval of bbbbbbbbbbbb in run run-2) is not the first"),
        (remove_first, "entry 1 of 2 (approval of bbbbbbbbbbbb in run run-2) is not the first"),
        (edit_last, "the entry for fingerprint aaaaaaaaaaaa is not what its history says"),
        (unrevoke_view, "the entry for fingerprint aaaaaaaaaaaa is not what its history says"),
        (drop_revocation, "the entry for fingerprint aaaaaaaaaaaa is not what its history says"),
        (add_to_view, "the entry for fingerprint cccccccccccc is not what its history says"),
        (not_a_list, "its history is not a list"),
        (not_an_entry, "entry 2 of 3 (not an entry) is not an approval or a revocation"),
    ],
    ids=[
        "edited",
        "removed",
        "reordered",
        "first-removed",
        "last-edited",
        "view-unrevoked",
        "revocation-dropped",
        "view-added",
        "not-a-list",
        "not-an-entry",
    ],
)
def test_an_edited_ledger_names_the_first_broken_link(
    edit: Callable[[Ledger], None], found: str
) -> None:
    ledger = stored(three())
    edit(ledger)
    problem = broken_link(ledger)
    assert problem is not None and problem.startswith(found), problem


def test_a_removed_entry_says_what_it_no_longer_follows() -> None:
    ledger = stored(three())
    remove_entry(ledger)
    problem = broken_link(ledger)
    assert problem is not None and "does not follow entry 1 (approval of aaaaaaaaaaaa" in problem
    assert "edited, removed or moved" in problem


def test_an_edited_view_does_not_approve_what_the_history_revoked() -> None:
    ledger = stored(three())
    unrevoke_view(ledger)
    assert approved(ledger, P1.digest) is None
    assert latest(ledger) == ledger[P2.digest]


@pytest.mark.parametrize("edit", [edit_entry, unrevoke_view, not_a_list], ids=lambda f: f.__name__)
def test_nothing_is_appended_to_an_edited_ledger(edit: Callable[[Ledger], None]) -> None:
    ledger = stored(three())
    edit(ledger)
    with pytest.raises(BrokenLedger, match="the approvals ledger was edited outside gonogo: "):
        approve(ledger, P3, "run-3")
    with pytest.raises(BrokenLedger, match="edited outside gonogo"):
        with_revocation(ledger, "", "carol", "freeze", "revoke-2", T0)


# -- a revocation stays -------------------------------------------------------------------------


def test_approving_a_revoked_fingerprint_again_is_refused_naming_the_revocation() -> None:
    ledger = stored(three())
    kept = copy.deepcopy(ledger)
    with pytest.raises(RevokedFingerprint) as refused:
        approve(ledger, P1, "run-1")  # the same approval run, cleared and run again
    at = (T0 + timedelta(1)).isoformat()
    assert str(refused.value) == (
        f"fingerprint {P1.short} was revoked by carol at {at}: wrong window (revocation run "
        "revoke-1). A revoked fingerprint stays revoked: change the plan and ask the CAB to "
        "approve its new fingerprint"
    )
    with pytest.raises(RevokedFingerprint, match="revoked by carol"):
        approve(ledger, P1, "run-9", hours=48)  # nor in a new approval run
    assert ledger == kept


def test_a_new_fingerprint_after_a_revocation_is_approved() -> None:
    ledger = approve(stored(three()), P3, "run-3", hours=30)
    assert broken_link(ledger) is None
    assert approved(ledger, P3.digest) is not None
    assert approved(ledger, P1.digest) is None
    assert latest(ledger) == ledger[P3.digest]


def test_a_revocation_of_every_approval_stays_for_each() -> None:
    ledger, shorts = with_revocation(three(), "", "dave", "freeze", "revoke-2", T0)
    assert shorts == [P2.short]
    for p in (P1, P2):
        with pytest.raises(RevokedFingerprint):
            approve(ledger, p, "run-x")


# -- a ledger from before the history -----------------------------------------------------------


def test_a_ledger_from_before_the_history_is_read_as_it_stands() -> None:
    old = legacy()
    assert broken_link(old) is None
    assert approved(old, P1.digest) is None
    assert approved(old, P2.digest) == old[P2.digest]
    assert latest(old) == old[P2.digest]
    assert "was revoked by carol" in not_approved(old, P1, "demo.approval")


def test_its_first_write_starts_the_chain_with_what_it_held() -> None:
    new = approve(legacy(), P3, "run-3", hours=2)
    assert broken_link(stored(new)) is None
    kinds = [(e["kind"], e["digest"][0], e.get("before_chain", False)) for e in new[HISTORY]]
    assert kinds == [
        ("approval", "a", True),
        ("approval", "b", True),
        ("revocation", "a", True),
        ("approval", "c", False),
    ]
    assert new[P1.digest] == legacy()[P1.digest]
    assert new[P2.digest] == legacy()[P2.digest]
    assert history(legacy()) == new[HISTORY][:3]


def test_a_fingerprint_revoked_before_the_history_stays_revoked() -> None:
    with pytest.raises(RevokedFingerprint, match=r"revoked by carol at .*: bug"):
        approve(legacy(), P1, "old-1")
