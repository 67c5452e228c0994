"""The Airflow plugin: gonogo's server-side pieces.

- In the API server, a middleware in front of the REST API and the UI refuses a
  NOGO without a reason and withdraws a decided gate's other requests.
- In the scheduler, a listener writes each run's note: outcome and decisions.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from gonogo import listener
from gonogo.answers import RequireReasonMiddleware


class GonogoPlugin(AirflowPlugin):
    name = "gonogo"
    fastapi_root_middlewares = [  # noqa: RUF012 - Airflow's plugin API is class attributes
        {"name": "gonogo: a NOGO needs a reason", "middleware": RequireReasonMiddleware},
    ]
    listeners = [listener]  # noqa: RUF012
