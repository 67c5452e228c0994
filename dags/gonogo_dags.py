"""Airflow DAG file: one DAG for every runbook in runbooks/ (or $GONOGO_RUNBOOKS_DIR).

See gonogo.dagfile for how broken runbooks are reported without hiding the others.
"""

from __future__ import annotations

from pathlib import Path

from gonogo.dagfile import build_all, runbooks_dir

build_all(runbooks_dir(Path(__file__).resolve().parent.parent / "runbooks"), globals())
