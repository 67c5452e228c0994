"""gonogo: deployment runbooks in YAML, run as Apache Airflow DAGs.

The pure core (model, loading, checks, planning) does not import Airflow.
"""

from __future__ import annotations

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
from gonogo.loader import load_file, load_text, runbook_files
from gonogo.model import Gate, Phase, Runbook, Step
from gonogo.plan import RollbackPlan, StepRecord, plan_rollback, render_outline

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
