"""How fast a rollout moves on after GO: gonogo's gates against a plain HITLBranchOperator DAG.

    python bench/gate_latency.py [--gates 20] [--quick]

One real Airflow (scheduler, API server, DAG processor, triggerer; LocalExecutor;
SQLite, or Postgres when GONOGO_TEST_DATABASE_URL is set) runs two DAGs side by side:

- ``bench-gates``: a gonogo runbook of K phases of one bash step (``true``), with
  a gate between each two phases, signed off by one role (``release_manager``,
  user ``relman``), ``on_nogo: stop``, no checks, no timeout: the plainest gate.
- ``bench_plain_gates``: the same chain written by hand: BashOperator ``true``,
  then a ``HITLBranchOperator`` (GO leads to the next BashOperator, NOGO to an
  EmptyOperator), assigned to the same user, K times.

Both runs are triggered by ``admin`` and every request is answered GO by
``relman`` through the REST API, one at a time, alternating which DAG goes first.
Before each answer the other DAG is parked at its next request, so the two never
share the scheduler during a measurement.

What is timed, per gate: from the moment Airflow accepted the answer (the HITL
detail's ``responded_at``, written by the API server when the PATCH succeeds) to
the ``start_date`` of the first task after the gate (gonogo: the next phase's
step; plain: the BashOperator the branch chose). Both are the server's own
timestamps. gonogo's API-server middleware holds back any answer within 10 s of
the request opening (425), for gonogo's DAGs; the benchmark waits those 10 s
before answering on both sides (an earlier answer can lose the plain DAG's task
to an Airflow 3.3 race), and the clock starts only at the accepted answer.
Target: gonogo/plain <= 1.1 on the median.
"""

from __future__ import annotations

import argparse
import sys
import time
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
from gonogo.core.settings import SETTLE_SECONDS

TARGET = 1.0
#: The ratio is called stable when its two halves (first and second half of the gates) differ
#: by at most this much and fall on the same side of the target.
STABLE_WITHIN = 0.1
GONOGO_DAG = "bench-gates"
PLAIN_DAG = "bench_plain_gates"
APPROVER = "relman"


def gates_runbook(gates: int) -> str:
    lines = [
        f"runbook: {GONOGO_DAG}",
        f"title: {gates} gates in a row",
        "service: bench-gates",
        "environment: test",
        "change: {id: CHG-BENCH-GATES, type: normal}",
        "roles:",
        f"  release_manager: {{users: [{APPROVER}]}}",
        "phases:",
    ]
    for i in range(gates + 1):
        lines += [
            f"  - id: phase_{i}",
            "    steps:",
            f"      - id: step_{i}",
            '        bash: "true"',
        ]
        if i < gates:
            lines += [f"  - gate: g_{i}", "    sign_off: [release_manager]", "    on_nogo: stop"]
    return "\n".join(lines) + "\n"


def plain_dag(gates: int) -> str:
    return f'''"""bench/gate_latency.py's anchor: an airflow DAG of HITLBranchOperator gates."""

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import DAG

with DAG(dag_id={PLAIN_DAG!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         max_active_runs=1, default_args={{"retries": 0}}):
    previous = BashOperator(task_id="step_0", bash_command="true")
    for i in range({gates}):
        gate = HITLBranchOperator(
            task_id=f"gate_{{i}}",
            subject=f"GO/NOGO {{i}}",
            options=["GO", "NOGO"],
            options_mapping={{"GO": f"step_{{i + 1}}", "NOGO": f"stop_{{i}}"}},
            assigned_users=[{{"id": {APPROVER!r}, "name": {APPROVER!r}}}],
        )
        step = BashOperator(task_id=f"step_{{i + 1}}", bash_command="true")
        previous >> gate >> [step, EmptyOperator(task_id=f"stop_{{i}}")]
        previous = step
'''


class Side:
    """One of the two DAGs and the task ids that matter at gate ``i``."""

    def __init__(self, name: str, dag_id: str) -> None:
        self.name, self.dag_id = name, dag_id
        self.run_id = ""
        self.samples: list[float] = []
        self.client_samples: list[float] = []
        self.parts: list[dict[str, float]] = []

    def gate(self, i: int) -> str:
        return f"gate__g_{i}.release_manager" if self.name == "gonogo" else f"gate_{i}"

    def downstream(self, i: int) -> str:
        return f"phase_{i + 1}.step_{i + 1}" if self.name == "gonogo" else f"step_{i + 1}"


def wait_started(live: Live, side: Side, task_id: str, timeout: float = 180) -> dict[str, Any]:
    admin = live.client("admin")

    def probe() -> Any:
        ti = admin.task_instances(side.dag_id, side.run_id).get(task_id)
        return ti if ti and ti.get("start_date") else None

    return admin.wait_for(
        f"{task_id} of {side.dag_id} to start", probe, timeout=timeout, interval=0.25
    )  # type: ignore[no-any-return]


