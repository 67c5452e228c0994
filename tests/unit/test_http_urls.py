"""An http step's url: templates fill path segments and query values, never the host.

``gonogo validate`` refuses a url whose scheme, host or port a template could
choose, and a full url beside a connection (whose credentials would follow
it); the messages point at the url and say what to write. At run time each
value rendered into the path must stay inside its segment, however it is
spelled; these tests render the url parts with Jinja's sandbox, the
environment Airflow renders with.
"""

from __future__ import annotations

from typing import Any

import jinja2.sandbox
import pytest

from gonogo.core.runbook.loader import load_text
from gonogo.core.runbook.templating import joined_url, url, url_parts
from gonogo.errors import RunbookError, StepError

HEAD = """\
runbook: urls
title: Urls
service: svc
environment: test
change: {id: CHG1, type: standard}
params:
  path: {type: string, default: x, pattern: "^[a-z]+$"}
phases:
  - id: p
    steps:
      - id: s
        read_only: true
"""


def problems_of(http: str) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        load_text(HEAD + f"        http: {http}\n", "r.yaml")
    return [str(p) for p in caught.value.errors]


def test_a_path_with_a_connection_and_a_full_url_without_one_validate() -> None:
    for http in (
        '{url: "/api/{{ params.path }}/x?q={{ params.path }}", connection: api}',
        '{url: "https://api.example/{{ params.path }}?q={{ params.path }}"}',
        '{url: "https://api.example?q={{ params.path }}"}',
    ):
        load_text(HEAD + f"        http: {http}\n", "r.yaml")


@pytest.mark.parametrize(
    ("http", "message"),
    [
        (
            '{url: "{{ params.path }}/health"}',
            "{{ params.path }} may not choose the url's scheme, host or port: a template "
            "fills path segments and query values only; put the base URL in an Airflow "
            "connection and write connection: <its id>, url: /health",
        ),
        (
            '{url: "https://{{ params.path }}.example/health"}',
            "{{ params.path }} may not choose the url's scheme, host or port",
        ),
        (
            '{url: "https://api.example:{{ params.path }}/health"}',
            "{{ params.path }} may not choose the url's scheme, host or port",
        ),
        (
            '{url: "http{{ params.path }}://api.example/health"}',
            "{{ params.path }} may not choose the url's scheme, host or port",
        ),
        (
            '{url: "https://api.example/v1/health", connection: api}',
            "with a connection the url is a path: the host comes from connection 'api'; "
            "write url: /v1/health",
        ),
        (
            '{url: "{{ params.path }}/health", connection: api}',
            "with a connection the url is a path: the host comes from connection 'api'; "
            "write url: /health",
        ),
        (
            '{url: "//other.example/health", connection: api}',
            "write url: /other.example/health",
        ),
        (
            '{url: "/health"}',
            "the url needs http:// or https:// and a host, or a connection and a path "
            "starting with '/'",
        ),
    ],
)
def test_a_url_whose_host_a_template_or_the_runbook_could_misplace_is_refused(
    http: str, message: str
) -> None:
    (found,) = problems_of(http)
    assert found.startswith("r.yaml:13:21: phases[0].steps[0].http.url: ")
    assert message in found


def test_every_wrong_url_in_a_file_is_reported_with_its_line() -> None:
    text = HEAD + (
        '        http: {url: "{{ params.path }}/a"}\n'
        "      - id: t\n"
        "        read_only: true\n"
        "        http:\n"
        "          url: https://api.example/b\n"
        "          connection: api\n"
    )
    with pytest.raises(RunbookError) as caught:
        load_text(text, "r.yaml")
    assert [str(p).split(": ", 2)[:2] for p in caught.value.errors] == [
        ["r.yaml:13:21", "phases[0].steps[0].http.url"],
        ["r.yaml:17:16", "phases[0].steps[1].http.url"],
    ]


# -- at run time -------------------------------------------------------------------------------

_JINJA = jinja2.sandbox.SandboxedEnvironment()


def joined(text: str, **params: Any) -> str:
    """``text`` as an http step's url, rendered with these params and joined as run_http does."""
    rendered: list[Any] = []
    for part in url_parts(text):
        if isinstance(part, str):
            rendered.append(_JINJA.from_string(part).render(params=params))
        else:
            rendered.append(
                {k: _JINJA.from_string(v).render(params=params) for k, v in part.items()}
            )
    return joined_url(rendered)


