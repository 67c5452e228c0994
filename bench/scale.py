"""Thousands of runbooks under Airflow's default 30 s per DAG file: gonogo's loader shards.

    python bench/scale.py [--runbooks 20000] [--shards 100] [--quick]

N generated runbooks (``gen.py``, 40 steps and 2 gates each, as in ``parse.py``)
and K copies of the loader file (``gonogo shards K``). Each loader file is parsed
by Airflow's ``DagBag`` in a fresh process, with Airflow's default
``dagbag_import_timeout`` (30 s), as the DAG processor parses one file.

What is reported:

- every runbook loads exactly once over the K files, with no import error;
- the slowest loader file against the 30 s budget (target: at most half of it,
  room for a busy machine);
- both for the first pass (an empty parse cache: every runbook read, as after a
  deployment) and a steady pass (the runbooks unchanged, as at every later pass),
  with the DAG processor's whole pass: every loader file in turn;
- the baseline, measured in the same run: one loader file that holds a single
  runbook, which is what Airflow itself costs per file. The slowest shard over
  it is how much longer a new runbook takes to appear than Airflow's own cost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    LOADER,
    Row,
    airflow_env,
    print_table,
    ratio,
    summary,
    write_result,
    write_runbooks,
)

TIMEOUT = 30.0  # Airflow's default [core] dagbag_import_timeout
TARGET = 0.5  # the slowest file may use half of it


def child(loader: Path) -> None:
    import logging

    logging.disable(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    started, cpu = time.perf_counter(), time.process_time()
    bag = DagBag(str(loader))
    took, used = time.perf_counter() - started, time.process_time() - cpu
    found = {"seconds": took, "cpu": used, "dags": sorted(bag.dag_ids)}
    print("RESULT " + json.dumps(found | {"errors": len(bag.import_errors)}))


def parse(loader: Path, runbooks: Path, home: Path) -> dict[str, object]:
    env = airflow_env(home, loader.parent, GONOGO_RUNBOOKS_DIR=str(runbooks))
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(loader)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{loader.name} crashed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))  # type: ignore[no-any-return]


#: The first pass reads every runbook (an empty parse cache, as after a deployment); the
#: second is every later pass of the DAG processor, with the runbooks unchanged.
PASSES = ("first pass", "steady pass")


@dataclass
class Pass:
    """One pass of the DAG processor over every loader file: wall and CPU seconds per file."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    #: Runbooks a loader file did not reach within three quarters of the 30 s (a busy machine).
    not_reached: int = 0


def run_pass(dags: Path, runbooks: Path, home: Path, count: int) -> Pass:
    """Each loader file parsed once, in a fresh process; each runbook loads at most once.

    A loader file that runs out of time stops building and reports the runbooks it
    did not reach as import errors (README, "A loader file that holds too many"):
    they are counted, and the pass is judged missed, rather than the run stopped.
    """
    found_pass = Pass()
    loaded: list[str] = []
    for loader in sorted(dags.glob("*.py")):
        found = parse(loader, runbooks, home)
        found_pass.wall.append(float(found["seconds"]))  # type: ignore[arg-type]
        found_pass.cpu.append(float(found["cpu"]))  # type: ignore[arg-type]
        found_pass.not_reached += int(found["errors"])  # type: ignore[call-overload]
        loaded += found["dags"]  # type: ignore[arg-type]
        missed = f", {found['errors']} not reached" if found["errors"] else ""
        print(
            f"{loader.name}: {len(found['dags'])} runbooks in {found['seconds']:.1f} s "
            f"({found['cpu']:.1f} s CPU){missed}",
            flush=True,
        )
    if sorted(loaded) != sorted(set(loaded)) or len(loaded) + found_pass.not_reached != count:
        raise RuntimeError(f"{len(loaded)} DAGs loaded ({len(set(loaded))} distinct) of {count}")
    return found_pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runbooks", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="400 runbooks over 4 loader files")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    if args.quick:
        args.runbooks, args.shards = 400, 4

    from gonogo.client.cli import main as gonogo

    with tempfile.TemporaryDirectory(prefix="gonogo-scale-") as tmp:
        root = Path(tmp)
        runbooks, single_runbook = root / "runbooks", root / "one-runbook"
        write_runbooks(runbooks, args.runbooks)
        write_runbooks(single_runbook, 1)
        dags, single = root / "dags", root / "single"
        for folder in (dags, single):
            folder.mkdir()
            (folder / "gonogo_dags.py").write_text(LOADER.read_text())
        if gonogo(["shards", str(args.shards), str(dags)]) != 0:
            raise RuntimeError("gonogo shards failed")
        home = root / "home"
        home.mkdir()
        baseline = [
            float(parse(single / "gonogo_dags.py", single_runbook, home)["seconds"])
            for _ in range(3)
        ]
        passes = {name: run_pass(dags, runbooks, home, args.runbooks) for name in PASSES}
    one = summary(baseline)
    rows = []
    for name, found in passes.items():
        worst, worst_cpu = max(found.wall), max(found.cpu)
        rows += [
            Row(
                f"{name}: slowest of {args.shards} loader files",
                summary([worst]),
                ratio=worst / TIMEOUT,
                ratio_label="/ 30 s",
                target=TARGET,
            ),
            Row(
                f"{name}: slowest file's CPU time (its cost on a quiet machine)",
                summary([worst_cpu]),
                ratio=worst_cpu / TIMEOUT,
                ratio_label="/ 30 s",
                target=TARGET,
            ),
            Row(
                f"{name}: median loader file ({args.runbooks // args.shards} runbooks)",
                summary(found.wall),
            ),
            Row(
                f"{name}: the DAG processor's whole pass, every file in turn",
                summary([sum(found.wall)]),
            ),
        ]
        if found.not_reached:
            print(
                f"{name}: {found.not_reached} runbooks not reached within the time per file: "
                "MISSED (the machine was too busy, or the files hold too many)"
            )
    rows += [
        Row(
            "new runbook appears: its file's steady parse vs one runbook's",
            summary([max(passes[PASSES[1]].wall)]),
            ratio=ratio(max(passes[PASSES[1]].wall), one["median"]),
            ratio_label="vs 1 rb",
        ),
        Row("baseline: a loader file with one runbook", one),
    ]
    print_table(
        f"scale: {args.runbooks} runbooks over {args.shards} loader files, default 30 s per file",
        rows,
    )
    write_result(
        "scale",
        {"runbooks": args.runbooks, "shards": args.shards},
        rows,
        shard_seconds={name: found.wall for name, found in passes.items()},
        shard_cpu_seconds={name: found.cpu for name, found in passes.items()},
        not_reached={name: found.not_reached for name, found in passes.items()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
