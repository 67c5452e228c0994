"""How soon a new runbook can be run, against a new hand-written DAG file, in a real Airflow.

    python bench/appear.py [--runbooks 1000,10000] [--samples 3] [--quick]

One real Airflow (as the other live benchmarks, with the test stack's DAG
processor settings: ``refresh_interval`` 10 s, ``min_file_process_interval`` 10 s,
one parsing process) holds N generated runbooks over ``gonogo shards`` loader files,
25 a file (``--per-file``), as the README advises where runbooks must appear fast.
Once every DAG is listed, the clock runs from writing a file to ``GET
/api/v2/dags/{id}`` answering 200 (the DAG can be triggered), alternately for:

- **a new runbook**: a new file in the runbooks folder, one more ``gen.py`` runbook;
- **a new hand-written DAG file (anchor)**: the same DAG as a ``.py`` file in the DAGs
  folder, written by ``parse.py``'s generator (the same tasks, groups and arguments
  on Airflow's plain operators).

Target: a new runbook appears no later than a new hand-written DAG file
(runbook/py <= 1.0 on the median), at each size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BENCH_POLICY,
    Row,
    live_airflow,
    print_table,
    ratio,
    summary,
    write_result,
    write_runbooks,
)

TARGET = 1.0
#: Runbooks per loader file: a changed runbook costs its loader file's parse, serializing
#: included, so fewer a file is sooner (README, "A new or edited runbook is parsed next").
PER_LOADER = 25


def hand_written(text: str, folder: Path) -> str:
    """The DAG ``text`` compiles to, as a hand-written Python file (``parse.py``'s generator)."""
    from gonogo import load_text
    from gonogo.dag.builder import build_dag
    from parse import describe, python_source

    return python_source(describe(build_dag(load_text(text)[0], folder)))


def wait_listed(live: object, count: int, timeout: float) -> float:
    """Seconds until Airflow lists ``count`` DAGs."""
    admin = live.client("admin")  # type: ignore[attr-defined]
    started = time.monotonic()

    def listed() -> bool:
        found = admin.request("GET", "/dags", params={"limit": 1}).json()
        return int(found.get("total_entries", 0)) >= count

    admin.wait_for(f"{count} DAGs to be listed", listed, timeout=timeout, interval=5)
    return time.monotonic() - started


def appear(live: object, dag_id: str, path: Path, content: str, timeout: float = 1800) -> float:
    """Seconds from writing ``content`` to ``path`` to the DAG answering on the REST API."""
    admin = live.client("admin")  # type: ignore[attr-defined]
    started = time.monotonic()
    path.write_text(content)
    admin.wait_for(
        f"{dag_id} to appear",
        lambda: admin.request("GET", f"/dags/{dag_id}").status_code == 200,
        timeout=timeout,
        interval=0.25,
    )
    return time.monotonic() - started


def measure(count: int, samples: int, per_file: int = PER_LOADER) -> dict[str, list[float]]:
    from gen import generate_runbook
    from gonogo.client.cli import main as gonogo

    shards = max(1, -(-count // per_file))

    def fill(dags: Path, books: Path) -> None:
        write_runbooks(books, count)
        if shards > 1 and gonogo(["shards", str(shards), str(dags)]) != 0:
            raise RuntimeError("gonogo shards failed")

    found: dict[str, list[float]] = {"runbook": [], "py": []}
    with live_airflow({}, {}, prepare=fill) as live:
        books, dags = live.stack.runbooks_dir, live.stack.dags_folder
        took = wait_listed(live, count, timeout=600 + count * 0.2)
        print(f"{count} runbooks over {shards} loader files listed after {took:.0f} s", flush=True)
        for i in range(samples):
            index = count + 2 * i
            text = generate_runbook(index)
            source = hand_written(generate_runbook(index + 1), books)
            py_id = f"bench-{index + 1:05d}"
            runbook_file, py_file = books / f"new-{i}.yaml", dags / f"hand_{i}.py"
            cases = [
                ("runbook", f"bench-{index:05d}", runbook_file, text),
                ("py", py_id, py_file, source),
            ]
            for name, dag_id, path, content in cases if i % 2 == 0 else cases[::-1]:
                found[name].append(appear(live, dag_id, path, content))
                print(
                    f"{count}: {name} {dag_id} appeared after {found[name][-1]:.1f} s", flush=True
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runbooks", default="1000,10000", help="comma-separated sizes")
    parser.add_argument("--samples", type=int, default=3, help="new files of each kind per size")
    parser.add_argument("--per-file", type=int, default=PER_LOADER, help="runbooks a loader file")
    parser.add_argument("--quick", action="store_true", help="200 runbooks, 2 samples")
    args = parser.parse_args(argv)
    sizes = [200] if args.quick else [int(n) for n in args.runbooks.split(",")]
    samples = 2 if args.quick else args.samples
    os.environ["GONOGO_POLICY"] = BENCH_POLICY  # rollout DAGs only, as the hand-written file

    rows = []
    raw = {}
    for count in sizes:
        found = raw[count] = measure(count, samples, args.per_file)
        runbook, py = summary(found["runbook"]), summary(found["py"])
        rows += [
            Row(
                f"{count} runbooks, {args.per_file} a loader file: a new runbook appears",
                runbook,
                ratio=ratio(runbook["median"], py["median"]),
                ratio_label="runbook/py",
                target=TARGET,
            ),
            Row(f"{count} runbooks: a new hand-written DAG file appears", py),
        ]
    print_table("appear: writing a file -> its DAG answers on the REST API", rows)
    write_result("appear", {"sizes": sizes, "samples": samples}, rows, seconds=raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
