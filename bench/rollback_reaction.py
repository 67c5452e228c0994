"""How fast rollback reacts to a failed step, against Airflow's own hop from one task to the next.

    python bench/rollback_reaction.py [--runs 10] [--steps 6] [--fail-at 3] [--quick]

One real Airflow (as in gate_latency: LocalExecutor, SQLite or Postgres when
GONOGO_TEST_DATABASE_URL is set) runs two DAGs, one run at a time, alternating:

- ``bench-rollback``: a gonogo runbook with one phase of ``--steps`` bash steps
  (``true``), each with a rollback (``true``); the step at ``--fail-at`` runs
  ``exit 1``.
- ``bench_plain_rollback``: the same chain of BashOperators by hand, the same
  step failing, and one BashOperator with ``trigger_rule="one_failed"``
  downstream of every step: what a person writes to react to a failure.

What is timed:

- ``rollback reaction``: the failed step's ``end_date`` to the ``start_date`` of
  the first compensation that ran (the first task in the ``rollback`` group,
  other than ``rollback.start``, that ended ``success``). This includes every
  task gonogo puts between the failure and the first undo.
- the plain DAG's ``one_failed`` reaction: the same failure to its one_failed
  task's start, a hand-built compensation. The target compares with this:
  gonogo's reaction / plain's reaction <= 1.0, on the median of at least 5 runs
  each. The quick pass's 2 runs are too few to judge: it prints no verdict.
- ``next task after a success``: each successful step's ``end_date`` to the next
  step's ``start_date``, Airflow's own scheduling hop, in both DAGs, for scale.

All timestamps are the server's (``start_date``/``end_date`` from the REST API).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    Live,
    Row,
    live_airflow,
    parse_time,
    print_table,
    ratio,
    summary,
    write_result,
)

TARGET = 1.0
MIN_RUNS = 5  # fewer runs than this are too few to judge the target
GONOGO_DAG = "bench-rollback"
PLAIN_DAG = "bench_plain_rollback"


def rollback_runbook(steps: int, fail_at: int) -> str:
    lines = [
        f"runbook: {GONOGO_DAG}",
        "title: A step fails and rollback starts",
        "service: bench-rollback",
        "environment: test",
        "change: {id: CHG-BENCH-RB, type: standard}",
        "phases:",
        "  - id: work",
        "    steps:",
    ]
    for i in range(steps):
        command = "exit 1" if i == fail_at else "true"
        lines += [
            f"      - id: s{i}",
            f'        bash: "{command}"',
            '        rollback: {bash: "true"}',
        ]
    return "\n".join(lines) + "\n"


def plain_dag(steps: int, fail_at: int) -> str:
    return f'''"""bench/rollback_reaction.py's anchor: an airflow DAG reacting with one_failed."""

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id={PLAIN_DAG!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         max_active_runs=1, default_args={{"retries": 0}}):
    chain = [BashOperator(task_id=f"s{{i}}", bash_command="exit 1" if i == {fail_at} else "true")
             for i in range({steps})]
    for up, down in zip(chain, chain[1:]):
        up >> down
    chain >> BashOperator(task_id="on_failure", bash_command="true", trigger_rule="one_failed")
