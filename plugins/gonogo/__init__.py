"""gonogo: deployment runbooks in YAML, run as Apache Airflow DAGs.

The package has four layers, each a folder, each importing only the ones below it:
``core`` (pure: no Airflow, no network), ``dag`` (runbook to DAG), ``server``
(inside Airflow's API server and scheduler) and ``client`` (the CLI and REST
client); ``dev`` starts a real Airflow for the demo and the tests. The public
API below comes from the core and does not import Airflow.
"""

from __future__ import annotations

from gonogo.core.documents.outline import render_outline
from gonogo.core.runbook.loader import load_file, load_text, runbook_files
from gonogo.core.runbook.model import Gate, Phase, Runbook, Step
from gonogo.core.runs.rollback import RollbackPlan, StepRecord, plan_rollback
from gonogo.errors import (
    ApprovalRefused,
    ClientError,
    GateError,
    GonogoError,
    Problem,
    RollbackError,
    RunbookError,
    StepError,
)

__all__ = [
    "ApprovalRefused",
    "ClientError",
    "Gate",
    "GateError",
    "GonogoError",
    "Phase",
    "Problem",
    "RollbackError",
    "RollbackPlan",
    "Runbook",
    "RunbookError",
    "Step",
    "StepError",
    "StepRecord",
    "load_file",
    "load_text",
    "plan_rollback",
    "render_outline",
    "runbook_files",
]
