"""The Airflow plugin: gonogo's server-side pieces.

- In the API server, a middleware in front of the REST API and the UI checks
  answers (a reason for NOGO, four-eyes, one role per person), refuses state
  edits of gates, rollback and the outcome, and records who triggered a run.
  Behind it, on SQLite, write requests reach Airflow one at a time (gonogo.server.writers).
- In the scheduler, a listener writes each run's note: outcome and decisions.
- In the DAG processor, a new or edited runbook's loader file is parsed next
  (gonogo.server.prompter).
- In the API server, pages inside the UI: the kjøreplan (per DAG), the status board
  and the change calendar (nav), a rollout and its report (per run), early-life
  support after go-live (per DAG).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from gonogo.core.documents.board import BOARD_ROUTE, KJOREPLAN_ROUTE, REPORT_ROUTE, RUN_ROUTE
from gonogo.core.documents.calendar import CALENDAR_ROUTE
from gonogo.core.documents.earlylife import EARLY_LIFE_ROUTE
from gonogo.server import listener, prompter
from gonogo.server.middleware import GonogoMiddleware
from gonogo.server.pages import URL_PREFIX, create_app
from gonogo.server.writers import OneWriterMiddleware


class GonogoPlugin(AirflowPlugin):
    name = "gonogo"
    # Airflow adds them in this order, each around the ones before: gonogo's checks run
    # first, and what they let through reaches Airflow one write at a time on SQLite.
    fastapi_root_middlewares = [  # noqa: RUF012 - Airflow's plugin API is class attributes
        {"name": "gonogo: one write at a time on SQLite", "middleware": OneWriterMiddleware},
        {"name": "gonogo: answers, state edits and triggers", "middleware": GonogoMiddleware},
    ]
    # The scheduler writes each run's note; the DAG processor parses a changed runbook next.
    listeners = [listener, prompter]  # noqa: RUF012
    # The kjøreplan, the status board, a rollout and its report, as pages inside the UI.
    # The app checks every caller itself (gonogo.server.pages): Airflow does not.
    fastapi_apps = [  # noqa: RUF012
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "gonogo pages"},
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Kjøreplan",
            "href": URL_PREFIX + "/kjoreplan/{DAG_ID}",
            "destination": "dag",
            "url_route": KJOREPLAN_ROUTE,
        },
        {
            "name": "Rollouts",
            "href": URL_PREFIX + "/board",
            "destination": "nav",
            "url_route": BOARD_ROUTE,
        },
        {
            "name": "Calendar",
            "href": URL_PREFIX + "/calendar",
            "destination": "nav",
            "url_route": CALENDAR_ROUTE,
        },
        {
            "name": "Early life",
            "href": URL_PREFIX + "/early-life/{DAG_ID}",
            "destination": "dag",
            "url_route": EARLY_LIFE_ROUTE,
        },
        {
            "name": "Rollout",
            "href": URL_PREFIX + "/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": RUN_ROUTE,
        },
        {
            "name": "Report",
            "href": URL_PREFIX + "/report/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": REPORT_ROUTE,
        },
    ]
