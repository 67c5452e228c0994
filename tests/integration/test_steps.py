"""Steps against a real Airflow: every step kind, logs, quoting, http until, manual, lock, import errors."""

from __future__ import annotations

import time

import pytest
from tests.integration.conftest import Airflow

pytestmark = pytest.mark.integration

HOSTILE = '1.0; touch "$GONOGO_STATE_DIR/pwned"; echo injected'


def test_example_runbooks_load_with_no_import_errors(airflow: Airflow) -> None:
    airflow.wait_dags("ehr-upgrade-4-2", "portal-cert-renewal", "lab-integration-hotfix")
    errors = airflow.admin.import_errors()
    # Only the broken test runbook is reported: on its own file and on the steady reporter.
    others = [e for e in errors if "broken.yaml" not in str(e["stack_trace"])]
    assert others == []


def test_broken_runbook_is_reported_with_its_location_and_hides_nothing(airflow: Airflow) -> None:
    airflow.wait_dags("it-kinds", "it-http-fail", "ehr-upgrade-4-2")
    errors = airflow.admin.wait_for(
        "the import error of broken.yaml",
        lambda: [e for e in airflow.admin.import_errors() if e["filename"].endswith("broken.yaml")],
        timeout=120,
    )
    assert "broken.yaml:2:1: titel: unknown key; did you mean 'title'?" in errors[0]["stack_trace"]
    assert "it-broken" not in {d["dag_id"] for d in airflow.admin.listed("/dags", "dags")}
    assert "broken.yaml" in airflow.stack.log_tail("dag-processor", 10**7) or any(
        "broken.yaml" in p.read_text(errors="replace")
        for p in (airflow.stack.home / "logs").rglob("*.log")
    )


def test_a_broken_runbooks_error_is_shown_steadily_over_several_parses(airflow: Airflow) -> None:
    def shown() -> list[dict[str, object]]:
        return [
            e
            for e in airflow.admin.import_errors()
            if "broken.yaml:2:1: titel: unknown key" in str(e["stack_trace"])
        ]

    airflow.admin.wait_for(
        "the steady report of broken.yaml",
        lambda: any(str(e["filename"]).endswith("gonogo_import_errors.py") for e in shown()),
        timeout=120,
    )
    # Longer than two refreshes of the DAGs folder (10 s each here), when Airflow clears
    # the errors of files that are not DAG files: the error never disappears meanwhile.
    for _ in range(12):
        assert shown(), "the broken runbook's error disappeared from the import errors"
        time.sleep(2.5)


def test_every_step_kind_runs_and_logs_what_it_did(airflow: Airflow) -> None:
    airflow.wait_dags("it-kinds")
    operator, approver = airflow.operator, airflow.client("wardrep")
    run = operator.trigger("it-kinds", {"label": HOSTILE})
    operator.wait_pending("it-kinds", run, "run.confirm", timeout=180)
    approver.answer_or_raise("it-kinds", run, "run.confirm", "Done", "label file is there")
    assert operator.wait_run("it-kinds", run)["state"] == "success"

    shell = operator.task_log("it-kinds", run, "run.shell")
    # The command never holds the value: it names the variable the value is in.
    assert "bash step: printf 'label is [%s]\\n' \"$GONOGO_PARAM_LABEL\"" in shell
    assert f"label is [{HOSTILE}]" in shell  # its output: the hostile value stayed one literal
    assert not (airflow.state_dir / "pwned").exists()
    assert (airflow.state_dir / "label.txt").read_text().strip() == HOSTILE

    request = operator.task_log("it-kinds", run, "run.request")
    assert f"GET {airflow.http}/health" in request and "HTTP 200" in request

    call = operator.task_log("it-kinds", run, "run.call")
    assert "steps.testing:greet" in call and f"hello, {HOSTILE}" in call

    confirm = operator.task_log("it-kinds", run, "run.confirm")
    assert "wardrep answered Done: label file is there" in confirm
    assert operator.xcom("it-kinds", run, "outcome", key="outcome")["outcome"] == "succeeded"


def test_manual_step_answered_failed_fails_the_run(airflow: Airflow) -> None:
    airflow.wait_dags("it-kinds")
    operator = airflow.operator
    run = operator.trigger("it-kinds")
    operator.wait_pending("it-kinds", run, "run.confirm", timeout=180)
    airflow.client("svcowner").answer_or_raise(
        "it-kinds", run, "run.confirm", "Failed", "no label file"
    )
    assert operator.wait_run("it-kinds", run)["state"] == "failed"
    states = {t: ti["state"] for t, ti in operator.task_instances("it-kinds", run).items()}
    assert states["run.confirm"] == "failed"
    assert "reported the manual step failed: no label file" in operator.task_log(
        "it-kinds", run, "run.confirm"
    )


