"""How long ``gonogo validate`` takes for many runbooks (a benchmark, not a test).

    python bench/validate.py [--count 1000]

Generates ``--count`` runbooks with :mod:`gen` into a temporary folder, then
times ``gonogo validate FOLDER`` as a subprocess (the whole command, Python
start-up included) and ``load_file`` over every file in this process. Prints a
small table and writes ``bench/results/validate.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gen import generate_runbook  # bench/ is on sys.path when this runs as a script
from gonogo import load_file, load_text
from gonogo.core.runbook.source import _LIBYAML

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "validate.json"
TARGET_SECONDS = 5.0  # for the whole command over 1000 runbooks, on a 2-core machine


def gonogo_command() -> list[str]:
    """The installed console script next to this Python, or ``python -m gonogo.client.cli``."""
    script = Path(sys.executable).with_name("gonogo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gonogo.client.cli"]


def write_runbooks(folder: Path, count: int, steps: int, gates: int) -> int:
    """Write ``count`` runbooks; returns their total size in bytes."""
    size = 0
    for index in range(count):
        text = generate_runbook(index, steps=steps, gates=gates)
        (folder / f"runbook-{index:05d}.yaml").write_text(text)
        size += len(text.encode())
    return size


def time_cli(folder: Path, repeat: int) -> float:
    """The best of ``repeat`` runs of the whole command, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run(
            [*gonogo_command(), "validate", str(folder)], capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            output = result.stdout + result.stderr
            sys.exit(f"gonogo validate failed ({result.returncode}):\n{output}")
        best = min(best, elapsed)
    return best


def time_in_process(files: list[Path], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for file in files:
            load_file(file)
        best = min(best, time.perf_counter() - started)
    return best


def time_startup(repeat: int) -> float:
    """The best time of ``gonogo --help``: Python start-up and gonogo's imports."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*gonogo_command(), "--help"], capture_output=True, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="runbooks to generate")
    parser.add_argument("--steps", type=int, default=40, help="steps per runbook")
    parser.add_argument("--gates", type=int, default=2, help="gates per runbook")
    parser.add_argument("--repeat", type=int, default=3, help="runs to take the best of")
    parser.add_argument("--quick", action="store_true", help="100 runbooks, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.repeat = 100, 1

    for index in range(5):  # the generator must produce what it promises
        load_text(generate_runbook(index, args.steps, args.gates), f"generated-{index}.yaml")

    with tempfile.TemporaryDirectory(prefix="gonogo-bench-") as tmp:
        folder = Path(tmp)
        size = write_runbooks(folder, args.count, args.steps, args.gates)
        files = sorted(folder.glob("*.yaml"))
        cli = time_cli(folder, args.repeat)
        in_process = time_in_process(files, args.repeat)
        startup = time_startup(args.repeat)

    # Other counts are projected to 1000 files: start-up once, then the measured cost per file.
    for_1000 = cli if args.count == 1000 else startup + (cli - startup) / args.count * 1000
    rows = [
        ("gonogo validate DIR (subprocess)", args.count, cli),
        ("load_file, in process", args.count, in_process),
        ("gonogo --help (start-up only)", 1, startup),
    ]
    print(
        f"{args.count} runbooks, {args.steps} steps and {args.gates} gates each, "
        f"{size / 1e6:.1f} MB, best of {args.repeat}, libyaml {'on' if _LIBYAML else 'off'}"
    )
    print(f"{'what':<34} {'files':>6} {'seconds':>8} {'ms/file':>8}")
    for label, files_timed, seconds in rows:
        print(f"{label:<34} {files_timed:>6} {seconds:>8.2f} {seconds / files_timed * 1000:>8.2f}")
    measured = "measured" if args.count == 1000 else "projected"
    verdict = "met" if for_1000 <= TARGET_SECONDS else "MISSED"
    print(
        f"target: the whole command under {TARGET_SECONDS:.0f} s for 1000 files: {verdict} "
        f"({measured} {for_1000:.2f} s)"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "validate",
        "count": args.count,
        "steps": args.steps,
        "gates": args.gates,
        "bytes": size,
        "repeat": args.repeat,
        "cli_seconds": round(cli, 4),
        "cli_ms_per_file": round(cli / args.count * 1000, 3),
        "in_process_seconds": round(in_process, 4),
        "in_process_ms_per_file": round(in_process / args.count * 1000, 3),
        "startup_seconds": round(startup, 4),
        "target_seconds_for_1000": TARGET_SECONDS,
        "cli_seconds_for_1000": round(for_1000, 4),
        "cli_seconds_for_1000_is": measured,
        "target_met": for_1000 <= TARGET_SECONDS,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "libyaml": _LIBYAML is not None,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
