"""``make demo``: Airflow on SQLite at http://localhost:8080 with the example runbooks.

Demo-only users and passwords (never use these anywhere real):

=========  ========  ===============================================
user       password  what they do in the examples
=========  ========  ===============================================
admin      admin     Airflow admin
operator   operator  triggers rollouts
relman     relman    Release Manager / incident manager
svcowner   svcowner  service owner
svcowner2  svcowner2 second service owner
wardrep    wardrep   the hospital's representative
dba        dba       database administrator
=========  ========  ===============================================

The demo runs a copy of ``runbooks/`` in ``.demo/runbooks/``, made at each start, in
which each change window starts when the demo does (same length): the EHR upgrade
is planned for a Tuesday evening, and a run waits for its window. ``gonogo plan
runbooks/ehr-upgrade.yaml`` shows the times as planned.

Ctrl-C stops every process it started (the whole process group).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from gonogo.client.api import AirflowClient
from gonogo.dev.ends import DemoEnds
from gonogo.dev.stack import AirflowStack, User
from gonogo.dev.windows import windows_from

DEMO_USERS = [
    User("admin", "admin", "admin"),
    User("operator", "user", "operator"),
    User("relman", "user", "relman"),
    User("svcowner", "user", "svcowner"),
    User("svcowner2", "user", "svcowner2"),
    User("wardrep", "user", "wardrep"),
    User("dba", "user", "dba"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gonogo-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the gonogo checkout (default: .)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    work = root / ".demo"
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    opens = datetime.now(UTC).replace(second=0, microsecond=0)
    runbooks = work / "runbooks"
    moved = windows_from(root / "runbooks", runbooks, opens)
    stack = AirflowStack(
        home=work / "airflow",
        dags_folder=root / "dags",
        runbooks_dir=runbooks,
        users=DEMO_USERS,
        port=args.port,
        extra_env={"GONOGO_STATE_DIR": str(state)},
        policy=None,  # the defaults: the normal change needs its plan approved first
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(
        "gonogo demo: starting Airflow (database migration takes a minute the first time)…",
        flush=True,
    )
    ends = DemoEnds()
    try:
        ends.start()
        stack.start(timeout=300)
        ends.connect(AirflowClient(stack.base_url, "admin", "admin"))
        url = f"http://localhost:{args.port}"
        print(f"\ngonogo demo is up: {url}\n")
        print("Demo-only users (user / password):")
        for user in DEMO_USERS:
            print(f"  {user.name:<10} {user.password}")
        print(f"\nRunbooks: a copy of {root / 'runbooks'} in {runbooks}")
        print(f"their scripts write under {state}")
        for path in moved:
            print(
                f"  {path.name}: its change window starts now, so a run need not wait for it; "
                f"its Kjøreplan tab shows the clock times (`gonogo plan runbooks/{path.name}` "
                "the planned ones)"
            )
        print(
            "Approvers answer gates under Browse > Required Actions. Ctrl-C stops everything.",
            flush=True,
        )
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
        dead = [n for n, p in stack.processes.items() if p.poll() is not None]
        print(f"gonogo demo: {', '.join(dead)} exited; see {stack.home / 'logs'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ngonogo demo: stopping…", flush=True)
        return 0
    finally:
        stack.stop()
        ends.stop()


if __name__ == "__main__":
    sys.exit(main())
