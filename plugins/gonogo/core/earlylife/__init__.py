"""Early-life support after go-live: status rounds, the standby roster and the overall colour.

- :mod:`~gonogo.core.earlylife.rounds`: when the areas report and the leadership
  meets, as moments, from the runbook's day ranges (correct across daylight saving).
- :mod:`~gonogo.core.earlylife.roster`: who is on standby at a moment, and who next.
- :mod:`~gonogo.core.earlylife.status`: the reports read back, the latest per area,
  what is overdue, and the overall colour.
- :mod:`~gonogo.core.earlylife.checks`: what ``gonogo validate`` says about the section.
- :mod:`~gonogo.core.earlylife.names`: the DAG id, task ids and options, defined once.

Pure: no Airflow import, no network.
"""

from __future__ import annotations
