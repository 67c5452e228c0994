"""What every benchmark shares: statistics, the table, the JSON file and a live Airflow.

Each benchmark prints one table with the same columns (median, 95th percentile,
ratio against its anchor, target, verdict) and writes ``bench/results/<name>.json``.
A missed target is printed as ``MISSED`` and recorded in the JSON; it never
changes the exit code, which is non-zero only when a benchmark could not run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonogo.core.runbook.parsed import CACHE_ENV as PARSE_CACHE_ENV
from gonogo.core.settings import POLICY_ENV

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
LOADER = ROOT / "dags" / "gonogo_dags.py"


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: with 20 samples, p95 is the 19th smallest. No interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, Any]:
    values = list(values)
    if not values:
        return {"n": 0, "median": math.nan, "p95": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "min": min(values),
        "max": max(values),
        "samples": [round(v, 4) for v in values],
    }


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


# -- the table -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a table: a measured quantity, optionally compared with an anchor."""

    label: str
    stats: dict[str, Any]
    unit: str = "s"
    ratio: float | None = None  # this row's median / the anchor's median
    ratio_label: str = ""  # what the ratio compares, e.g. "a/b"
    target: float | None = None  # the ratio must be <= target
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return ""
        if math.isnan(self.ratio):
            return "n/a"
        return "met" if self.ratio <= self.target else "MISSED"

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            **{k: _round(v) for k, v in self.stats.items()},
            "ratio": _round(self.ratio),
            "ratio_label": self.ratio_label,
            "target": self.target,
            "verdict": self.verdict or None,
            "note": self.note or None,
        }


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def _fmt(value: float, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        return f"{value:.3f}" if value < 100 else f"{value:.1f}"
    return f"{value:.1f}"


def print_table(title: str, rows: Sequence[Row]) -> None:
    print()
    print(title)
    width = max(44, *(len(r.label) for r in rows))
    header = (
        f"{'what':<{width}} {'n':>3} {'median':>8} {'p95':>8} {'ratio':>12} {'target':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio_text = (
            ""
            if row.ratio is None
            else ("-" if math.isnan(row.ratio) else f"{row.ratio_label} {row.ratio:.2f}".strip())
        )
        target = "" if row.target is None else f"<={row.target:g}"
        median, p95 = (_fmt(row.stats.get(k), row.unit) for k in ("median", "p95"))
        print(
            f"{row.label:<{width}} {row.stats.get('n', 0):>3} {median:>8} {p95:>8} "
            f"{ratio_text:>12} {target:>7}  {row.verdict}"
        )
        if row.note:
            print(f"{'':<{width}}     ({row.note})")
    print(f"(times in {rows[0].unit if rows else 's'}; ratios are medians over medians)")
    missed = [r for r in rows if r.verdict == "MISSED"]
    for row in missed:
        print(f"MISSED: {row.label}: {row.ratio_label} {row.ratio:.2f} > target {row.target:g}")


# -- the JSON file -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures depend on. The load average shows whether something else was running."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["airflow"] = version("apache-airflow")
        info["providers_standard"] = version("apache-airflow-providers-standard")
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["dag_factory"] = version("dag-factory")
    info.update(_git())
    return info


def _git() -> dict[str, Any]:
    """The commit measured, and whether gonogo's code differed from it (uncommitted edits)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return {}
    changed = git("status", "--porcelain", "--", "plugins", "dags").splitlines()
    return {"commit": commit, "uncommitted_gonogo_files": len(changed)}


def write_result(name: str, settings: dict[str, Any], rows: Sequence[Row], **extra: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    report = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "machine": machine(),
        "rows": [r.as_json() for r in rows],
        "targets_missed": [r.label for r in rows if r.verdict == "MISSED"],
        **extra,
    }
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


# -- generated runbooks --------------------------------------------------------------------------


def write_runbooks(
    folder: Path, count: int, steps: int = 40, gates: int = 2, start: int = 0
) -> list[Path]:
    from gen import generate_runbook

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        path = folder / f"runbook-{index:05d}.yaml"
        path.write_text(generate_runbook(index, steps=steps, gates=gates))
        paths.append(path)
    return paths


#: The change policy of the parse and start-up benchmarks: no plan approval, so each
#: runbook builds its rollout DAG only, the one its hand-written equivalent is
#: compared with. (A normal runbook's plan-approval DAG is extra, and small.)
BENCH_POLICY = "{normal: {approval: none}, emergency: {approval: none}}"


def airflow_env(home: Path, dags_folder: Path, **extra: str) -> dict[str, str]:
    """An environment for a child process that imports Airflow without touching a real install."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "_AIRFLOW_PARSING")) and k != PARSE_CACHE_ENV
    }  # the parse cache is the one in the AIRFLOW_HOME below, unless a benchmark names one
    env.setdefault(POLICY_ENV, BENCH_POLICY)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p),
        }
    )
    env.update(extra)
    return env


