"""Airflow DAG file with no DAG: it shows every broken runbook as a steady import error.

Airflow clears, at each refresh of the DAGs folder, the import errors of files
that are not DAG files, and a runbook is YAML. The loader files (gonogo_dags*.py)
remember what they found broken; this file reports it under its own name, so
the error stays in the UI for as long as the runbook is broken (see
gonogo.dag.import_errors).
"""

from __future__ import annotations

from gonogo.dag.import_errors import report_remembered

report_remembered(__file__)