'''


def _end(ti: dict[str, Any]) -> float:
    value = parse_time(ti.get("end_date"))
    assert value is not None, ti
    return value


def _start(ti: dict[str, Any]) -> float:
    value = parse_time(ti.get("start_date"))
    assert value is not None, ti
    return value


def run_once(live: Live, dag_id: str, gonogo: bool, steps: int, fail_at: int) -> dict[str, Any]:
    operator = live.client("operator")
    run = operator.trigger(dag_id)
    operator.wait_run(dag_id, run, timeout=600)
    tis = operator.task_instances(dag_id, run)
    prefix = "work." if gonogo else ""
    failed = tis[f"{prefix}s{fail_at}"]
    if failed["state"] != "failed":
        raise RuntimeError(f"{dag_id}: s{fail_at} ended {failed['state']}, not failed")
    hops = [_start(tis[f"{prefix}s{i + 1}"]) - _end(tis[f"{prefix}s{i}"]) for i in range(fail_at)]
    if gonogo:
        ran = sorted(
            (_start(ti), task_id)
            for task_id, ti in tis.items()
            if task_id.startswith("rollback.")
            and task_id != "rollback.start"
            and ti["state"] == "success"
        )
        if not ran:
            states = {t: ti["state"] for t, ti in tis.items() if t.startswith("rollback.")}
            raise RuntimeError(f"{dag_id}: no compensation ran: {states}")
        first_start, first = ran[0]
        start = tis.get("rollback.start") or {}
        detail = {
            "first compensation": first,
            "rollback.start started": round(_start(start) - _end(failed), 3)
            if start.get("start_date")
            else None,
        }
    else:
        first, first_start = "on_failure", _start(tis["on_failure"])
        detail = {}
    reaction = first_start - _end(failed)
    print(
        f"{dag_id}: reaction {reaction:.2f} s ({first}), success hops "
        + ", ".join(f"{h:.2f}" for h in hops)
        + (f"; {detail}" if detail else ""),
        flush=True,
    )
    return {"reaction": reaction, "hops": hops, **detail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", "--size", type=int, default=10, dest="runs", help="runs of each DAG (R)"
    )
    parser.add_argument("--steps", type=int, default=6, help="steps in the chain")
    parser.add_argument("--fail-at", type=int, default=3, help="index of the step that fails")
    parser.add_argument("--quick", action="store_true", help="2 runs of each")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 2
    if not 0 < args.fail_at < args.steps:
        parser.error("--fail-at must leave at least one step before it")

    from gonogo import load_text

    load_text(rollback_runbook(args.steps, args.fail_at), "bench-rollback.yaml")
    results: dict[str, list[dict[str, Any]]] = {"gonogo": [], "plain": []}
    with live_airflow(
        {"bench_plain_rollback.py": plain_dag(args.steps, args.fail_at)},
        {"bench-rollback.yaml": rollback_runbook(args.steps, args.fail_at)},
    ) as live:
        database = "Postgres" if live.stack.database_url else "SQLite"
        live.wait_dags(GONOGO_DAG, PLAIN_DAG)
        for run in range(args.runs):
            order = [("gonogo", GONOGO_DAG), ("plain", PLAIN_DAG)]
            for name, dag_id in order if run % 2 == 0 else order[::-1]:
                results[name].append(
                    run_once(live, dag_id, name == "gonogo", args.steps, args.fail_at)
                )

    reaction = {n: summary([r["reaction"] for r in rs]) for n, rs in results.items()}
    hops = {n: summary([h for r in rs for h in r["hops"]]) for n, rs in results.items()}
    judged = args.runs >= MIN_RUNS
    rows = [
        Row(
            "gonogo: step failed -> first compensation starts",
            reaction["gonogo"],
            ratio=ratio(reaction["gonogo"]["median"], hops["gonogo"]["median"]),
            ratio_label="vs hop",
        ),
        Row("gonogo: step succeeded -> next step starts (hop)", hops["gonogo"]),
        Row(
            "plain: step failed -> one_failed task starts",
            reaction["plain"],
            ratio=ratio(reaction["plain"]["median"], hops["plain"]["median"]),
            ratio_label="vs hop",
        ),
        Row("plain: step succeeded -> next step starts (hop)", hops["plain"]),
        Row(
            "gonogo reaction vs plain one_failed reaction",
            reaction["gonogo"],
            ratio=ratio(reaction["gonogo"]["median"], reaction["plain"]["median"])
            if judged
            else None,
            ratio_label="gonogo/plain",
            target=TARGET,
            note=""
            if judged
            else f"{args.runs} runs each: too few to judge; the target needs {MIN_RUNS}",
        ),
    ]
    print_table(
        f"rollback-reaction: {args.runs} runs each, step s{args.fail_at} of {args.steps} fails "
        f"({database}, LocalExecutor)",
        rows,
    )
    start_delays = [
        r["rollback.start started"]
        for r in results["gonogo"]
        if r.get("rollback.start started") is not None
    ]
    firsts = sorted({r["first compensation"] for r in results["gonogo"]})
    print(
        f"gonogo's first compensation to run: {', '.join(firsts)}; rollback.start started a median "
        f"{summary(start_delays)['median']:.2f} s "
        "after the failure"
    )
    write_result(
        "rollback_reaction",
        {"runs": args.runs, "steps": args.steps, "fail_at": args.fail_at, "database": database},
        rows,
        runs=results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
