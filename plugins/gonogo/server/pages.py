"""gonogo's pages inside the Airflow UI: the kjøreplan, the board, the calendar, a rollout, its report.

A plugin's FastAPI app is mounted into the API server but **not** behind
Airflow's authentication: every route here checks the caller itself. The
caller's Airflow JWT (the UI's ``_token`` cookie, or a bearer token as the CLI
sends) is validated by the auth manager; no token, or a bad or expired one,
is 401. Then the auth manager is asked whether that user may read the DAG; if
not, 403, and the board and the calendar list only the DAGs the user may read
(the calendar's maintenance windows and freezes are the installation's, shown
to every logged-in user).

The pages render the pure documents of :mod:`gonogo.core.documents` over
:class:`~gonogo.core.runs.records.RunRecord` read by :mod:`gonogo.server.rundata`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from gonogo.core.documents.board import KJOREPLAN_ROUTE, board_html, run_html
from gonogo.core.documents.kjoreplan import plan_data, plan_html, plan_markdown
from gonogo.core.documents.report import (
    plan_facts,
    report_data,
    report_html,
    report_markdown,
)
from gonogo.core.runs.run import progress
from gonogo.server import records, rundata

#: Where the app is mounted in the API server.
URL_PREFIX = "/gonogo"
#: The cookie the Airflow UI keeps its JWT in (``COOKIE_NAME_JWT_TOKEN``).
_COOKIE = "_token"

Format = Annotated[str, Query(pattern="^(html|md|json)$")]
CalendarFormat = Annotated[str, Query(pattern="^(html|md|json|ics)$")]


def ui_base() -> str:
    """The Airflow UI's base path (``/`` unless the API server runs under a sub-path)."""
    from airflow.configuration import conf

    path = urlparse(conf.get("api", "base_url", fallback="/") or "/").path or "/"
    return path if path.endswith("/") else path + "/"


async def caller(request: Request) -> Any:
    """The Airflow user behind the request, from its JWT; 401 without a valid one."""
    from airflow.api_fastapi.app import get_auth_manager
    from jwt import InvalidTokenError

    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    token = token or request.cookies.get(_COOKIE, "")
    if not token:
        raise HTTPException(401, "log in to Airflow first", {"WWW-Authenticate": "Bearer"})
    try:
        return await get_auth_manager().get_user_from_token(token)
    except InvalidTokenError:  # expired, revoked, badly signed: all mean "log in again"
        raise HTTPException(401, "your Airflow session is not valid; log in again") from None


User = Annotated[Any, Depends(caller)]


def may_read(user: Any, dag_id: str) -> bool:
    """Whether the auth manager lets ``user`` read ``dag_id``'s runs (and so its plan)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.configuration import conf
    from airflow.models.dag import DagModel

    # As Airflow's own routes do; the team lookup is a query, needed only with teams.
    multi_team = conf.getboolean("core", "multi_team", fallback=False)
    team = DagModel.get_team_name(dag_id) if multi_team else None
    return bool(
        get_auth_manager().is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id, team_name=team),
            user=user,
        )
    )


def _require(user: Any, dag_id: str) -> None:
    if not may_read(user, dag_id):
        raise HTTPException(403, f"you may not read the DAG {dag_id!r}")


def _runbook(dag_id: str) -> Any:
    runbook = rundata.runbooks().get(dag_id)
    if runbook is None:
        raise HTTPException(404, f"{dag_id!r} is not a gonogo runbook")
    return runbook


def _plan(dag_id: str) -> Any:
    """The runbook whose kjøreplan a DAG's tab shows: its own, or the one its approval DAG approves."""
    runbook = rundata.runbooks().plan_of(dag_id)
    if runbook is None:
        raise HTTPException(404, f"{dag_id!r} is not a gonogo runbook or its plan approval")
    return runbook


def _now() -> datetime:
    return datetime.now(UTC)


def _reply(fmt: str, html: str, md: str | None = None, data: Any = None) -> Response:
    if fmt == "json":
        return JSONResponse(data)
    if fmt == "md":
        return PlainTextResponse(md or "", media_type="text/markdown; charset=utf-8")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _run_report(dag_id: str, run_id: str, now: datetime) -> dict[str, Any]:
    from airflow.utils.session import create_session

    runbook = _runbook(dag_id)
    with create_session() as session:
        run = rundata.one_run(session, dag_id, run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} of {dag_id!r}")
        (record,) = rundata.read_runs(session, [run])
    data = report_data(progress(runbook, record, now), now)
    outcome = data["outcome"] or {}
    if outcome.get("retrospective_approval") == "required":
        given = records.approved_afterwards(dag_id, str(outcome.get("fingerprint", "")))
        if given:
            outcome["retrospective_approval"] = given
            data["plan"] = plan_facts(outcome)
    return data


