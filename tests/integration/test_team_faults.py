"""Fault injection on the team deployment: CeleryExecutor on Postgres and Redis, two workers.

The topology of ``test_celery.py``, with Postgres and Redis of its own: they are
restarted here, so they cannot be the machine's. Redis runs without persistence
(``--save '' --appendonly no``), so a restart loses every message it held: the
worst case. Postgres is killed with its whole process group (SIGKILL, no
shutdown) and started again on the same data, so it recovers from its log as
after a power cut. An Airflow component that died meanwhile is started again,
as the compose file's ``restart: always`` does; the test prints which.

The same runbooks and marker-file checks as ``test_faults.py`` (``crashes.py``):
the run's outcome, how often each command started and ended, the lock, the run
note. Each test prints how long recovery took at these settings; the README's
crash section quotes the figures.

Skipped, with the reason, where ``redis-server`` or the Postgres server binaries
(``initdb``, ``postgres``) are missing. Nothing else is needed: the machine's own
Postgres and Redis are never touched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import USERS, Airflow, dags_folder
from tests.integration.crashes import (
    FAST_RECOVERY,
    answered_while_the_api_server_dies,
    asked_a_person_about_the_step,
    asked_a_person_about_the_undo,
    ended,
    fault_runbooks,
    finished,
    lock_is_free,
    note_of,
    open_gate,
    outcome,
    report,
    running_command,
    started,
    trigger,
)

from gonogo.dev.stack import AirflowStack, ancestors, celery_env, free_port, running

WORKERS = ("worker-a", "worker-b")


def _postgres_user() -> str | None:
    """Who runs the private Postgres: ourselves, or the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam("postgres").pw_name
    return ""


def _missing() -> str:
    """Why the private servers cannot start here, or an empty string."""
    absent = [name for name in ("redis-server", "initdb", "postgres") if not shutil.which(name)]
    if absent:
        return f"needs {', '.join(absent)} on PATH for a Redis and a Postgres of its own"
    if _postgres_user() == "":
        return "Postgres refuses to run as root, and there is no 'postgres' user to run it as"
    return ""


pytestmark = [
    pytest.mark.integration,
    pytest.mark.long,
    pytest.mark.skipif(bool(_missing()), reason=_missing()),
]

#: Lost Celery messages are noticed by Airflow's check for tasks stuck in queued. The timeout
#: is also the lifetime of a queued task's token: far more than a task waits for a worker here.
FAST_REQUEUE = {
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
}


# -- servers of our own -------------------------------------------------------------------------


@dataclass
class Server:
    """A server in a process group of its own, so a test can kill it whole and start it again."""

    name: str
    argv: list[str]
    ready: Callable[[], bool]
    log: Path
    user: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
                cwd=self.log.parent,
                user=self.user,
                group=self.user,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the server's whole process group: it gets no chance to shut down."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.process = None

    def restart(self) -> float:
        """Kill it and start it again; the seconds it was down."""
        began = time.monotonic()
        self.kill()
        self.start()
        return time.monotonic() - began


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def redis_server(folder: Path) -> tuple[Server, str]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    return Server("redis", argv, lambda: _redis_pong(port), folder / "redis.log"), (
        f"redis://127.0.0.1:{port}/0"
    )


