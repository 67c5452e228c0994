"""Another team's Airflow DAG with a human-in-the-loop step that looks like a gonogo gate.

gonogo's server-side rules must leave it alone: it is not a gonogo DAG.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, TaskGroup

with (
    DAG(
        "plain-hitl",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        tags=["gonogo"],  # even a tag named like gonogo does not make it gonogo's
    ),
    TaskGroup("gate__review"),
):
    first = HITLOperator(
        task_id="lead",
        subject="Review",
        options=["GO", "NOGO"],
        assigned_users=[{"id": "relman", "name": "relman"}],
    )
    second = HITLOperator(
        task_id="second",
        subject="Second review",
        options=["GO", "NOGO"],
        assigned_users=[{"id": "wardrep", "name": "wardrep"}],
    )