def _board(user: Any, now: datetime, offset: int, limit: int) -> list[dict[str, Any]]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.utils.session import create_session

    known = rundata.runbooks().ids()
    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    rows = []
    with create_session() as session:
        runs = rundata.board_runs(session, known & set(readable), now, offset, limit)
        supported = _supported(session, known, set(readable), now)
        listed = {(r.dag_id, r.run_id) for r in runs}
        if offset == 0:  # a rollout in early-life support stays on the board while support lasts
            runs += [
                run
                for key in sorted(set(supported) - listed)
                if (run := rundata.one_run(session, *key)) is not None
            ]
        for record in rundata.read_runs(session, runs):
            runbook = rundata.runbooks().get(record.dag_id)
            if runbook is not None:
                row = report_data(progress(runbook, record, now), now)
                support = supported.get((record.dag_id, record.run_id))
                if support is not None:
                    row["early_life"] = support
                rows.append(row)
    return rows


def _supported(
    session: Any, known: set[str], readable: set[str], now: datetime
) -> dict[tuple[str, str], Any]:
    """The early-life status of each rollout run whose support is running and may be read."""
    from gonogo.core.earlylife.names import early_life_dag
    from gonogo.server import earlylife

    books = [
        b
        for d in sorted(known & readable)
        if early_life_dag(d) in readable and (b := rundata.runbooks().get(d)) is not None
    ]
    return earlylife.for_rollouts(session, books, now)


def _read_calendar(path: Path | None) -> Any:
    """The installation's calendar (none: an empty one); a broken one is an error that says why."""
    from gonogo.core.calendar.model import Calendar
    from gonogo.dag.calendar import installation_calendar
    from gonogo.errors import CalendarError, ItsmError

    if path is None:
        return Calendar()
    try:
        return installation_calendar(path)[0]
    except CalendarError as exc:
        problems = "; ".join(str(p) for p in exc.problems[:5])
        raise HTTPException(500, f"the calendar cannot be read: {problems}") from None
    except ItsmError as exc:
        raise HTTPException(502, f"the calendar's ITSM schedules cannot be read: {exc}") from None


def _calendar(user: Any, start: date | None, end: date | None, now: datetime) -> dict[str, Any]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.utils.session import create_session

    from gonogo.core.calendar.listing import calendar_data, period_of
    from gonogo.core.calendar.rules import Change
    from gonogo.core.settings import calendar_file

    books = rundata.runbooks()
    calendar = _read_calendar(calendar_file(books.folder))
    readable = books.ids() & set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))
    changes = [
        found
        for dag_id in sorted(readable)
        if (runbook := books.get(dag_id)) is not None and (found := Change.of(runbook)) is not None
    ]
    try:
        period = period_of(calendar, start, end, now)
    except ValueError as exc:
        raise HTTPException(422, f"to: {exc}") from None
    with create_session() as session:
        states = rundata.latest_states(session, [c.runbook for c in changes])
    return calendar_data(calendar, changes, period, now, states)


def _early_life_run(session: Any, dag_id: str, run_id: str | None) -> tuple[Any, Any]:
    """The runbook and the early-life run that ``dag_id`` (a runbook or its early-life DAG) names."""
    from gonogo.core.earlylife import names
    from gonogo.server import earlylife

    runbook = _runbook(names.runbook_of_dag(dag_id) or dag_id)
    if runbook.early_life is None:
        raise HTTPException(404, f"{runbook.runbook!r} plans no early-life support")
    life_dag = names.early_life_dag(runbook.runbook)
    run = (
        rundata.one_run(session, life_dag, run_id)
        if run_id
        else earlylife.latest_run(session, life_dag)
    )
    if run is None:
        raise HTTPException(404, f"no early-life run of {runbook.runbook!r} yet")
    return runbook, run


def _early_life(dag_id: str, run_id: str | None, now: datetime) -> dict[str, Any]:
    from airflow.utils.session import create_session

    from gonogo.server import earlylife

    with create_session() as session:
        runbook, run = _early_life_run(session, dag_id, run_id)
        data = earlylife.read_support(session, runbook, run, now)
    if data is None:
        raise HTTPException(404, f"the early-life run {run.run_id!r} has not started support yet")
    return data


