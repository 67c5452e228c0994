"""The status board (every rollout the viewer may see) and the run view (one rollout).

Both render :func:`gonogo.core.documents.report.report_data` rows, so the board,
the run view and the report show the same facts. They refresh themselves with a
``meta refresh``: no script, and inside the Airflow UI's iframe only the view
reloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gonogo.core.documents.earlylife import EARLY_LIFE_ROUTE

#: Seconds between refreshes of the live pages.
REFRESH_SECONDS = 5
#: The ``url_route`` of each gonogo view inside the Airflow UI (``…/plugin/<route>``).
KJOREPLAN_ROUTE = "gonogo-kjoreplan"
BOARD_ROUTE = "gonogo-board"
RUN_ROUTE = "gonogo-run"
REPORT_ROUTE = "gonogo-report"


def board_html(
    rows: Sequence[dict[str, Any]],
    now: datetime,
    ui_base: str = "/",
    refresh: int = REFRESH_SECONDS,
) -> str:
    """The board: one row per rollout, worst status first, then newest first."""
    from gonogo.core.documents.html import render

    return render(
        "board.html.j2",
        rows=sort_rows(rows),
        now=now,
        ui_base=ui_base,
        view_base=ui_base,
        run_route=RUN_ROUTE,
        kjoreplan_route=KJOREPLAN_ROUTE,
        early_life_route=EARLY_LIFE_ROUTE,
        refresh=refresh,
    )


def sort_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running before finished, then red before yellow before green, then newest first."""
    rank = {"red": 0, "yellow": 1, "green": 2}
    newest = sorted(rows, key=lambda r: r.get("start") or "", reverse=True)
    return sorted(
        newest, key=lambda r: (r.get("end") is not None, rank.get(r["status"]["colour"], 3))
    )


def run_html(data: dict[str, Any], ui_base: str = "/", refresh: int = REFRESH_SECONDS) -> str:
    """One rollout: status, open requests with deep links, the decision log, the activities."""
    from gonogo.core.documents.html import render

    return render("run.html.j2", r=data, ui_base=ui_base, refresh=refresh)
