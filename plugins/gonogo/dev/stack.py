"""Start a real Airflow (API server, scheduler, DAG processor, triggerer) for the demo and tests.

Every process runs in one process group, in its own AIRFLOW_HOME, and
:meth:`AirflowStack.stop` kills the whole group: ``airflow standalone`` leaves
orphans when only its parent is killed, and so would we.

The database is SQLite in AIRFLOW_HOME unless a SQLAlchemy URL is given; with
Postgres a fresh database is created beside the one named and dropped at stop,
so runs never see each other's state.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from gonogo.core.settings import LOCK_POOL, POLICY_ENV

PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The stack's change policy unless GONOGO_POLICY is set: the defaults, except that a
#: normal change in the ``test`` environment needs no plan approval, as many
#: installations set it. The test runbooks are normal changes in test; the plan
#: approval tests use prod.
TEST_POLICY = "environments: {test: {normal: {approval: none}}}"
AUTH_MANAGERS = {
    "simple": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "fab": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class User:
    name: str
    role: str  # viewer, user, op or admin (under FAB: the roles Viewer, User, Op, Admin)
    password: str


@dataclass
class AirflowStack:
    """One Airflow installation on this machine."""

    home: Path
    dags_folder: Path
    runbooks_dir: Path
    users: list[User]
    port: int = 0
    database_url: str | None = None
    executor: str = "LocalExecutor"
    #: "simple" (SimpleAuthManager, users from the settings) or "fab" (FAB auth manager,
    #: users created in the database at start; their ids are numbers, see :meth:`user_ids`).
    auth_manager: str = "simple"
    extra_env: dict[str, str] = field(default_factory=dict)
    #: The change policy (gonogo.core.change.policy) unless GONOGO_POLICY is set; None: the defaults.
    policy: str | None = TEST_POLICY
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pgid: int | None = None
    _created_db: str | None = None
    _fab_ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        self.port = self.port or free_port()
        # Workers and the triggerer serve their logs on ports of their own; two stacks
        # on one machine (tests beside a benchmark) must not collide there either.
        self.log_ports = (free_port(), free_port())
        # One secret for the stack's life: a component started again must trust the others' tokens.
        self.jwt_secret = secrets.token_hex(16)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- configuration -------------------------------------------------------------------------

    def _database(self) -> str:
        if not self.database_url:
            # Wait up to 30 s for SQLite's write lock instead of failing after 5 s.
            return f"sqlite:///{self.home / 'airflow.db'}?timeout=30"
        if self.database_url.startswith("sqlite"):
            return self.database_url
        if self._created_db is None:
            self._created_db = f"gonogo_{os.getpid()}_{secrets.token_hex(3)}"
            _postgres_admin(self.database_url, f'CREATE DATABASE "{self._created_db}"')
        base, _, _ = self.database_url.rpartition("/")
        return f"{base}/{self._created_db}"

    def env(self) -> dict[str, str]:
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({u.name: u.password for u in self.users}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        # The team image installs gonogo with pip, which compiles its modules once. Here the
        # first process writes them, instead of every task compiling gonogo's sources anew
        # (45 ms of each task's start) when the shell says not to write bytecode.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGERS[self.auth_manager],
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{u.name}:{u.role}" for u in self.users
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._database(),
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME": "86400",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
                # The supervisor notices a finished task within this many seconds; the
                # default 5 s widens a race in Airflow 3.3 (see gonogo.server.middleware).
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                # A worker keeps trying the API server for a minute or more, not ~15 s: a
                # task resumed while the API server restarts starts once it is back.
                "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
                "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
                "GONOGO_RUNBOOKS_DIR": str(self.runbooks_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.policy is not None:
            env.setdefault(POLICY_ENV, self.policy)
        if self.executor == "CeleryExecutor":
            # Results in the metadata database, like the team deployment.
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + env[
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
            ].replace("+psycopg2", "")
        env.update(self.extra_env)
        return env

    def airflow(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command against this installation and wait for it."""
        return subprocess.run(
            [_airflow_bin(), *args],
            env=self.env(),
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, processes: tuple[str, ...] = PROCESSES, timeout: float = 240) -> None:
        env = self.env()
        migrate = subprocess.run(
            [_airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
        )
        if migrate.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"
            )
        self.airflow("pools", "set", LOCK_POOL, "1", "gonogo: one rollout lock claim at a time")
        if self.auth_manager == "fab":
            self._create_fab_users()
        try:
            for name in processes:
                self.spawn(name, [_airflow_bin(), *name.split()], env)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _create_fab_users(self) -> None:
        """``airflow users create`` for each user, then ``users list``, in one interpreter."""
        # FAB has no user without a role.
        commands = [_fab_user_create(user) for user in self.users if user.role]
        self._fab_ids = _fab_ids(self._cli_batch([*commands, ["users", "list", "-o", "json"]]))

    def _cli_batch(self, commands: list[list[str]]) -> str:
        """Run several ``airflow`` CLI commands in one process (each start costs seconds)."""
        done = subprocess.run(
            [sys.executable, "-c", _CLI_BATCH],
            input=json.dumps(commands),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {commands[0][:2]} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def user_ids(self) -> dict[str, str]:
        """Each user's Airflow user id by name: the name itself, or FAB's database id."""
        if self.auth_manager != "fab":
            return {u.name: u.name for u in self.users}
        if not self._fab_ids:
            self._fab_ids = _fab_ids(self.airflow("users", "list", "-o", "json").stdout)
        return dict(self._fab_ids)

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start one more process in the stack's process group."""
        log = open(self.home / "logs" / f"{name.replace(' ', '_')}.out", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            argv,
            env=env or self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=self.pgid or 0,
        )
        log.close()
        if self.pgid is None:
            self.pgid = process.pid
        self.processes[name] = process
        return process

    def start_celery_worker(self, name: str, queue: str) -> subprocess.Popen[bytes]:
        """One more Celery worker, named ``name`` in task instances' hostname, on ``queue``."""
        env = self.env()
        env["GONOGO_WORKER_NAME"] = name
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "gonogo.dev.stack.worker_hostname"
        return self.spawn(
            f"celery-{name}",
            [
                _airflow_bin(),
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--queues",
                queue,
                "--concurrency",
                "4",
                "--without-mingle",
                "--without-gossip",
            ],
            env,
        )

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        wanted = {"scheduler", "dag_processor", "triggerer"} & {
            p.replace("-", "_") for p in self.processes
        }
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"airflow {name} exited with {process.returncode}:\n{self.log_tail(name)}"
                    )
            try:
                health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
                last = health
                if all((health.get(k) or {}).get("status") == "healthy" for k in wanted):
                    return
            except (requests.RequestException, ValueError) as exc:
                last = exc
            time.sleep(1)
        raise RuntimeError(f"Airflow did not become healthy in {timeout}s: {last}")

    def kill(self, name: str) -> list[int]:
        """SIGKILL one component and every process it started, as a crash of its machine would.

        Under LocalExecutor the scheduler's children are the workers running the
        tasks (each task in a process group of its own), so they die with it. The
        processes killed are returned.
        """
        process = self.processes[name]
        killed = kill_tree(process.pid)
        process.wait(timeout=30)
        return killed

    def restart(self, name: str, timeout: float = 180) -> None:
        """Start a killed component again, with the same settings, and wait until it is healthy."""
        self.spawn(name, [_airflow_bin(), *name.split()])
        self.wait_healthy(timeout)

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.home / "logs" / f"{name.replace(' ', '_')}.out"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, grace: float = 15) -> None:
        """Kill the whole process group: every process started here, and their children.

        Airflow starts each task in a process group of its own, so the processes
        below the stack's are collected first and killed too if they outlive the group.
        """
        if self.pgid is not None:
            below = {
                pid
                for process in self.processes.values()
                if process.poll() is None
                for pid in descendants(process.pid)
            }
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and group_members(self.pgid):
                for process in self.processes.values():
                    with contextlib.suppress(Exception):
                        process.poll()
                time.sleep(0.3)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            for pid in below & set(_parents()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for process in self.processes.values():
                with contextlib.suppress(Exception):
                    process.wait(timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and group_members(self.pgid):
                time.sleep(0.2)
        if self._created_db and self.database_url:
            with contextlib.suppress(Exception):
                _postgres_admin(
                    self.database_url, f'DROP DATABASE IF EXISTS "{self._created_db}" WITH (FORCE)'
                )
            self._created_db = None


@contextlib.contextmanager
def running(stack: AirflowStack) -> Iterator[AirflowStack]:
    """The stack started, then stopped with none of its processes left.

    If starting it, or the setup inside the block, fails, every component's log
    tail is printed first: a stack that does not come up says why.
    """
    try:
        stack.start()
        yield stack
    except BaseException:
        for name in stack.processes:
            print(f"--- {name} ---\n{stack.log_tail(name)}", file=sys.stderr)
        raise
    finally:
        pgid = stack.pgid
        with _interrupts_held():
            stack.stop()
        if pgid is not None and group_members(pgid):
            raise RuntimeError(f"processes of group {pgid} survived the stop")


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C ignored for a while: a second one must not cut a stop short and leave processes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_hostname() -> str:
    """``[core] hostname_callable`` for several workers on one machine: each reports its own name."""
    return os.environ.get("GONOGO_WORKER_NAME") or socket.getfqdn()


def celery_env(broker_url: str, queue: str) -> dict[str, str]:
    """Settings for CeleryExecutor: Redis as the broker, the metadata database as result backend."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
    }


def _parents() -> dict[int, int]:
    """Each live process's parent, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[int(entry.name)] = int(fields[1])
    return found


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, whatever process group or session they moved to."""
    parents = _parents()
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def ancestors(pid: int) -> list[int]:
    """The chain of parents above ``pid``, nearest first."""
    parents, chain = _parents(), []
    while (pid := parents.get(pid, 0)) > 1:
        chain.append(pid)
    return chain


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and its descendants at once: none of them gets to clean up."""
    tree = descendants(pid)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return tree


def group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) in process group ``pgid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            found.append(int(entry.name))
    return found


_CLI_BATCH = """
import json, sys
from airflow.cli import cli_parser
parser = cli_parser.get_parser()
for argv in json.loads(sys.stdin.read()):
    args = parser.parse_args(argv)
    args.func(args)
"""


def _fab_user_create(user: User) -> list[str]:
    return [
        "users", "create", "--username", user.name, "--password", user.password,
        "--role", user.role.capitalize(), "--firstname", user.name,
        "--lastname", "test", "--email", f"{user.name}@example.org",
    ]  # fmt: skip


def _fab_ids(listing: str) -> dict[str, str]:
    """User ids by name from ``airflow users list -o json`` (warnings may precede the table)."""
    table = next(line for line in reversed(listing.splitlines()) if line.startswith("["))
    return {str(row["username"]): str(row["id"]) for row in json.loads(table)}


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def _postgres_admin(url: str, statement: str) -> None:
    """Run one statement with autocommit on the server named by a SQLAlchemy URL."""
    import psycopg2

    dsn = url.split("://", 1)[1]
    userinfo, _, hostpart = dsn.rpartition("@")
    user, _, password = userinfo.partition(":")
    hostport, _, _db = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    conn = psycopg2.connect(
        host=host or "127.0.0.1",
        port=int(port or 5432),
        user=user or "postgres",
        password=password or None,
        dbname="postgres",
    )
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()