def _agenda(dag_id: str, run_id: str | None, at: datetime | None, now: datetime) -> dict[str, Any]:
    from airflow.utils.session import create_session

    from gonogo.server import earlylife

    with create_session() as session:
        runbook, run = _early_life_run(session, dag_id, run_id)
        data = earlylife.read_agenda(session, runbook, run, now, at)
    if data is None:
        raise HTTPException(404, f"the early-life run {run.run_id!r} has no meeting to prepare")
    return data


def create_app() -> FastAPI:
    app = FastAPI(title="gonogo", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _problem(request: Request, exc: HTTPException) -> Response:
        # A page in an iframe shows text; the CLI reads JSON. Both get the status.
        wants_json = "application/json" in request.headers.get("accept", "")
        headers = dict(exc.headers or {})
        if wants_json or request.query_params.get("format") == "json":
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers)
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}", exc.status_code, headers)

    @app.get("/kjoreplan/{dag_id}")
    async def kjoreplan(dag_id: str, user: User, format: Format = "html") -> Response:
        await run_in_threadpool(_require, user, dag_id)
        runbook = await run_in_threadpool(_plan, dag_id)  # reads and parses a file
        data = plan_data(runbook)
        if format == "html":
            return _reply(format, plan_html(data))
        return _reply(format, "", plan_markdown(data), data)

    @app.get("/board")
    async def board(
        user: User,
        format: Format = "html",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = rundata.PAGE,
    ) -> Response:
        now = _now()
        rows = await run_in_threadpool(_board, user, now, offset, limit)
        if format == "json":
            return JSONResponse({"rollouts": rows, "at": now.isoformat()})
        return _reply("html", board_html(rows, now, ui_base()))

    @app.get("/calendar")
    async def calendar(
        user: User,
        start: Annotated[date | None, Query(alias="from")] = None,
        end: Annotated[date | None, Query(alias="to")] = None,
        format: CalendarFormat = "html",
    ) -> Response:
        from gonogo.core.documents import calendar as documents

        data = await run_in_threadpool(_calendar, user, start, end, _now())
        if format == "ics":
            return Response(
                documents.calendar_ics(data),
                media_type="text/calendar; charset=utf-8",
                headers={"Content-Disposition": 'inline; filename="change-calendar.ics"'},
            )
        html = documents.calendar_html(data, ui_base(), KJOREPLAN_ROUTE, refresh=60)
        return _reply(format, html, documents.calendar_markdown(data), data)

    @app.get("/early-life/{dag_id}")
    async def early_life(
        dag_id: str, user: User, run_id: str | None = None, format: Format = "html"
    ) -> Response:
        from gonogo.core.documents.earlylife import support_html, support_markdown
        from gonogo.core.earlylife import names

        runbook_id = names.runbook_of_dag(dag_id) or dag_id
        await run_in_threadpool(_require, user, names.early_life_dag(runbook_id))
        data = await run_in_threadpool(_early_life, dag_id, run_id or None, _now())
        return _reply(format, support_html(data), support_markdown(data), data)

    @app.get("/early-life/{dag_id}/agenda")
    async def meeting_agenda(
        dag_id: str,
        user: User,
        run_id: str | None = None,
        at: datetime | None = None,
        format: Format = "html",
    ) -> Response:
        from gonogo.core.earlylife import names
        from gonogo.core.earlylife.agenda import agenda_html, agenda_markdown

        runbook_id = names.runbook_of_dag(dag_id) or dag_id
        await run_in_threadpool(_require, user, names.early_life_dag(runbook_id))
        if at is not None and at.tzinfo is None:
            raise HTTPException(422, "at: give the meeting time with its offset (…+01:00)")
        data = await run_in_threadpool(_agenda, dag_id, run_id or None, at, _now())
        return _reply(format, agenda_html(data), agenda_markdown(data, data["title"]), data)

    @app.get("/runs/{dag_id}/{run_id}")
    async def run_view(dag_id: str, run_id: str, user: User, format: Format = "html") -> Response:
        await run_in_threadpool(_require, user, dag_id)
        data = await run_in_threadpool(_run_report, dag_id, run_id, _now())
        return _reply(format, run_html(data, ui_base()), report_markdown(data, ui_base()), data)

    @app.get("/report/{dag_id}/{run_id}")
    async def report(dag_id: str, run_id: str, user: User, format: Format = "html") -> Response:
        await run_in_threadpool(_require, user, dag_id)
        data = await run_in_threadpool(_run_report, dag_id, run_id, _now())
        html = report_html(data, ui_base(), refresh=None if data["end"] else 15)
        return _reply(format, html, report_markdown(data, ui_base()), data)

    return app
