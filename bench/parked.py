"""Many rollouts parked at GO/NOGO gates at once: no worker slot held, gates still quick.

    python bench/parked.py [--rollouts 50] [--answers 5] [--quick]

One real Airflow (LocalExecutor, parallelism 8; SQLite, or Postgres when
GONOGO_TEST_DATABASE_URL is set) and N runbooks, each its own service (no lock
waits): one ``true`` step, a gate signed off by ``release_manager`` (user
``relman``), one ``true`` step after it.

1. Baseline, in the same run: one rollout alone, answered GO, ``--answers`` times
   (a new run each time).
2. Then all N are triggered and parked at their gate (on SQLite one at a time,
   each once the one before is parked: see :func:`park`). Every gate request must be
   ``awaiting_input`` (Airflow's deferred state for a HITL request: its wait runs
   in the triggerer), and no task ``running``: a parked rollout holds no worker slot.
3. With all N parked, ``--answers`` of them are answered GO, one at a time.

Gate latency is the HITL detail's ``responded_at`` (the API server accepted the
answer) to the ``start_date`` of the step after the gate; each answer is given
after the 10 s gonogo's middleware holds early answers back. **Target: with N
parked, the median latency is at most 2x the latency with one rollout.**
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Live, Row, live_airflow, parse_time, print_table, ratio, summary, write_result
from gonogo.core.settings import SETTLE_SECONDS

TARGET = 2.0
GATE = "gate__go.release_manager"
AFTER = "after.done"


def runbook(index: int) -> str:
    return f"""\
runbook: bench-parked-{index:03d}
title: Parked rollout {index}
service: bench-parked-{index:03d}
environment: test
change: {{id: CHG-PARKED-{index:03d}, type: normal}}
roles:
  release_manager: {{users: [relman]}}
phases:
  - id: before
    steps: [{{id: ready, bash: "true", read_only: true}}]
  - gate: go
    sign_off: [release_manager]
  - id: after
    steps: [{{id: done, bash: "true", read_only: true}}]
"""


def dag_id(index: int) -> str:
    return f"bench-parked-{index:03d}"


def answer(live: Live, dag: str, run_id: str) -> float:
    """Answer the parked gate GO once it has settled; seconds to the next step's start."""
    admin = live.client("admin")
    opened = admin.wait_pending(dag, run_id, GATE, timeout=600)
    settled = (parse_time(opened.get("created_at")) or time.time()) + SETTLE_SECONDS + 0.5
    time.sleep(max(0.0, settled - time.time()))
    live.client("relman").answer_or_raise(dag, run_id, GATE, "GO")

    def started() -> Any:
        ti = admin.task_instances(dag, run_id).get(AFTER)
        return ti if ti and ti.get("start_date") else None

    step = admin.wait_for(f"{AFTER} of {dag} to start", started, timeout=300, interval=0.25)
    detail = next(
        d for d in admin.hitl_details(dag, run_id) if d["task_instance"]["task_id"] == GATE
    )
    accepted = parse_time(detail.get("responded_at"))
    start = parse_time(step["start_date"])
    assert accepted is not None and start is not None
    return start - accepted


def park(live: Live, rollouts: int, one_at_a_time: bool) -> dict[str, str]:
    """Trigger every rollout and wait until each is parked at its gate; their run ids.

    On Postgres they are all triggered at once, as on a go-live weekend. On SQLite
    Airflow's API server stopped answering (over 30 s) when 50 triggers came while
    the first runs' tasks were writing, so there each is triggered once the one
    before is parked: the same 50 parked gates, reached more slowly.
    """
    admin = live.client("admin")
    runs = {}
    for i in range(rollouts):
        runs[dag_id(i)] = admin.trigger(dag_id(i))
        if one_at_a_time:
            admin.wait_pending(dag_id(i), runs[dag_id(i)], GATE, timeout=300)
    for dag, run_id in runs.items():
        admin.wait_pending(dag, run_id, GATE, timeout=900)
    return runs


def parked_states(live: Live, runs: dict[str, str]) -> dict[str, int]:
    """How many task instances of the parked runs are in each state."""
    admin = live.client("admin")
    counts: dict[str, int] = {}
    for dag, run_id in runs.items():
        for ti in admin.task_instances(dag, run_id).values():
            state = str(ti.get("state"))
            counts[state] = counts.get(state, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--answers", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="8 rollouts, 2 answers")
    args = parser.parse_args(argv)
    if args.quick:
        args.rollouts, args.answers = 8, 2
    books = {f"parked-{i:03d}.yaml": runbook(i) for i in range(args.rollouts)}
    with live_airflow({}, books) as live:
        database = "Postgres" if live.stack.database_url else "SQLite"
        live.wait_dags(*(dag_id(i) for i in range(args.rollouts)), timeout=600)
        admin = live.client("admin")
        alone = []
        for _ in range(args.answers):
            run_id = admin.trigger(dag_id(0))
            alone.append(answer(live, dag_id(0), run_id))
            admin.wait_run(dag_id(0), run_id)
            print(f"one rollout: {alone[-1]:.2f} s", flush=True)
        runs = park(live, args.rollouts, one_at_a_time=database == "SQLite")
        states = parked_states(live, runs)
        print(f"{args.rollouts} rollouts parked; task states: {states}", flush=True)
        waiting = states.get("awaiting_input", 0) + states.get("deferred", 0)
        if states.get("running") or waiting < args.rollouts:
            raise RuntimeError(f"parked rollouts hold worker slots: {states}")
        crowded = []
        for i in range(args.answers):
            crowded.append(answer(live, dag_id(i), runs[dag_id(i)]))
            print(f"with {args.rollouts} parked: {crowded[-1]:.2f} s", flush=True)
    one, many = summary(alone), summary(crowded)
    rows = [
        Row(
            f"gate latency with {args.rollouts} rollouts parked",
            many,
            ratio=ratio(many["median"], one["median"]),
            ratio_label="vs alone",
            target=TARGET,
        ),
        Row("gate latency with one rollout (baseline)", one),
    ]
    print_table(
        f"parked: {args.rollouts} rollouts waiting at gates ({database}, LocalExecutor)", rows
    )
    write_result(
        "parked",
        {"rollouts": args.rollouts, "answers": args.answers, "database": database},
        rows,
        parked_task_states=states,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