def test_http_until_waits_then_a_wrong_status_fails(airflow: Airflow) -> None:
    airflow.wait_dags("it-http-fail")
    operator = airflow.operator
    run = operator.trigger("it-http-fail")
    assert operator.wait_run("it-http-fail", run)["state"] == "failed"
    states = {t: ti["state"] for t, ti in operator.task_instances("it-http-fail", run).items()}
    assert states["run.wait_healthy"] == "success"
    waited = operator.task_log("it-http-fail", run, "run.wait_healthy")
    assert "attempt 1: HTTP 503" in waited and "attempt 3: HTTP 200" in waited
    assert states["run.wrong_status"] == "failed"
    assert "status 500, expected 200" in operator.task_log("it-http-fail", run, "run.wrong_status")


def test_two_rollouts_of_one_service_never_overlap(airflow: Airflow) -> None:
    airflow.wait_dags("it-lock-a", "it-lock-b")
    operator = airflow.operator
    runs = [
        ("it-lock-a", operator.trigger("it-lock-a")),
        ("it-lock-b", operator.trigger("it-lock-b")),
    ]
    spans = []
    for dag_id, run in runs:
        assert operator.wait_run(dag_id, run)["state"] == "success"
        hold = operator.task_instances(dag_id, run)["work.hold"]
        spans.append((hold["start_date"], hold["end_date"]))
    (_, a_end), (b_start, _) = sorted(spans)
    assert a_end <= b_start, f"runs overlapped: {spans}"


def test_work_waits_for_the_window_without_a_worker_slot(airflow: Airflow) -> None:
    airflow.wait_dags("it-window-later")
    operator = airflow.operator
    run = operator.trigger("it-window-later")
    waiting = operator.wait_task(
        "it-window-later", run, "wait_for_window", ["deferred"], timeout=120
    )
    assert waiting["state"] == "deferred"  # parked in the triggerer: no worker slot held
    states = {t: ti["state"] for t, ti in operator.task_instances("it-window-later", run).items()}
    assert states.get("work.prepare") in (
        None,
        "none",
        "scheduled",
    )  # nothing ran before the window


def test_work_still_running_when_the_window_closes_fails_and_rolls_back(airflow: Airflow) -> None:
    airflow.wait_dags("it-window-closing")
    operator = airflow.operator
    run = operator.trigger("it-window-closing")
    assert operator.wait_run("it-window-closing", run, timeout=600)["state"] == "failed"
    states = {t: ti["state"] for t, ti in operator.task_instances("it-window-closing", run).items()}
    failed = [t for t in ("work.prepare", "work.long_work") if states[t] == "failed"]
    assert failed, states
    log = operator.task_log("it-window-closing", run, failed[0])
    assert "window ended" in log or "Timeout" in log, log[-2000:]
    outcome = operator.xcom("it-window-closing", run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back"
    if states["work.prepare"] == "success":
        assert outcome["undone"] == ["prepare"]


def test_secrets_come_from_connections_and_are_masked_in_logs(airflow: Airflow) -> None:
    airflow.wait_dags("it-secrets")
    admin = airflow.admin
    port = int(airflow.http.rsplit(":", 1)[1])
    for body in (
        {"connection_id": "it_token", "conn_type": "generic", "password": "tok-s3cret-value"},
        {
            "connection_id": "it_http",
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": port,
            "schema": "http",
            "login": "deployer",
            "password": "http-s3cret-pw",
        },
    ):
        response = admin.request("POST", "/connections", json=body)
        assert response.status_code in (200, 201, 409), response.text
    run = airflow.operator.trigger("it-secrets")
    assert airflow.operator.wait_run("it-secrets", run)["state"] == "success"
    token_log = admin.task_log("it-secrets", run, "run.use_token")
    assert "calling the ITSM with token=***" in token_log
    http_log = admin.task_log("it-secrets", run, "run.private_api")
    assert "HTTP 200" in http_log and "/private" in http_log
    for log in (token_log, http_log):
        assert "tok-s3cret-value" not in log and "http-s3cret-pw" not in log
