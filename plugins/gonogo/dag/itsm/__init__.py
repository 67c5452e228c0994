"""Adapters to ITSM tools, and the one function that picks one for a runbook.

Each adapter is one module implementing :class:`gonogo.core.messages.itsm.ChangeSystem`
over plain HTTP (requests), with its base URL and credentials from an Airflow
connection. A second adapter (a generic webhook, Jira Service Management,
TOPdesk) is a new module and one line in :data:`KINDS`.
"""

from __future__ import annotations

import importlib

from gonogo.core.messages.itsm import ChangeSystem

#: The module of each ``itsm.kind``; each has ``from_connection(conn_id) -> ChangeSystem``.
KINDS = {"servicenow": "gonogo.dag.itsm.servicenow"}


def change_system(kind: str, conn_id: str) -> ChangeSystem:
    """The adapter for ``kind``, talking to the ITSM that Airflow connection ``conn_id`` names."""
    module = importlib.import_module(KINDS[kind])
    system: ChangeSystem = module.from_connection(conn_id)
    return system
