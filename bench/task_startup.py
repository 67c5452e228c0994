"""What a task pays to load its DAG: gonogo's loader in a parsing context, 1 vs 1000 runbooks.

    python bench/task_startup.py [--runbooks 1000] [--repeat 10] [--quick]

When a task starts, Airflow's task runner imports the DAG file with the parsing
context set (``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` and ``_TASK_ID``) and looks the
task up in the DagBag. gonogo's loader then builds only that runbook's DAG, so
the cost should not grow with the number of runbooks beside it.

Two runbooks folders: one with only runbook ``bench-00000``, one with it and
999 others (from :mod:`gen`). The same task of the same runbook is asked for in
both. Each repetition is a fresh Python process, alternating between the
folders. Before the clock starts the process has imported Airflow, the DagBag
and the plugins (as the task runner's parent has); on the clock:

- ``cold``: ``BundleDagBag(<loader file>, safe_mode=False, load_op_links=False)``,
  exactly as ``airflow.sdk.execution_time.task_runner.parse`` builds it; gonogo's
  own imports are included, as they are in every task process.
- ``warm``: the same again in that process, every module imported: the loader's
  own work (finding the runbook among the files, validating and compiling it).

Both folders are measured twice: with the generator's file names, and with each
file named after its runbook id (``<id>.yaml``, as the README advises), where a
task reads its own file only. The target applies to the cold load: 1000/1 <= 1.1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
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

TARGET = 1.1
DAG_ID = "bench-00000"


def child(dag_file: Path, task_id: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    import airflow
    import airflow.sdk  # noqa: F401
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.sdk.listener import get_listener_manager

    get_listener_manager()  # the task runner loads the plugins before it parses (startup())

    def load() -> tuple[float, object]:
        started = time.perf_counter()
        bag = BundleDagBag(
            dag_folder=str(dag_file),
            safe_mode=False,
            load_op_links=False,
            bundle_path=dag_file.parent,
        )
        return time.perf_counter() - started, bag

    cold, bag = load()
    warm, _ = load()
    dag = bag.dags.get(DAG_ID)  # type: ignore[attr-defined]
    result = {
        "cold": cold,
        "warm": warm,
        "dags": sorted(bag.dags),  # type: ignore[attr-defined]
        "has_task": bool(dag and task_id in dag.task_dict),
        "import_errors": list(bag.import_errors)[:3],
    }  # type: ignore[attr-defined]
    print("RESULT " + json.dumps(result))


def named_by_id(source: Path, target: Path) -> None:
    """A copy of a runbooks folder with each file named after its runbook id, as the README advises."""
    target.mkdir()
    for path in source.glob("*.yaml"):
        text = path.read_text()
        runbook_id = next(
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("runbook:")
        )
        (target / f"{runbook_id}.yaml").write_text(text)


def run_child(root: Path, books: Path, task_id: str) -> dict[str, object]:
    dags = root / "dags"
    env = airflow_env(
        root / "home",
        dags,
        GONOGO_RUNBOOKS_DIR=str(books),
        _AIRFLOW_PARSING_CONTEXT_DAG_ID=DAG_ID,
        _AIRFLOW_PARSING_CONTEXT_TASK_ID=task_id,
    )
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(dags / "gonogo_dags.py"), task_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"the child crashed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    result: dict[str, object] = json.loads(lines[-1].removeprefix("RESULT "))
    if result["dags"] != [DAG_ID] or not result["has_task"]:
        raise RuntimeError(
            f"the parsing context did not give exactly {DAG_ID} with {task_id}: {result}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runbooks",
        "--size",
        type=int,
        default=1000,
        dest="runbooks",
        help="runbooks in the large folder",
    )
    parser.add_argument("--steps", type=int, default=40, help="steps per runbook")
    parser.add_argument("--gates", type=int, default=2, help="gates per runbook")
    parser.add_argument("--repeat", type=int, default=10, help="fresh processes per folder")
    parser.add_argument("--quick", action="store_true", help="1000 runbooks, 4 repetitions")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return 0
    if args.quick:
        args.repeat = 4

    with tempfile.TemporaryDirectory(prefix="gonogo-bench-startup-") as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        (root / "dags").mkdir()
        (root / "dags" / "gonogo_dags.py").write_text(LOADER.read_text())
        one, many = root / "one", root / "many"
        write_runbooks(one, 1, args.steps, args.gates)
        write_runbooks(many, args.runbooks, args.steps, args.gates)
        one_named, many_named = root / "one-named", root / "many-named"
        for source, target in ((one, one_named), (many, many_named)):
            named_by_id(source, target)
        size = sum(p.stat().st_size for p in many.iterdir())
        task_id = _first_step(one)
        print(
            f"task {DAG_ID}.{task_id}; folders of 1 and {args.runbooks} runbooks "
            f"({size / 1e6:.1f} MB)"
        )
        times: dict[str, dict[str, list[float]]] = {
            key: {"cold": [], "warm": []} for key in ("1", "N", "1n", "Nn")
        }
        folders = [("1", one), ("N", many), ("1n", one_named), ("Nn", many_named)]
        for rep in range(args.repeat):
            order = folders if rep % 2 == 0 else folders[::-1]
            for key, books in order:
                result = run_child(root, books, task_id)
                times[key]["cold"].append(float(result["cold"]))  # type: ignore[arg-type]
                times[key]["warm"].append(float(result["warm"]))  # type: ignore[arg-type]
            print(
                f"repetition {rep + 1}/{args.repeat}: cold 1: {times['1']['cold'][-1]:.3f}s, "
                f"{args.runbooks}: {times['N']['cold'][-1]:.3f}s"
            )

    stats = {k: {m: summary(v) for m, v in d.items()} for k, d in times.items()}
    rows = []
    for measure, label in (("cold", "load (cold)"), ("warm", "load (warm)")):
        rows.append(Row(f"{label}: 1 runbook present", stats["1"][measure]))
        rows.append(
            Row(
                f"{label}: {args.runbooks} runbooks present",
                stats["N"][measure],
                ratio=ratio(stats["N"][measure]["median"], stats["1"][measure]["median"]),
                ratio_label=f"{args.runbooks}/1",
                target=TARGET if measure == "cold" else None,
            )
        )
    rows.append(Row("load (cold), files named <id>.yaml: 1 runbook present", stats["1n"]["cold"]))
    rows.append(
        Row(
            f"load (cold), files named <id>.yaml: {args.runbooks} runbooks present",
            stats["Nn"]["cold"],
            ratio=ratio(stats["Nn"]["cold"]["median"], stats["1n"]["cold"]["median"]),
            ratio_label=f"{args.runbooks}/1",
            target=TARGET,
        )
    )
    rows.append(Row("load (warm), files named <id>.yaml: 1 runbook present", stats["1n"]["warm"]))
    rows.append(
        Row(
            f"load (warm), files named <id>.yaml: {args.runbooks} runbooks present",
            stats["Nn"]["warm"],
            ratio=ratio(stats["Nn"]["warm"]["median"], stats["1n"]["warm"]["median"]),
            ratio_label=f"{args.runbooks}/1",
        )
    )
    extra_ms = (stats["N"]["warm"]["median"] - stats["1"]["warm"]["median"]) * 1000
    print_table(
        f"task-startup: one task's DAG load with 1 vs {args.runbooks} runbooks, "
        f"{args.repeat} fresh processes each",
        rows,
    )
    print(
        f"the {args.runbooks - 1} other runbooks add {extra_ms:.0f} ms to every task's start "
        f"({extra_ms / max(args.runbooks - 1, 1):.3f} ms per runbook file)"
    )
    write_result(
        "task_startup",
        {
            "runbooks": args.runbooks,
            "steps": args.steps,
            "gates": args.gates,
            "repeat": args.repeat,
            "dag_id": DAG_ID,
            "task_id": task_id,
        },
        rows,
        extra_ms_for_other_runbooks=round(extra_ms, 1),
    )
    return 0


def _first_step(folder: Path) -> str:
    from gonogo.core.runbook.loader import load_file
    from gonogo.core.runbook.model import Phase

    runbook, _ = load_file(next(folder.iterdir()))
    phase = next(p for p in runbook.phases if isinstance(p, Phase))
    return f"{phase.id}.{phase.steps[0].id}"


if __name__ == "__main__":
    sys.exit(main())
