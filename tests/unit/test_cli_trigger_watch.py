"""``gonogo trigger`` and ``gonogo watch`` without Airflow: arguments, conf, frames, exit codes.

The frames are rendered from a :class:`~gonogo.core.runs.run.Progress` of the EHR
example, through the JSON the run view serves. The commands end to end talk to a
real HTTP server on 127.0.0.1 that answers as Airflow's API server would.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tests.conftest import RUNBOOKS
from tests.unit.run_fixtures import at, rolled_back, succeeded, waiting_at_gate

from gonogo.client.cli import build_parser, main
from gonogo.client.commands import run_link, trigger_conf
from gonogo.core.documents.report import report_data
from gonogo.core.documents.watch import finished, shown, watch_frame
from gonogo.core.documents.watch import succeeded as ended_well
from gonogo.core.runbook.loader import load_file
from gonogo.core.runs.run import RunRecord, progress
from gonogo.errors import RehearsalError

EHR = Path(__file__).parent / "golden" / "ehr.yaml"
HOTFIX = RUNBOOKS / "hotfix.yaml"


@pytest.fixture(scope="module")
def hotfix() -> Any:
    return load_file(HOTFIX)[0]


def frame_data(record: RunRecord, minutes: float) -> dict[str, Any]:
    """What the run view's JSON holds for ``record`` at ``minutes`` after the start."""
    runbook = load_file(EHR)[0]
    data = report_data(progress(runbook, record, at(minutes)), at(minutes))
    return json.loads(json.dumps(data))  # as it crosses the wire


# -- arguments -----------------------------------------------------------------------------------


def test_trigger_takes_a_runbook_params_and_rehearsal() -> None:
    args = build_parser().parse_args(
        ["trigger", "r.yaml", "--param", "a=1", "--param", "b=x=y", "--rehearsal"]
    )
    assert (args.runbook, args.param, args.rehearsal) == (
        "r.yaml",
        [("a", "1"), ("b", "x=y")],
        True,
    )
    assert build_parser().parse_args(["trigger", "r.yaml"]).rehearsal is False


@pytest.mark.parametrize(
    "argv",
    [
        ["trigger"],
        ["trigger", "r.yaml", "--param", "no-equals-sign"],
        ["trigger", "r.yaml", "--param", "=value"],
        ["watch", "dag"],
        ["watch", "dag", "run", "--every", "0"],
        ["watch", "dag", "run", "--every", "soon"],
    ],
)
def test_a_usage_error_exits_2(argv: list[str]) -> None:
    assert main(argv) == 2


def test_watch_refreshes_every_five_seconds_unless_told() -> None:
    args = build_parser().parse_args(["watch", "dag", "run"])
    assert (args.dag_id, args.run_id, args.every, args.once) == ("dag", "run", 5.0, False)
    assert build_parser().parse_args(["watch", "d", "r", "--every", "2", "--once"]).every == 2.0