def _redis_pong(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def postgres_server(folder: Path) -> tuple[Server, str]:
    """A fresh cluster in ``folder``, trusting local connections, as ``_postgres_user()``."""
    user = _postgres_user()
    data = folder / "data"
    if user:
        shutil.chown(folder, user, user)
    subprocess.run(
        ["initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        cwd=folder,
        user=user,
        group=user,
        timeout=120,
    )
    port = free_port()
    argv = ["postgres", "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1"]
    argv += ["-c", f"unix_socket_directories={folder}", "-c", "max_connections=300"]
    argv += ["-c", "fsync=off"]  # the kill is of processes, not of the machine: nothing is lost
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    return Server(
        "postgres", argv, lambda: _postgres_answers(port), folder / "postgres.log", user
    ), url


def _postgres_answers(port: int) -> bool:
    import psycopg2

    try:
        psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
    except psycopg2.OperationalError:
        return False
    return True


@dataclass
class Team:
    airflow: Airflow
    redis: Server
    postgres: Server
    broker: str
    queue: str

    @property
    def stack(self) -> AirflowStack:
        return self.airflow.stack

    def queued_messages(self) -> int:
        """How many task messages wait in Redis for a worker."""
        import redis

        return int(redis.Redis.from_url(self.broker).llen(self.queue))


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("team-faults")
    # Not under pytest's folder: the postgres user must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix="gonogo-team-faults-"))
    redis, broker = redis_server(folder)
    postgres, database = postgres_server(folder)
    state = root / "state"
    state.mkdir()
    queue = f"gonogo_{secrets.token_hex(4)}"
    stack = AirflowStack(
        home=root / "home",
        dags_folder=dags_folder(root),
        runbooks_dir=fault_runbooks(root / "runbooks"),
        users=USERS,
        database_url=database,
        executor="CeleryExecutor",
        extra_env={
            **celery_env(broker, queue),
            "GONOGO_STATE_DIR": str(state),
            **FAST_RECOVERY,
            **FAST_REQUEUE,
        },
    )
    try:
        redis.start()
        postgres.start()
        with running(stack):
            for name in WORKERS:
                stack.start_celery_worker(name, queue)
            yield Team(Airflow(stack, state, ""), redis, postgres, broker, queue)
    finally:
        redis.kill()
        postgres.kill()
        shutil.rmtree(folder, ignore_errors=True)


def revive(team: Team) -> list[str]:
    """Start again every component that died, as ``restart: always`` does; their names.

    It does not wait for them: a component started while Postgres recovers may
    die again, and the next call starts it again.
    """
    dead = [name for name, p in team.stack.processes.items() if p.poll() is not None]
    for name in dead:
        if name.startswith("celery-"):
            team.stack.start_celery_worker(name.removeprefix("celery-"), team.queue)
        else:
            team.stack.spawn(name, list(team.stack.processes[name].args))
    return dead


@contextlib.contextmanager
def supervised(team: Team, settle: float = 30) -> Iterator[list[str]]:
    """Components that die inside the block are started again within a second; their names.

    A component may notice a lost database connection only at its next commit
    (the triggerer exited 10 s after Postgres came back, once the run had
    finished), so the watch goes on until none has died for ``settle`` seconds.
    """
    revived: list[str] = []
    quiet_since = [time.monotonic()]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or time.monotonic() - quiet_since[0] < settle:
            if died := revive(team):
                revived.extend(died)
                quiet_since[0] = time.monotonic()
            time.sleep(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield revived
    finally:
        quiet_since[0] = max(quiet_since[0], time.monotonic())
        done.set()
        watcher.join(timeout=settle + 60)


@pytest.fixture(autouse=True)
def whole(team: Team) -> Iterator[None]:
    """Each test starts with every component and both workers alive, whatever the last one did."""
    revived = revive(team)
    if revived:
        print(f"\nstarted again before the test: {revived}")
    team.stack.wait_healthy(180)
    yield


def worker_of(team: Team, command_pid: int) -> str:
    """The name of the Celery worker whose process tree runs a command."""
    above = set(ancestors(command_pid))
    return next(
        name
        for name, process in team.stack.processes.items()
        if name.startswith("celery-") and process.pid in above
    )


def assert_gate_run_succeeded(team: Team, run_id: str) -> None:
    """fault-gate finished well: both steps ran once, nothing was undone, the lock is free."""
    dag = "fault-gate"
    airflow = team.airflow
    assert finished(airflow, dag, run_id)["state"] == "success"
    assert outcome(airflow, dag, run_id)["outcome"] == "succeeded"
    for name in ("before", "after"):
        assert (started(airflow, run_id, name), ended(airflow, run_id, name)) == (1, 1), name
    assert started(airflow, run_id, "undo_before") == 0
    assert lock_is_free(airflow, dag)
    assert note_of(airflow, dag, run_id).count("go/release_manager: GO by relman") == 1


def answer_gate(team: Team, run_id: str) -> dict[str, Any]:
    return team.airflow.client("relman").answer_or_raise(
        "fault-gate", run_id, "gate__go.release_manager", "GO"
    )


# -- a Celery worker ----------------------------------------------------------------------------


def test_a_celery_worker_dies_while_a_step_runs_and_the_next_try_asks(team: Team) -> None:
    airflow = team.airflow
    run_id = trigger(airflow, "fault-step")
    worker = worker_of(team, running_command(airflow, run_id, "slow"))
    killed = team.stack.kill(worker)
    died = time.monotonic()
    assert len(killed) >= 3  # the worker, its pool process, the task and the command

    asked_a_person_about_the_step(airflow, run_id, "a Celery worker died running a step", died)


def test_a_celery_worker_dies_while_an_undo_runs_and_the_next_try_asks(team: Team) -> None:
    airflow = team.airflow
    run_id = trigger(airflow, "fault-undo")
    team.stack.kill(worker_of(team, running_command(airflow, run_id, "undo_first")))
    died = time.monotonic()

    asked_a_person_about_the_undo(airflow, run_id, "a Celery worker died running an undo", died)


# -- Redis --------------------------------------------------------------------------------------


def test_redis_restarts_while_a_gate_waits_and_the_gate_is_answered_afterwards(
    team: Team,
) -> None:
    run_id = open_gate(team.airflow)
    down = team.redis.restart()
    answered = time.monotonic()
    answer_gate(team, run_id)

    assert_gate_run_succeeded(team, run_id)
    report(
        f"Redis down {down:.1f} s at a gate; the run finished after the answer in",
        time.monotonic() - answered,
    )
    assert revive(team) == [], "an Airflow component died of a Redis restart"


def test_redis_restarts_while_tasks_are_queued_and_nothing_is_lost(team: Team) -> None:
    """The workers are stopped, so the run's first task waits in Redis; the restart loses it."""
    airflow = team.airflow
    for name in WORKERS:
        team.stack.kill(f"celery-{name}")
    run_id = trigger(airflow, "fault-gate")

    def queued() -> list[str]:
        tis = airflow.admin.task_instances("fault-gate", run_id)
        return [task for task, ti in tis.items() if ti["state"] == "queued"]

    waiting = airflow.admin.wait_for("a task queued", queued, timeout=180)
    airflow.admin.wait_for("its message in Redis", lambda: team.queued_messages(), timeout=60)
    team.redis.restart()
    restarted = time.monotonic()
    assert team.queued_messages() == 0
    revive(team)  # the workers come back to an empty Redis

    airflow.admin.wait_pending("fault-gate", run_id, "gate__go.release_manager", timeout=240)
    report(f"Redis lost queued {waiting}; the run went on after", time.monotonic() - restarted)
    requeued = airflow.admin.call(
        "GET",
        "/eventLogs",
        params={"dag_id": "fault-gate", "run_id": run_id, "event": "stuck in queued reschedule"},
    )
    assert requeued["total_entries"] >= 1, "the task went on without being queued again"
    time.sleep(11)  # past gonogo's settling time
    answer_gate(team, run_id)
    assert_gate_run_succeeded(team, run_id)


# -- Postgres -----------------------------------------------------------------------------------


def test_postgres_restarts_while_a_gate_waits_and_the_gate_is_answered_afterwards(
    team: Team,
) -> None:
    run_id = open_gate(team.airflow)
    with supervised(team) as died:
        down = team.postgres.restart()
        back = time.monotonic()
        answer_gate(team, run_id)
        assert_gate_run_succeeded(team, run_id)
        took = time.monotonic() - back
    report(f"Postgres down {down:.1f} s at a gate; answered and finished after", took)
    print(f"Airflow components that died of it and were started again: {died}")


def test_postgres_restarts_right_after_an_answer_and_the_answer_stands(team: Team) -> None:
    dag, airflow = "fault-gate", team.airflow
    run_id = open_gate(team.airflow)
    given = answer_gate(team, run_id)
    assert given["chosen_options"] == ["GO"]
    with supervised(team) as died:
        down = team.postgres.restart()  # at once: the answer's 200 is all there is
        back = time.monotonic()
        run = finished(airflow, dag, run_id)
        took = time.monotonic() - back
    report(f"Postgres down {down:.1f} s right after an answer; the run ended after", took)
    print(f"Airflow components that died of it and were started again: {died}")
    stored = airflow.admin.hitl_details(dag, run_id)
    gate = next(d for d in stored if d["task_instance"]["task_id"] == "gate__go.release_manager")
    assert gate["response_received"] and gate["chosen_options"] == ["GO"], gate
    assert gate["responded_by_user"]["name"] == "relman"
    if run["state"] == "success":
        assert_gate_run_succeeded(team, run_id)
    else:  # refused: nothing after the gate ran, and the run says why
        assert started(airflow, run_id, "after") == 0
        assert outcome(airflow, dag, run_id)["outcome"] != "succeeded"
        assert lock_is_free(airflow, dag)
    print(f"\nthe run after the answer and the restart: {run['state']}")


# -- the API server -----------------------------------------------------------------------------


def test_an_answer_sent_while_the_api_server_restarts_is_recorded_once(team: Team) -> None:
    """Through the REST API, as the Required Actions form sends it: sending again is safe."""
    run_id = open_gate(team.airflow)
    given = answered_while_the_api_server_dies(team.airflow, run_id)

    assert given.get("chosen_options") == ["GO"], given
    assert_gate_run_succeeded(team, run_id)
