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

Ctrl-C stops every process it started (the whole process group).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from gonogo.client.api import AirflowClient
from gonogo.dev.ends import DemoEnds
from gonogo.dev.stack import AirflowStack, User

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
    stack = AirflowStack(
        home=work / "airflow",
        dags_folder=root / "dags",
        runbooks_dir=root / "runbooks",
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
        print(f"\nRunbooks: {root / 'runbooks'}; their scripts write under {state}")
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
