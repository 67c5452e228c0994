"""Airflow DAG file: one DAG for every runbook in runbooks/ (or $GONOGO_RUNBOOKS_DIR).

See gonogo.dag.folder for how broken runbooks are reported without hiding the others.
"""

from __future__ import annotations

from pathlib import Path

from gonogo.core.settings import runbooks_dir
from gonogo.dag.folder import build_all

build_all(runbooks_dir(Path(__file__).resolve().parent.parent / "runbooks"), globals())
