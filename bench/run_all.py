"""Run every benchmark, one after the other, and sum up their verdicts (``make bench``).

    python bench/run_all.py [--quick] [--only parse,gate_latency]

Full size by default; ``--quick`` runs each at a small size (CI runs it after the
tests, to catch breakage, not to judge timings). Each benchmark prints its own
table and writes ``bench/results/<name>.json``. The exit code is non-zero only
when a benchmark crashed or timed out; a missed target is printed as MISSED.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BENCHMARKS = (
    "validate",
    "parse",
    "task_startup",
    "gate_latency",
    "rollback_reaction",
    "forecast",
    "board",
    "scale",
    "parked",
    "appear",
)
TIMEOUT = {True: 900, False: 5400}  # seconds per benchmark: quick, full


def run(name: str, quick: bool) -> tuple[int, float]:
    """Run one benchmark as its own process; on a timeout, SIGTERM lets it stop its Airflow."""
    argv = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=HERE.parent)
    try:
        code = process.wait(timeout=TIMEOUT[quick])
    except subprocess.TimeoutExpired:
        print(f"{name}: no result after {TIMEOUT[quick]} s; stopping it", flush=True)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        code = 124
    except KeyboardInterrupt:  # the benchmark got the Ctrl-C too: let it stop its Airflow
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            process.wait()
        raise
    return code, time.monotonic() - started


def headline(name: str) -> list[tuple[str, str, str]]:
    """(what, figure, verdict) for each target in a benchmark's JSON."""
    path = RESULTS / f"{name}.json"
    report: dict[str, Any] = json.loads(path.read_text())
    if name == "validate":
        seconds = report["cli_seconds_for_1000"]
        return [
            (
                f"gonogo validate, 1000 runbooks ({report['cli_seconds_for_1000_is']})",
                f"{seconds:.2f} s <= {report['target_seconds_for_1000']:g} s",
                "met" if report["target_met"] else "MISSED",
            )
        ]
    if name == "forecast":
        p95 = next(r for r in report["rows"] if r.get("ratio_label"))["p95"]
        return [
            (
                "forecast at one step end, p95",
                f"{p95:.2f} ms < {report['target_ms_per_step_end']:g} ms",
                "met" if report["target_met"] else "MISSED",
            )
        ]
    found = []
    for row in report["rows"]:
        if row.get("target") is not None:
            value = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
            verdict = row["verdict"] or row.get("note") or "not judged"
            found.append(
                (row["label"], f"{row['ratio_label']} {value} <= {row['target']:g}", verdict)
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    outcomes: dict[str, tuple[int, float]] = {}
    started = time.monotonic()
    for name in chosen:
        outcomes[name] = run(name, args.quick)

    print(
        f"\n=== summary ({'quick' if args.quick else 'full'} size, "
        f"{time.monotonic() - started:.0f} s)"
    )
    crashed = []
    for name, (code, seconds) in outcomes.items():
        if code != 0:
            crashed.append(name)
            print(f"{name:<18} CRASHED (exit {code}) after {seconds:.0f} s")
            continue
        for what, figure, verdict in headline(name):
            print(f"{name:<18} {what:<52} {figure:<26} {verdict}")
    if crashed:
        print(f"benchmarks that crashed: {', '.join(crashed)}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
