"""A small client for Airflow's REST API, as one user sees it.

The CLI and the integration tests both use it: every call carries that user's
JWT, so Airflow's own server-side checks (assignment, four-eyes, roles) apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import requests

from gonogo.errors import ApprovalRefused, ClientError, Unreachable

TERMINAL_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: How long an answer is sent again while the API server cannot be reached.
UNREACHABLE_PATIENCE = 90.0
#: Entries asked for per page of a list endpoint: Airflow's default ``maximum_page_limit``.
PAGE = 100


def _q(value: str) -> str:
    return quote(value, safe="")


class AirflowClient:
    """One Airflow user talking to the API server at ``base_url``."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None

    def __repr__(self) -> str:  # never show the password
        return f"AirflowClient({self.base_url!r}, {self.username!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            try:
                response = self.session.post(
                    f"{self.base_url}/auth/token",
                    json={"username": self.username, "password": self._password},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise Unreachable(f"cannot reach Airflow at {self.base_url}: {exc}") from None
            if response.status_code not in (200, 201):
                raise ClientError(
                    f"Airflow refused the login of {self.username!r} ({response.status_code})"
                )
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A raw call; the caller looks at the status. ``path`` starts after ``/api/v2``."""
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token()}"}
        try:
            return self.session.request(
                method,
                f"{self.base_url}/api/v2{path}",
                headers=headers,
                timeout=self.timeout,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach Airflow at {self.base_url}: {exc}") from None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call that must succeed; its JSON body."""
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ClientError(f"{method} {path}: {response.status_code} {_detail(response)}")
        return response.json() if response.content else None

    def listed(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every entry of a list endpoint, page by page.

        The API server caps a page at ``[api] maximum_page_limit`` (100 by default)
        whatever ``limit`` asks for, so one call can silently hold only part of a
        run of 40 gates; the pages are read until ``total_entries`` are in.
        """
        found: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", path, params={**params, "limit": PAGE, "offset": len(found)})
            entries = page[key]
            found += entries
            if not entries or len(found) >= int(page.get("total_entries", len(found))):
                return found

    # -- DAGs and runs ---------------------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{_q(dag_id)}")  # type: ignore[no-any-return]

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, note: str | None = None
    ) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if note:
            body["note"] = note
        return self.call("POST", f"/dags/{_q(dag_id)}/dagRuns", json=body)["dag_run_id"]  # type: ignore[no-any-return]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")  # type: ignore[no-any-return]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        found = self.listed(
            f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", "task_instances"
        )
        return {ti["task_id"]: ti for ti in found}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        response = self.request(
            "GET",
            f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}",
            params={"full_content": "true"},
        )
        if response.status_code >= 400:
            raise ClientError(f"log of {task_id}: {response.status_code} {_detail(response)}")
        body = response.json()
        content = body.get("content", "")
        if isinstance(content, list):
            return "\n".join(_log_line(part) for part in content)
        return str(content)

    def import_errors(self) -> list[dict[str, Any]]:
        return self.listed("/importErrors", "import_errors")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        response = self.request(
            "GET",
            f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/xcomEntries/{_q(key)}",
            params={"deserialize": "true", "stringify": "false"},
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ClientError(f"xcom {task_id}/{key}: {response.status_code} {_detail(response)}")
        return response.json().get("value")

    def xcom_entries(self, dag_id: str, run_id: str, key: str) -> list[dict[str, Any]]:
        """Every task's XCom ``key`` of one run: task id, map index and timestamp, no value."""
        return self.listed(
            f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/~/xcomEntries",
            "xcom_entries",
            xcom_key=key,
        )

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's tasks; a gonogo step's ``owner`` is its runbook role."""
        return self.call("GET", f"/dags/{_q(dag_id)}/tasks")["tasks"]  # type: ignore[no-any-return]

    def gonogo(self, path: str, **params: Any) -> Any:
        """A JSON page of gonogo's plugin app (``/gonogo…``): the board, a run's report.

        It is served by the API server beside ``/api/v2`` and checks the same JWT.
        """
        try:
            response = self.session.get(
                f"{self.base_url}/gonogo{path}",
                headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/json"},
                params={**params, "format": "json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach Airflow at {self.base_url}: {exc}") from None
        if response.status_code == 404 and "detail" not in response.text:
            raise ClientError("the gonogo plugin is not installed in this Airflow's API server")
        if response.status_code >= 400:
            raise ClientError(f"GET /gonogo{path}: {response.status_code} {_detail(response)}")
        return response.json()

    # -- human-in-the-loop ---------------------------------------------------------------------

    def hitl_details(
        self, dag_id: str = "~", run_id: str = "~", *, pending: bool | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if pending is not None:
            params["response_received"] = str(not pending).lower()
        return self.listed(
            f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/hitlDetails", "hitl_details", **params
        )

    def _form_as_asked(self, path: str) -> dict[str, Any]:
        """Every field of the request's form at its default: an answer sends the whole form.

        Airflow's task refuses a form answered in part when it resumes, and gonogo's
        API server refuses it before that (422), so a comment alone is not enough
        where the form asks for more. Unreadable, the form is left to the server to judge.
        """
        response = self.request("GET", path)
        if response.status_code != 200:
            return {}
        form = response.json().get("params") or {}
        return {
            name: spec.get("value") if isinstance(spec, dict) else spec
            for name, spec in form.items()
        }

    def answer(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        option: str,
        comment: str | None = None,
        map_index: int = -1,
    ) -> requests.Response:
        """Answer one HITL request. Returns the response; see :meth:`answer_or_raise`.

        When the API server cannot be reached mid-answer (it died, say), nobody
        knows whether the answer was stored: it is sent again until the server is
        back, and a 409 then is a success if the stored answer is this user's same one.
        """
        body: dict[str, Any] = {"chosen_options": [option], "params_input": {}}
        path = f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/{map_index}/hitlDetails"
        if comment is not None:
            body["params_input"] = {**self._form_as_asked(path), "comment": comment}
        server_errors = 0
        unsure_since: float | None = None
        for _ in range(60):
            try:
                response = self.request("PATCH", path, json=body)
            except Unreachable:
                unsure_since = unsure_since or time.monotonic()
                if time.monotonic() - unsure_since > UNREACHABLE_PATIENCE:
                    raise
                time.sleep(2)
                continue
            if response.status_code == 425:  # gonogo holds back answers to a just-opened request
                time.sleep(float(response.headers.get("retry-after", "1")))
            elif response.status_code >= 500 and server_errors < 2:
                # Nothing was stored (a stored answer makes the next try a 409): safe to repeat.
                server_errors += 1
                time.sleep(2)
            elif response.status_code == 409 and unsure_since is not None:
                stored = self.request("GET", path)
                return stored if self._is_mine(stored, option) else response
            else:
                return response
        return response

    def _is_mine(self, stored: requests.Response, option: str) -> bool:
        """Whether a stored HITL answer is this user's, with ``option``."""
        if stored.status_code != 200:
            return False
        detail = stored.json()
        user = detail.get("responded_by_user") or {}
        return bool(
            detail.get("response_received")
            and detail.get("chosen_options") == [option]
            and self.username in (user.get("name"), user.get("id"))
        )

    def answer_or_raise(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        response = self.answer(*args, **kwargs)
        if response.status_code >= 400:
            raise ApprovalRefused(f"{response.status_code}: {_detail(response)}")
        return response.json()  # type: ignore[no-any-return]

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for(
        self, what: str, probe: Callable[[], Any], *, timeout: float = 120, interval: float = 0.5
    ) -> Any:
        """Call ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def wait_task(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float = 120
    ) -> dict[str, Any]:
        wanted = set(states)

        def probe() -> Any:
            ti = self.task_instances(dag_id, run_id).get(task_id)
            return ti if ti and ti.get("state") in wanted else None

        return self.wait_for(f"{task_id} in {sorted(wanted)}", probe, timeout=timeout)  # type: ignore[no-any-return]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        def probe() -> Any:
            run = self.run(dag_id, run_id)
            return run if run.get("state") in TERMINAL_RUN_STATES else None

        return self.wait_for(f"run {run_id} of {dag_id} to finish", probe, timeout=timeout)  # type: ignore[no-any-return]

    def wait_pending(
        self, dag_id: str, run_id: str, task_id: str, timeout: float = 120
    ) -> dict[str, Any]:
        """Wait until a HITL request for ``task_id`` is open."""

        def probe() -> Any:
            for detail in self.hitl_details(dag_id, run_id, pending=True):
                if detail["task_instance"]["task_id"] == task_id:
                    return detail
            return None

        return self.wait_for(f"a request for {task_id}", probe, timeout=timeout)  # type: ignore[no-any-return]


def _log_line(part: Any) -> str:
    """One structured log record as the text a person reads, errors included."""
    if not isinstance(part, dict):
        return str(part)
    line = str(part.get("event", ""))
    for error in part.get("error_detail") or []:
        if isinstance(error, dict):
            line += f"\n{error.get('exc_type')}: {error.get('exc_value')}"
    return line


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return detail if isinstance(detail, str) else str(detail)[:500]