def test_a_normal_path_value_is_sent_url_encoded() -> None:
    assert joined("/api/{{ params.path }}/status", path="release 4.2+ü") == (
        "/api/release%204.2%2B%C3%BC/status"
    )
    assert joined("/api/v{{ params.path }}.json", path="1..2") == "/api/v1..2.json"


def test_query_values_stay_url_encoded_and_may_hold_what_a_path_value_may_not() -> None:
    assert joined("/api?q={{ params.path }}", path="../a?b#c&d=1") == "/api?q=../a%3Fb%23c%26d%3D1"


def test_the_url_is_what_the_rehearsal_shows() -> None:
    text = "https://api.example/a/{{ params.path }}?q={{ params.path }}"
    shown = _JINJA.from_string(url(text)).render(params={"path": "x y&z"})
    assert joined(text, path="x y&z") == shown


@pytest.mark.parametrize(
    ("value", "held"),
    [
        ("../../admin", "holds '/'"),
        ("a/b", "holds '/'"),
        ("a\\b", "holds '\\'"),
        ("a?b", "holds '?'"),
        ("a#b", "holds '#'"),
        ("..%2fadmin", "holds a %-encoded '/'"),
        ("..%2Fadmin", "holds a %-encoded '/'"),
        ("..%252fadmin", "holds a %-encoded '/'"),
        ("a%5cb", "holds a %-encoded '\\'"),
        ("a%3fb", "holds a %-encoded '?'"),
        ("a%3Fb", "holds a %-encoded '?'"),
        ("a%23b", "holds a %-encoded '#'"),
        ("..", "would make a '.' or '..' segment"),
        (".", "would make a '.' or '..' segment"),
        ("%2e%2e", "would make a '.' or '..' segment"),
        ("%2E%2e", "would make a '.' or '..' segment"),
        (".%2E", "would make a '.' or '..' segment"),
        ("%252e%252e", "would make a '.' or '..' segment"),
    ],
)
def test_a_path_value_that_leaves_its_segment_is_refused(value: str, held: str) -> None:
    with pytest.raises(StepError) as caught:
        joined("/api/{{ params.path }}/status", path=value)
    assert str(caught.value).startswith("{{ params.path }}")
    assert held in str(caught.value)


def test_the_refusal_names_the_template_and_never_the_value() -> None:
    with pytest.raises(StepError) as caught:
        joined("/api/{{ params.path }}", path="s3cret-token/x")
    assert "{{ params.path }}" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_two_values_that_make_a_dot_segment_together_are_refused() -> None:
    with pytest.raises(StepError) as caught:
        joined("/api/{{ params.a }}{{ params.b }}/x", a=".", b=".")
    assert str(caught.value).startswith("{{ params.a }} and {{ params.b }} would make a '.'")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{{ params.path }}/health", "api.example"),
        ("{{ params.path }}/health", ""),
        ("https://{{ params.path }}/health", "api.example"),
        ("https://api.example:{{ params.path }}/health", "8443"),
    ],
)
def test_a_value_in_the_base_is_refused_at_run_time_too(text: str, value: str) -> None:
    with pytest.raises(StepError, match=r"may not choose the url's scheme, host or port"):
        joined(text, path=value)


@pytest.mark.parametrize(
    "http",
    [
        '{url: /status, connection: "{{ params.c }}"}',
        '{url: /status, connection: "it_{{ params.c }}"}',
        '{url: "https://h.example.org/s", headers: {Host: "{{ params.c }}"}}',
    ],
)
def test_a_value_never_chooses_the_credentials_or_the_host_header(http: str) -> None:
    text = (
        "runbook: c\ntitle: C\nservice: s\nenvironment: test\n"
        "change: {id: CHG1, type: standard}\nparams:\n  c: {default: x}\n"
        f"phases: [{{id: p, steps: [{{id: s, read_only: true, http: {http}}}]}}]\n"
    )
    with pytest.raises(RunbookError) as caught:
        load_text(text, "r.yaml")
    assert any("never a template" in str(p) for p in caught.value.errors), caught.value.errors
