"""Runbook to Airflow DAG: the builder, the action registry, gates, rollback, lock and window.

Everything here runs where DAGs are parsed and tasks run: the DAG processor and the workers.
"""