def test_params_are_read_as_their_type_and_only_the_given_ones_are_sent(hotfix: Any) -> None:
    assert trigger_conf(hotfix, [("queue_size", "800")], rehearsal=False) == {"queue_size": 800}
    assert trigger_conf(hotfix, [], rehearsal=True) == {"rehearsal": True}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([("queue_sise", "800")], "unknown param 'queue_sise'; did you mean 'queue_size'?"),
        ([("queue_sise", "800")], "(its params: queue_size, fail_step)"),
        ([("queue_size", "50")], "param queue_size='50': Airflow would refuse it"),
        ([("queue_size", "null")], "the value must be of type integer, got null"),
        ([("queue_size", "true")], "the value must be of type integer, got bool"),
        ([("queue_size", "800"), ("queue_size", "900")], "queue_size given more than once"),
        ([("rehearsal", "true")], "use --rehearsal instead"),
    ],
)
def test_a_param_the_runbook_would_refuse_is_refused_naming_its_params(
    hotfix: Any, given: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(RehearsalError) as refused:
        trigger_conf(hotfix, given, rehearsal=False)
    assert message in str(refused.value)


def test_the_link_opens_the_run_view_inside_the_airflow_ui() -> None:
    assert run_link("http://af:8080", "ehr", "manual__2026-12-05T21:00:00+00:00") == (
        "http://af:8080/dags/ehr/runs/manual__2026-12-05T21%3A00%3A00%2B00%3A00/plugin/gonogo-run"
    )


# -- frames --------------------------------------------------------------------------------------


def test_a_frame_of_a_run_at_a_gate_names_the_gate_who_is_awaited_and_the_forecast() -> None:
    lines = watch_frame(frame_data(waiting_at_gate(), 20)).splitlines()
    assert lines[:3] == [
        "EHR 4.2 upgrade in production (ehr-upgrade-4-2)",
        "run manual__2026-12-05T21:00:00+00:00, started 2026-12-05 22:00 by operator",
        "status: yellow: behind plan by 10m; gate go_nogo_2 waiting past its planned time",
    ]
    assert "now: go_nogo_2: GO/NOGO 2, 30 minutes before start" in lines
    awaited = lines[lines.index("awaited:") + 1 :][:2]
    assert awaited == [
        "  go_nogo_2/service_owner: svcowner, svcowner2, waiting 10m",
        "  go_nogo_2/hospital: wardrep, waiting 10m",
    ]
    # Ten minutes at a gate push the forecast ten minutes past the planned end.
    assert "forecast finish 2026-12-05 23:35, window ends 2026-12-06 04:00: 4h25m to spare" in lines
    assert "planned end 2026-12-05 23:25, late 10m" in lines
    assert lines[-1] == "last decision: go_nogo_2/release_manager: GO by relman"


def test_a_forecast_past_the_window_says_by_how_much() -> None:
    from dataclasses import replace

    late = replace(
        waiting_at_gate(), forecast={"at": at(19).isoformat(), "finish": at(400).isoformat()}
    )
    text = watch_frame(frame_data(late, 20))
    assert "window ends 2026-12-06 04:00: 40m past the window end" in text
    assert text.startswith("EHR") and "status: red" in text


def test_the_last_frame_gives_the_outcome_and_why_and_no_forecast() -> None:
    data = frame_data(rolled_back(), 80)
    text = watch_frame(data)
    assert "outcome: rolled_back at 2026-12-05 23:13" in text
    assert "why: step install.migrate_db failed" in text
    assert "undone: backup_db, stop_app" in text
    assert "forecast" not in text and "awaited" not in text
    assert (finished(data), ended_well(data)) == (True, False)


@pytest.mark.parametrize(
    ("record", "minutes", "done", "good"),
    [(succeeded(), 50, True, True), (waiting_at_gate(), 20, False, False)],
)
def test_only_a_run_that_ended_succeeded_counts_as_succeeded(
    record: RunRecord, minutes: float, done: bool, good: bool
) -> None:
    data = frame_data(record, minutes)
    assert (finished(data), ended_well(data)) == (done, good)


def test_text_from_people_cannot_drive_the_terminal() -> None:
    data = frame_data(waiting_at_gate(), 20)
    data["decisions"][-1]["comment"] = "ok\x1b[2J\x1b]0;pwned\x07\u202eevil"
    text = watch_frame(data)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "ok\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil" in text
    assert shown("Kjøreplan ✓") == "Kjøreplan ✓"


# -- the commands against a server that answers as Airflow's ---------------------------------------


class _Airflow(http.server.BaseHTTPRequestHandler):
    frames: ClassVar[list[dict[str, Any]]] = []
    triggered: ClassVar[list[tuple[str, Any, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/auth/token":
            ok = body == {"username": "operator", "password": "operator-pw"}
            self._send(201 if ok else 401, {"access_token": "tok"} if ok else {})
        elif self.path.startswith("/api/v2/dags/") and self.path.endswith("/dagRuns"):
            self.triggered.append((self.path, body, self.headers.get("Authorization", "")))
            self._send(200, {"dag_run_id": "manual__2026-12-05T21:00:00+00:00"})
        else:
            self._send(404, {"detail": "not found"})

    def do_GET(self) -> None:
        if self.path.startswith("/gonogo/runs/ehr-upgrade-4-2/") and self.frames:
            frame = self.frames.pop(0) if len(self.frames) > 1 else self.frames[0]
            self._send(200, frame)
        else:
            self._send(404, {"detail": f"no run at {self.path}"})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def airflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Airflow]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Airflow.frames, _Airflow.triggered = [], []
    monkeypatch.setenv("GONOGO_AIRFLOW_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("GONOGO_USERNAME", "operator")
    monkeypatch.setenv("GONOGO_PASSWORD", "operator-pw")
    monkeypatch.setenv("GONOGO_CONFIG", "/nonexistent")
    yield _Airflow
    server.shutdown()
    server.server_close()


def test_trigger_posts_the_checked_conf_as_the_user_and_prints_the_run_and_a_link(
    airflow: type[_Airflow], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trigger", str(HOTFIX), "--param", "queue_size=800", "--rehearsal"]) == 0
    ((path, body, auth),) = airflow.triggered
    assert path == "/api/v2/dags/lab-integration-hotfix/dagRuns"
    assert body["conf"] == {"queue_size": 800, "rehearsal": True}
    assert auth == "Bearer tok"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "manual__2026-12-05T21:00:00+00:00"
    assert out[1].startswith(
        "started rehearsal of lab-integration-hotfix as operator: http://127.0.0.1:"
    )
    assert out[1].endswith(
        "/dags/lab-integration-hotfix/runs/manual__2026-12-05T21%3A00%3A00%2B00%3A00/plugin/gonogo-run"
    )
    assert (
        out[2] == "follow it: gonogo watch lab-integration-hotfix manual__2026-12-05T21:00:00+00:00"
    )


def test_a_refused_param_starts_nothing(
    airflow: type[_Airflow], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trigger", str(HOTFIX), "--param", "queue=800"]) == 2
    assert airflow.triggered == []
    assert "gonogo trigger: unknown param 'queue'" in capsys.readouterr().err


def test_a_missing_runbook_file_starts_nothing(
    airflow: type[_Airflow], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trigger", "no/such.yaml"]) == 2
    assert airflow.triggered == []
    assert "gonogo trigger: no such file: no/such.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("frames", "code", "last"),
    [
        ([(waiting_at_gate(), 20), (rolled_back(), 80)], 1, "outcome: rolled_back"),
        (
            [(waiting_at_gate(), 20), (waiting_at_gate(), 20), (succeeded(), 50)],
            0,
            "outcome: succeeded",
        ),
    ],
)
def test_watch_prints_each_change_until_the_end_and_exits_by_the_outcome(
    airflow: type[_Airflow],
    capsys: pytest.CaptureFixture[str],
    frames: list[tuple[RunRecord, float]],
    code: int,
    last: str,
) -> None:
    airflow.frames = [frame_data(r, m) for r, m in frames]
    run = "manual__2026-12-05T21:00:00+00:00"
    assert main(["watch", "ehr-upgrade-4-2", run, "--every", "1"]) == code
    out = capsys.readouterr().out
    # Into a pipe: a frame only when it changed, the same one not twice.
    assert out.count("awaited:") == 1
    assert out.count("EHR 4.2 upgrade in production") == 2
    assert last in out.split("\n\n")[-1]


def test_watch_once_prints_one_frame_of_a_running_run_and_exits_0(
    airflow: type[_Airflow], capsys: pytest.CaptureFixture[str]
) -> None:
    airflow.frames = [frame_data(waiting_at_gate(), 20), frame_data(rolled_back(), 80)]
    assert main(["watch", "ehr-upgrade-4-2", "manual__x", "--once"]) == 0
    out = capsys.readouterr().out
    assert out.count("EHR 4.2 upgrade in production") == 1 and "awaited:" in out


def test_watch_of_an_unknown_run_says_so(
    airflow: type[_Airflow], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "other-dag", "manual__x", "--once"]) == 1
    assert "404 no run at /gonogo/runs/other-dag/manual__x" in capsys.readouterr().err
