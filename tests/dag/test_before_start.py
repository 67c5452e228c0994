"""``before_start`` refuses a run whose trigger stamp the API server did not sign for it.

The stamp is what the middleware writes into a run's conf when a person triggers
it (tests/dag/test_middleware.py); here the task's own check, with the secret from
Airflow's config as a worker reads it. The real run is in
tests/integration/test_trust.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from gonogo.core import naming
from gonogo.core.runs import stamp
from gonogo.dag.preflight import preflight

SECRET = "the installation's secret"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__GONOGO__STAMP_SECRET", SECRET)


def context(recorded: Any, run_id: str = "manual__1", triggered_by: str | None = "kari") -> Any:
    conf = {"version": "1"} if recorded is None else {naming.CONF_TRIGGER: recorded}
    return {
        "dag": SimpleNamespace(dag_id="ehr-upgrade"),
        "run_id": run_id,
        "dag_run": SimpleNamespace(conf=conf, triggering_user_name=triggered_by),
    }


def start(ctx: Any) -> Any:
    return preflight({"go": ["rm"]}, {"rm": ["kari", "ola"]}, **ctx)


def signed(**overrides: str) -> dict[str, str]:
    fields = {"secret": SECRET, "dag_id": "ehr-upgrade", "run_id": "manual__1"}
    fields.update({k: v for k, v in overrides.items() if k in fields})
    found = stamp.stamp(
        fields["secret"], fields["dag_id"], fields["run_id"], "kari", overrides.get("name", "kari")
    )
    return {**found, **{k: v for k, v in overrides.items() if k in ("id", "sig")}}


def test_a_run_the_api_server_signed_starts() -> None:
    assert start(context(signed()))["triggered_by"] == {"id": "kari", "name": "kari"}


@pytest.mark.parametrize(
    ("recorded", "why"),
    [
        (None, "nobody known triggered this run"),
        ({"id": "kari", "name": "kari"}, "not the API server's"),
        (signed(sig="0" * 64), "not the API server's"),
        (signed(id="ola"), "not the API server's"),
        (signed(run_id="manual__2"), "not the API server's"),
        (signed(dag_id="hotfix"), "not the API server's"),
        (signed(secret="another installation"), "not the API server's"),
        (signed(name="ola"), "signed this run for ola, but Airflow says kari"),
        ("kari", "nobody known triggered this run"),
    ],
    ids=[
        "missing",
        "unsigned",
        "wrong-signature",
        "other-user",
        "other-run",
        "other-dag",
        "other-secret",
        "other-name",
        "not-a-record",
    ],
)
def test_a_run_without_a_valid_stamp_is_refused_saying_how_to_start_one(
    recorded: Any, why: str
) -> None:
    with pytest.raises(AirflowFailException) as refused:
        start(context(recorded))
    message = str(refused.value)
    assert why in message
    assert "POST /api/v2/dags/<dag_id>/dagRuns" in message
    assert "Airflow UI" in message


def test_a_worker_without_the_secret_says_which_setting_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__GONOGO__STAMP_SECRET", "")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "")
    with pytest.raises(AirflowFailException, match=r"set \[gonogo\] stamp_secret"):
        start(context(signed()))


def test_a_gonogo_dag_is_never_scheduled_so_every_run_is_a_persons_trigger() -> None:
    """A scheduled run would have no stamp: ``before_start`` would refuse every one."""
    from tests.conftest import EXAMPLES, RUNBOOKS

    from gonogo.core.earlylife import names
    from gonogo.core.runbook.loader import load_file
    from gonogo.dag.builder import build_dags

    built = [dag for path in EXAMPLES for dag in build_dags(load_file(path)[0], RUNBOOKS)]
    assert any(dag.dag_id.endswith(naming.APPROVAL_SUFFIX) for dag in built)
    # Early-life support is started by a succeeded rollout's go-live event, which its
    # start task checks against the rollout's outcome (tests/dag/test_earlylife_dag.py).
    for dag in (d for d in built if not d.dag_id.endswith(names.SUFFIX)):
        assert dag.schedule is None, dag.dag_id
        assert dag.timetable.can_be_scheduled is False, dag.dag_id
