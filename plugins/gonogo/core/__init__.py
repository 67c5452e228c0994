"""The pure core: no Airflow and no network, so ``gonogo validate`` and ``gonogo plan``
run without Airflow installed, and every rule is tested as a function.

One folder per concept: ``runbook`` (the format, reading and checking it),
``timing`` (the plan in time), ``runs`` (a run's records, answers and outcome),
``change`` (fingerprint, policy, approval), ``messages`` (notifications and the
ITSM record), ``calendar`` and ``documents``. ``naming`` and ``settings``, which
every layer shares, stay at the top.
"""
