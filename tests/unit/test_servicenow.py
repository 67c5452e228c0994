"""The ServiceNow adapter against a ServiceNow-compatible server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gonogo.core.messages.itsm import refusal, work_note
from gonogo.dag.itsm.servicenow import ServiceNow
from gonogo.dev.servicenow import FakeServiceNow
from gonogo.errors import ItsmError

NOW = datetime.now(UTC)
FMT = "%Y-%m-%d %H:%M:%S"


@pytest.fixture
def snow() -> Iterator[FakeServiceNow]:
    fake = FakeServiceNow()
    fake.start()
    fake.add_change(
        "CHG0034512",
        start=(NOW - timedelta(hours=1)).strftime(FMT),
        end=(NOW + timedelta(hours=5)).strftime(FMT),
    )
    fake.add_change("CHG0000002", state="-3", approval="requested")
    yield fake
    fake.stop()


def client(fake: FakeServiceNow, password: str | None = None, timeout: float = 5) -> ServiceNow:
    return ServiceNow(fake.url, fake.user, password or fake.password, timeout=timeout)


def test_an_approved_change_in_its_window_may_start(snow: FakeServiceNow) -> None:
    change = client(snow).find_change("CHG0034512")
    assert change is not None and change.approved and change.state == "Scheduled"
    assert (
        refusal("ServiceNow", change.number, change, ["exists", "approved", "in_window"], NOW)
        is None
    )


def test_an_unapproved_change_is_refused_in_servicenows_words(snow: FakeServiceNow) -> None:
    change = client(snow).find_change("CHG0000002")
    why = refusal("ServiceNow", "CHG0000002", change, ["exists", "approved"], NOW)
    assert why == (
        "ServiceNow change CHG0000002 is not approved: approval is 'requested', state is 'Authorize'"
    )


def test_a_standard_change_needs_only_to_exist(snow: FakeServiceNow) -> None:
    change = client(snow).find_change("CHG0000002")
    assert refusal("ServiceNow", "CHG0000002", change, ["exists"], NOW) is None


def test_a_change_outside_its_window_is_refused(snow: FakeServiceNow) -> None:
    change = client(snow).find_change("CHG0034512")
    why = refusal("ServiceNow", "CHG0034512", change, ["in_window"], NOW + timedelta(hours=6))
    assert why is not None and "outside its implementation window" in why


def test_a_missing_change_is_none_and_refused(snow: FakeServiceNow) -> None:
    assert client(snow).find_change("CHG9999999") is None
    assert "has no change CHG9999999" in str(refusal("ServiceNow", "CHG9999999", None, [], NOW))


def test_wrong_credentials_are_refused_with_servicenows_message(snow: FakeServiceNow) -> None:
    with pytest.raises(ItsmError, match="401 User Not Authenticated") as caught:
        client(snow, password="wrong").find_change("CHG0034512")
    assert "wrong" not in str(caught.value) and snow.password not in str(caught.value)


def test_a_slow_instance_is_a_timeout_not_a_hang(snow: FakeServiceNow) -> None:
    snow.delay = 1.0
    with pytest.raises(ItsmError, match=r"did not answer GET change_request within 0\.2s"):
        client(snow, timeout=0.2).find_change("CHG0034512")


def test_work_notes_and_closing_land_on_the_change(snow: FakeServiceNow) -> None:
    itsm = client(snow)
    change = itsm.find_change("CHG0034512")
    assert change is not None
    note = work_note("gate_decided", {"gate": "go_nogo_2", "decision": "GO"}, "r1")
    assert note is not None
    itsm.add_work_note(change, note)
    itsm.close_change(change, "successful", "outcome succeeded")
    assert snow.notes("CHG0034512") == ["gonogo: go_nogo_2: GO from every role (run r1)."]
    record = snow.change("CHG0034512")
    assert (record["state"], record["close_code"]) == ("3", "successful")


def test_an_update_of_an_unknown_record_is_a_404(snow: FakeServiceNow) -> None:
    itsm = client(snow)
    change = itsm.find_change("CHG0034512")
    assert change is not None
    gone = type(change)(**{**change.__dict__, "ref": "0" * 32})
    with pytest.raises(ItsmError, match="404 No Record found"):
        itsm.add_work_note(gone, "x")


@pytest.mark.parametrize(
    ("priority", "stored"), [("P1", "1"), ("P2", "2"), ("P3", "3"), ("P4", "4")]
)
def test_an_incident_gets_its_priority_and_the_change_link(
    snow: FakeServiceNow, priority: str, stored: str
) -> None:
    itsm = client(snow)
    change = itsm.find_change("CHG0034512")
    assert change is not None
    number = itsm.raise_incident(change, priority, "Rollback failed", "text", "key-1")
    (incident,) = snow.incidents()
    assert incident["number"] == number and incident["priority"] == stored
    assert incident["caused_by"] == change.ref
    assert itsm.find_incident("key-1") == number and itsm.find_incident("key-2") is None


def test_an_incident_is_closed_with_the_approved_report_as_close_notes(
    snow: FakeServiceNow,
) -> None:
    itsm = client(snow)
    change = itsm.find_change("CHG0034512")
    assert change is not None
    number = itsm.raise_incident(change, "P1", "Rollback failed", "text", "key-1")
    itsm.close_incident(number, "# Incident report (P1)")
    (incident,) = snow.incidents()
    assert incident["state"] == "7" and incident["close_code"] == "Solved (Permanently)"
    assert incident["close_notes"] == "# Incident report (P1)"
    with pytest.raises(ItsmError, match="no incident INC9"):
        itsm.close_incident("INC9", "x")


def test_a_server_error_is_reported_with_its_status(snow: FakeServiceNow) -> None:
    snow.fail_next = [503]
    with pytest.raises(ItsmError, match="503 Transaction cancelled"):
        client(snow).find_change("CHG0034512")
