"""Settings from the environment, and the defaults gonogo falls back to.

One place for every ``GONOGO_*`` variable the DAG file, the tasks and the
server read, so a deployment can see all of them at a glance.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

#: Where the runbooks are (the DAG file and ``gonogo validate`` default).
RUNBOOKS_DIR_ENV = "GONOGO_RUNBOOKS_DIR"
#: Comma-separated module prefixes python steps may import from.
PYTHON_PREFIXES_ENV = "GONOGO_PYTHON_PREFIXES"
DEFAULT_PYTHON_PREFIXES = ("steps",)
#: The installation's change-type policy (gonogo.core.change.policy): a YAML file, or the YAML itself.
POLICY_ENV = "GONOGO_POLICY"
#: The change calendar (gonogo.core.calendar): this file, else CALENDAR_FILE in the runbooks folder.
CALENDAR_ENV = "GONOGO_CALENDAR"
#: The calendar's name at the top of the runbooks folder; the loader does not read it as a runbook.
CALENDAR_FILE = "calendar.yaml"

#: The one-slot Airflow pool inside which a rollout lock is claimed.
LOCK_POOL = "gonogo_lock"
#: How long a decide-mode request or a rollback approval waits when the runbook sets no timeout.
DEFAULT_DECIDE_TIMEOUT = timedelta(minutes=30)
#: ``gate_expiring`` is raised when this share of a gate's timeout has passed.
EXPIRING_AT = 0.8
#: An answer within this many seconds of its request opening is held back (see the middleware).
SETTLE_SECONDS = 10.0
#: A runbook file larger than this is refused unread.
MAX_RUNBOOK_BYTES = 1024 * 1024
#: How long rollback waits for forward steps still running before it gives up.
ROLLBACK_WAIT = timedelta(hours=24)


def python_prefixes() -> tuple[str, ...]:
    """Module prefixes python steps may import from: ``GONOGO_PYTHON_PREFIXES`` or ``steps``."""
    raw = os.environ.get(PYTHON_PREFIXES_ENV, "")
    found = tuple(p.strip() for p in raw.split(",") if p.strip())
    return found or DEFAULT_PYTHON_PREFIXES


def runbooks_dir(default: Path) -> Path:
    """``GONOGO_RUNBOOKS_DIR`` if set, else ``default`` (the repository's ``runbooks/``)."""
    return Path(os.environ.get(RUNBOOKS_DIR_ENV) or default)


def state_home() -> Path:
    """Where gonogo keeps files of its own on a machine: ``gonogo/`` in the Airflow home."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "gonogo"


def calendar_file(folder: Path) -> Path | None:
    """The calendar: ``GONOGO_CALENDAR`` if set, else ``calendar.yaml`` in ``folder`` if there is one.

    A ``GONOGO_CALENDAR`` that names no file is returned all the same, so reading
    it fails and says so, instead of running as if there were no freezes.
    """
    named = os.environ.get(CALENDAR_ENV, "").strip()
    if named:
        return Path(named)
    beside = folder / CALENDAR_FILE
    return beside if beside.is_file() else None
