"""The Airflow plugin: gonogo's server-side pieces, loaded by the API server and the scheduler."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from gonogo.answers import RequireReasonMiddleware


class GonogoPlugin(AirflowPlugin):
    name = "gonogo"
    fastapi_root_middlewares = [  # noqa: RUF012 - Airflow's plugin API is class attributes
        {"name": "gonogo: a NOGO needs a reason", "middleware": RequireReasonMiddleware},
    ]
