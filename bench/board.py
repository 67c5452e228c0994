"""What the status board costs the API server: gonogo's board against Airflow's grid.

    python bench/board.py [--rollouts 50] [--page 50] [--repeat 20] [--quick]

One real Airflow (as the other live benchmarks) runs N runbooks, each with its
own service so that no rollout waits for another's lock, and triggers one run of
each. Every run does five ``true`` steps and then waits at a GO/NOGO gate of two
roles, so the board has N active rollouts with open requests.

What is timed, as the ``operator`` user, from the client:

- **board**: ``GET /gonogo/board?limit=P``, one whole HTML page of P rollouts out
  of the N active ones (runs, task instances, HITL details, XComs, the runbooks,
  the rendering). P is the board's own page (50) unless ``--page`` says otherwise,
  and at most N;
- **grid (anchor)**: Airflow's own grid endpoint for the runs that page shows, as
  its UI loads it when a person opens each rollout: ``GET /ui/grid/ti_summaries/
  {dag}?run_ids={run}``, once per run, one after the other.

Targets: the board answers in well under a second (median < 1 s) and costs no
more than the grid does for the same runs (board/grid <= 1.0 on the median).
"""

from __future__ import annotations

import argparse
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Row, live_airflow, print_table, ratio, summary, write_result

TARGET = 1.0
SECONDS = 1.0
#: Runbooks a loader file, as the README advises: one file of 500 outlasts Airflow's 30 s.
PER_LOADER = 50
READER = "operator"  # a user of the benchmark stack; the board shows every DAG it may read


def runbook(index: int) -> str:
    name = f"bench-board-{index:03d}"
    steps = "\n".join(f'      - id: step_{n}\n        bash: "true"' for n in range(5))
    return f"""runbook: {name}
title: Board benchmark rollout {index}
service: {name}
environment: test
change: {{id: CHG-BENCH-{index:03d}, type: normal}}
roles:
  release_manager: {{users: [relman]}}
  hospital: {{users: [svcowner]}}
phases:
  - id: work
    steps:
{steps}
  - gate: go_nogo
    title: GO/NOGO after the work
    sign_off: [release_manager, hospital]
  - id: after
    steps:
      - id: done
        bash: "true"
"""


def trigger_once(admin: Any, dag_id: str) -> str:
    """One run of ``dag_id``, also when SQLite's lock makes a trigger fail half-way."""
    for _ in range(5):
        try:
            return str(admin.trigger(dag_id))
        except Exception as exc:  # a 500 or a timeout: the run may exist all the same
            print(f"triggering {dag_id}: {exc}; checking and retrying", flush=True)
            time.sleep(3)
            found = admin.call("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
            if found:
                return str(found[0]["dag_run_id"])
    raise RuntimeError(f"could not trigger {dag_id}")


class _Rows(HTMLParser):
    """The (DAG, run) of every rollout row of a board page."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("class") == "rollout":
            self.shown.append((found.get("data-dag") or "", found.get("data-run") or ""))


def shown_rollouts(page: str) -> list[tuple[str, str]]:
    rows = _Rows()
    rows.feed(page)
    return rows.shown


def wait_at_gates(admin: Any, count: int, timeout: float) -> None:
    """Until ``count`` requests of the gate's second role are open, one list call a round."""

    def probe() -> bool | None:
        open_now = [
            d
            for d in admin.hitl_details(pending=True)
            if d["task_instance"]["task_id"] == "gate__go_nogo.hospital"
        ]
        print(f"{len(open_now)} of {count} rollouts wait at their gate", flush=True)
        return len(open_now) >= count or None

    admin.wait_for(f"{count} open gates", probe, timeout=timeout, interval=15)


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", "--size", type=int, default=50, dest="rollouts")
    parser.add_argument("--page", type=int, default=50, help="rollouts on the timed page")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 rollouts, 5 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.rollouts, args.repeat = 5, 5
    page_size = min(args.page, args.rollouts)

    books = {f"board_{i:03d}.yaml": runbook(i) for i in range(args.rollouts)}
    dag_ids = [f"bench-board-{i:03d}" for i in range(args.rollouts)]
    shards = -(-args.rollouts // PER_LOADER)

    def split(dags: Path, _books: Path) -> None:
        from gonogo.client.cli import main as gonogo

        if shards > 1 and gonogo(["shards", str(shards), str(dags)]) != 0:
            raise RuntimeError("gonogo shards failed")

    with live_airflow({}, books, prepare=split) as live:
        live.wait_dags(*dag_ids, timeout=240 + len(dag_ids))
        admin = live.client("admin")
        admin.timeout = 180  # SQLite: 50 triggers queue behind the scheduler's writes
        runs = {dag_id: trigger_once(admin, dag_id) for dag_id in dag_ids}
        wait_at_gates(admin, len(runs), timeout=600 + 10 * len(runs))

        viewer = live.client(READER)
        base = live.stack.base_url
        session = viewer.session
        headers = {"Authorization": f"Bearer {viewer.token()}"}

        def board() -> list[tuple[str, str]]:
            response = session.get(
                f"{base}/gonogo/board", params={"limit": page_size}, headers=headers, timeout=60
            )
            response.raise_for_status()
            shown = shown_rollouts(response.text)
            if len(shown) != page_size or any(runs.get(dag) != run for dag, run in shown):
                raise RuntimeError(f"the board shows {len(shown)} of the rollouts, not {page_size}")
            return shown

        on_page = board()  # warm both up: runbook cache, serialized DAGs, connections

        def grid() -> None:
            for dag_id, run in on_page:
                response = session.get(
                    f"{base}/ui/grid/ti_summaries/{dag_id}",
                    params={"run_ids": run},
                    headers=headers,
                    timeout=60,
                )
                response.raise_for_status()

        grid()
        boards, grids = [], []
        for _ in range(args.repeat):
            boards.append(timed(board))
            grids.append(timed(grid))
        board_stats, grid_stats = summary(boards), summary(grids)
        rows = [
            Row(
                f"board, one page of {page_size} of {len(runs)} active rollouts",
                board_stats,
                ratio=ratio(board_stats["median"], grid_stats["median"]),
                ratio_label="board/grid",
                target=TARGET,
                note=f"median must stay < {SECONDS:.0f} s",
            ),
            Row(f"grid ti_summaries for the same {page_size} runs (anchor)", grid_stats),
        ]
        print_table("Status board against Airflow's grid", rows)
        under = board_stats["median"] < SECONDS
        print(f"board median {board_stats['median']:.3f} s: {'OK' if under else 'MISSED'} (< 1 s)")
        write_result(
            "board",
            {"rollouts": len(runs), "page": page_size, "repeat": args.repeat},
            rows,
            board_under_a_second=under,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
