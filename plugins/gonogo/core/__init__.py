"""The pure core: the runbook model, loading and validation, order and time, rollback
planning, names and texts. No Airflow and no network, so ``gonogo validate`` and
``gonogo plan`` run without Airflow installed, and every rule is tested as a function.
"""