def measure_gate(live: Live, side: Side, i: int, gates: int) -> None:
    admin, approver = live.client("admin"), live.client(APPROVER)
    gate = side.gate(i)
    opened = admin.wait_pending(side.dag_id, side.run_id, gate, timeout=300)
    # Airflow 3.3 can fail a HITL task answered within seconds of its request opening
    # ("state changed externally"); gonogo's middleware holds such answers back (425) for
    # its own DAGs only, so for a fair comparison both sides answer after the same settling.
    settled = (parse_time(opened.get("created_at")) or time.time()) + SETTLE_SECONDS + 0.5
    time.sleep(max(0.0, settled - time.time()))
    response = approver.answer(side.dag_id, side.run_id, gate, "GO")
    accepted_client = time.time()
    if response.status_code != 200:
        raise RuntimeError(
            f"{side.name}: answering {gate} gave {response.status_code}: {response.text[:300]}"
        )
    started = wait_started(live, side, side.downstream(i))
    detail = next(
        d
        for d in admin.hitl_details(side.dag_id, side.run_id)
        if d["task_instance"]["task_id"] == gate
    )
    accepted = parse_time(detail.get("responded_at")) or accepted_client
    start = parse_time(started["start_date"])
    assert start is not None
    side.samples.append(start - accepted)
    side.client_samples.append(start - accepted_client)
    try:
        if i + 1 < gates:  # park this DAG at its next request before the other one is measured
            admin.wait_pending(side.dag_id, side.run_id, side.gate(i + 1), timeout=300)
        else:
            admin.wait_run(side.dag_id, side.run_id, timeout=300)
    except TimeoutError:
        tis = admin.task_instances(side.dag_id, side.run_id)
        states = {t: (ti.get("state"), ti.get("try_number")) for t, ti in tis.items()}
        print(f"{side.name}: stuck after gate {i + 1}; task states: {states}", flush=True)
        raise
    tis = admin.task_instances(side.dag_id, side.run_id)
    part = {"gate task ended": (parse_time(tis[gate]["end_date"]) or start) - accepted}
    if side.name == "gonogo":
        result = tis.get(f"gate__g_{i}.result") or {}
        if result.get("start_date"):
            part["result task started"] = (parse_time(result["start_date"]) or 0) - accepted
            part["result task ended"] = (parse_time(result["end_date"]) or 0) - accepted
    part["next step started"] = start - accepted
    side.parts.append(part)
    print(
        f"gate {i + 1}/{gates} {side.name:>6}: {start - accepted:.2f} s "
        f"({', '.join(f'{k} +{v:.2f}' for k, v in part.items())})",
        flush=True,
    )


def _halves(gonogo: list[float], plain: list[float]) -> list[float]:
    """gonogo/plain over the first half of the gates and over the second half."""
    middle = min(len(gonogo), len(plain)) // 2
    if middle == 0:
        return []
    return [
        round(ratio(summary(g)["median"], summary(p)["median"]), 3)
        for g, p in ((gonogo[:middle], plain[:middle]), (gonogo[middle:], plain[middle:]))
    ]


def _stability(halves: list[float]) -> str:
    """Whether the ratio held still over the run: both halves agree, on one side of the target."""
    if len(halves) < 2:
        return "stability: too few gates to tell"
    first, second = halves
    same_side = (first <= TARGET) == (second <= TARGET)
    verdict = "stable" if abs(first - second) <= STABLE_WITHIN and same_side else "NOT stable"
    return (
        f"stability: gonogo/plain is {first:.2f} over the first half of the gates and "
        f"{second:.2f} over the second: {verdict} (within {STABLE_WITHIN} and on one side "
        f"of {TARGET}); if not, run more gates (--gates)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gates", "--size", type=int, default=40, dest="gates", help="gates in a row (K)"
    )
    parser.add_argument("--quick", action="store_true", help="3 gates")
    args = parser.parse_args(argv)
    if args.quick:
        args.gates = 3

    from gonogo import load_text

    load_text(
        gates_runbook(args.gates), "bench-gates.yaml"
    )  # fail early on a runbook gonogo refuses
    sides = [Side("gonogo", GONOGO_DAG), Side("plain", PLAIN_DAG)]
    with live_airflow(
        {"bench_plain_gates.py": plain_dag(args.gates)},
        {"bench-gates.yaml": gates_runbook(args.gates)},
    ) as live:
        database = "Postgres" if live.stack.database_url else "SQLite"
        live.wait_dags(GONOGO_DAG, PLAIN_DAG)
        admin = live.client("admin")
        for side in sides:
            side.run_id = admin.trigger(side.dag_id)
        for i in range(args.gates):
            for side in sides if i % 2 == 0 else sides[::-1]:
                measure_gate(live, side, i, args.gates)

    gonogo, plain = sides
    stats = {s.name: summary(s.samples) for s in sides}
    rows = [
        Row(
            "gonogo gate: GO accepted -> next step starts",
            stats["gonogo"],
            ratio=ratio(stats["gonogo"]["median"], stats["plain"]["median"]),
            ratio_label="gonogo/plain",
            target=TARGET,
        ),
        Row("HITLBranchOperator: GO accepted -> next task starts", stats["plain"]),
    ]
    breakdown = {
        s.name: {k: summary([p[k] for p in s.parts if k in p])["median"] for k in s.parts[0]}
        for s in sides
    }
    print_table(
        f"gate-latency: {args.gates} gates answered GO over REST, one Airflow ({database}, "
        "LocalExecutor)",
        rows,
    )
    halves = _halves(gonogo.samples, plain.samples)
    print(_stability(halves))
    for name, parts in breakdown.items():
        print(
            f"{name} median, seconds after the answer: "
            + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        )
    write_result(
        "gate_latency",
        {"gates": args.gates, "database": database, "approver": APPROVER},
        rows,
        breakdown_median_seconds=breakdown,
        ratio_by_half=halves,
        client_clock={s.name: summary(s.client_samples) for s in sides},
    )
    del gonogo, plain
    return 0


if __name__ == "__main__":
    sys.exit(main())
