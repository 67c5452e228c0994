"""Templates in http requests: every value is inserted as data for the place it goes.

Airflow renders an http action's strings with Jinja just before the request.
A value rendered into a URL could add a query string or a fragment, and one
rendered into a JSON body could close a string and add fields. So each
``{{ … }}`` gets the filter that encodes it for its place: ``urlencode`` in a
URL, ``tojson`` in a body; header values are plain strings already. The text
around the templates is made Jinja-literal, so a ``{#`` in a body or an
expected text is sent as written. Shell commands have their own, stricter
treatment in :mod:`gonogo.core.shell`.
"""

from __future__ import annotations

import re

from gonogo.core.gates import literal

_TEMPLATE = re.compile(r"{{-?(.*?)-?}}", re.S)


def templates(text: str) -> list[str]:
    """The expressions of every ``{{ … }}`` in ``text``, in order."""
    return [m.group(1).strip() for m in _TEMPLATE.finditer(text)]


def with_filter(text: str, name: str | None, *, keep_leading: bool = False) -> str:
    """``text`` with every template passed through the Jinja filter ``name`` and the rest literal.

    ``keep_leading`` leaves a template at the very start alone: in a URL it is
    the base (scheme and host) that the runbook chose to take from a value.
    """
    parts: list[str] = []
    position = 0
    for match in _TEMPLATE.finditer(text):
        parts.append(literal(text[position : match.start()]))
        expression = match.group(1).strip()
        if name is None or (keep_leading and match.start() == 0):
            parts.append("{{ " + expression + " }}")
        else:
            parts.append("{{ (" + expression + ") | " + name + " }}")
        position = match.end()
    parts.append(literal(text[position:]))
    return "".join(parts)


def url(text: str) -> str:
    """A URL whose templates are URL-encoded, except a leading one that names the base."""
    return with_filter(text, "urlencode", keep_leading=True)


def json_body(text: str) -> str:
    """A request body whose templates are inserted as JSON values (strings quoted and escaped)."""
    return with_filter(text, "tojson")


def quoted_in_json(text: str) -> list[str]:
    """The templates of a JSON body written inside a JSON string, where ``tojson`` would break out.

    ``{"v": "{{ params.v }}"}`` is refused; ``{"v": {{ params.v }}}`` inserts
    the value as a JSON string.
    """
    found: list[str] = []
    inside = False
    i = 0
    while i < len(text):
        match = _TEMPLATE.match(text, i)
        if match is not None:
            if inside:
                found.append(match.group(1).strip())
            i = match.end()
            continue
        c = text[i]
        if inside and c == "\\":
            i += 2
            continue
        if c == '"':
            inside = not inside
        i += 1
    return found