# -- a live Airflow ------------------------------------------------------------------------------


@dataclass
class Live:
    """A running Airflow started for one benchmark, and the users that drive it."""

    stack: Any
    passwords: dict[str, str] = field(default_factory=dict)

    def client(self, name: str) -> Any:
        from gonogo.client.api import AirflowClient

        return AirflowClient(self.stack.base_url, name, self.passwords[name])

    def wait_dags(self, *dag_ids: str, timeout: float = 240) -> None:
        admin = self.client("admin")

        def loaded() -> bool:
            return set(dag_ids) <= {d["dag_id"] for d in admin.listed("/dags", "dags")}

        try:
            admin.wait_for(f"DAGs {dag_ids} to load", loaded, timeout=timeout, interval=1)
        except TimeoutError:
            errors = admin.import_errors()
            raise RuntimeError(f"DAGs {dag_ids} did not load; import errors: {errors}") from None


USERS = [  # the runbook roles in gen.py name relman, svcowner, svcowner2, dba and operator
    ("admin", "admin"),
    ("operator", "user"),
    ("relman", "user"),
    ("svcowner", "user"),
    ("svcowner2", "user"),
    ("dba", "user"),
]


@contextlib.contextmanager
def live_airflow(
    dag_files: dict[str, str],
    runbooks: dict[str, str],
    prepare: Callable[[Path, Path], None] | None = None,
) -> Iterator[Live]:
    """Start Airflow with gonogo's loader, ``dag_files`` and ``runbooks``; always stop it.

    ``prepare(dags, runbooks)``, if given, fills the two folders further before Airflow starts.

    SQLite in a temporary AIRFLOW_HOME, or Postgres when GONOGO_TEST_DATABASE_URL is
    set, as in the integration tests. Every process runs in one process group, and
    the group is killed on the way out, whatever happened.
    """
    from gonogo.dev.stack import AirflowStack, User, running

    with tempfile.TemporaryDirectory(prefix="gonogo-bench-live-") as tmp:
        root = Path(tmp)
        dags, books, state = root / "dags", root / "runbooks", root / "state"
        for folder in (dags, books, state):
            folder.mkdir()
        (dags / "gonogo_dags.py").write_text(LOADER.read_text())
        for name, source in dag_files.items():
            (dags / name).write_text(source)
        for name, text in runbooks.items():
            (books / name).write_text(text)
        if prepare is not None:
            prepare(dags, books)
        users = [User(name, role, f"{name}-bench-pw") for name, role in USERS]
        stack = AirflowStack(
            home=root / "home",
            dags_folder=dags,
            runbooks_dir=books,
            users=users,
            database_url=os.environ.get("GONOGO_TEST_DATABASE_URL") or None,
            # dag-factory, when installed for bench/parse.py, registers a listener that may
            # phone home at the end of a run: not here.
            extra_env={
                "GONOGO_STATE_DIR": str(state),
                "DO_NOT_TRACK": "1",
                "SCARF_NO_ANALYTICS": "1",
            },
        )
        started = time.monotonic()
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `finally` stops Airflow
        try:
            with running(stack):
                print(
                    f"Airflow is up in {time.monotonic() - started:.0f} s at {stack.base_url} "
                    f"({'Postgres' if stack.database_url else 'SQLite'})"
                )
                yield Live(stack, {u.name: u.password for u in users})
        finally:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def parse_time(value: str | None) -> float | None:
    """An Airflow timestamp from the REST API as seconds since the epoch."""
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
