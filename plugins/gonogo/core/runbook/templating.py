"""Templates in http requests: every value is inserted as data for the place it goes.

Airflow renders an http action's strings with Jinja just before the request.
A value rendered into a URL could add a query string or a fragment, and one
rendered into a JSON body could close a string and add fields. So each
``{{ … }}`` gets the filter that encodes it for its place: ``urlencode`` in a
URL, ``tojson`` in a body; header values are plain strings already. The text
around the templates is made Jinja-literal, so a ``{#`` in a body or an
expected text is sent as written. Shell commands have their own, stricter
treatment in :mod:`gonogo.core.runbook.shell`.

A URL's scheme, host and port are never a template's: with a ``connection``
the url is a path and the host is the connection's, otherwise the runbook
writes the host (:func:`url_problem`). A value fills path segments and query
values only, and one in the path stays inside its segment: ``urlencode``
leaves ``/`` as it is, so :func:`joined_url` refuses a path value holding
``/``, ``\\``, ``?``, ``#`` or a ``.``/``..`` segment, also %-encoded.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from gonogo.core.runs.gates import literal
from gonogo.errors import StepError

_TEMPLATE = re.compile(r"{{-?(.*?)-?}}", re.S)


def templates(text: str) -> list[str]:
    """The expressions of every ``{{ … }}`` in ``text``, in order."""
    return [m.group(1).strip() for m in _TEMPLATE.finditer(text)]


def with_filter(text: str, name: str | None) -> str:
    """``text`` with each template passed through the Jinja filter ``name``, the rest literal."""
    parts: list[str] = []
    position = 0
    for match in _TEMPLATE.finditer(text):
        parts.append(literal(text[position : match.start()]))
        parts.append(_filtered(match.group(1).strip(), name))
        position = match.end()
    parts.append(literal(text[position:]))
    return "".join(parts)


def _filtered(expression: str, name: str | None) -> str:
    return (
        "{{ " + expression + " }}" if name is None else "{{ (" + expression + ") | " + name + " }}"
    )


def url(text: str) -> str:
    """A URL whose templates are URL-encoded: what :func:`joined_url` makes of :func:`url_parts`."""
    return with_filter(text, "urlencode")


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


# -- where a URL's values may go ---------------------------------------------------------------

#: A full URL's scheme and authority (userinfo, host, port): everything before the path.
_BASE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
_HTTP_BASE = re.compile(r"https?://[^/?#]+", re.IGNORECASE)

#: What a path value may not hold, in any of its %-decodings: it would leave its segment.
_OUT_OF_SEGMENT = ("/", "\\", "?", "#")


def url_problem(text: str, connection: str | None) -> str | None:
    """Why ``text`` cannot be an http step's url, or None; the message names the spelling to use.

    A value that chose the scheme, host or port would choose where the request,
    its headers and a connection's credentials go. With a connection the host
    is the connection's and the url a path; without one the runbook writes it.
    """
    if connection is not None:
        if text.startswith("/") and not text.startswith("//"):
            return None
        return (
            "with a connection the url is a path: the host comes from connection "
            f"{connection!r}; write url: {_path_of(text)}"
        )
    first = _TEMPLATE.search(text)
    base = _BASE.match(text)
    if first is not None and (base is None or first.start() < base.end()):
        return (
            f"{{{{ {first.group(1).strip()} }}}} may not choose the url's scheme, host or port: "
            "a template fills path segments and query values only; put the base URL in an "
            f"Airflow connection and write connection: <its id>, url: {_path_of(text)}"
        )
    if _HTTP_BASE.match(text) is None:
        return (
            "the url needs http:// or https:// and a host, or a connection and a path "
            "starting with '/'"
        )
    return None


def _path_of(text: str) -> str:
    """``text`` without its base (a written or templated scheme and host): the path to write."""
    scheme = text.find("://")
    if scheme >= 0:
        rest = text[scheme + 3 :]
        rest = re.sub(r"^[^/?#]*", "", rest)  # the authority
    elif (first := _TEMPLATE.match(text)) is not None:
        rest = text[first.end() :]
    else:
        rest = text
    return "/" + rest.lstrip("/")


def url_parts(text: str) -> list[str | dict[str, str]]:
    """A URL as Airflow should render it: literal text, and each template as its own part.

    A template's part is ``{"template": …, "value": …}``, which renders to the
    template as written and its URL-encoded value, so :func:`joined_url` can
    check each value for its place and name it without showing it.
    """
    parts: list[str | dict[str, str]] = []
    position = 0
    for match in _TEMPLATE.finditer(text):
        if match.start() > position:
            parts.append(literal(text[position : match.start()]))
        expression = match.group(1).strip()
        parts.append(
            {
                "template": literal("{{ " + expression + " }}"),
                "value": _filtered(expression, "urlencode"),
            }
        )
        position = match.end()
    if position < len(text):
        parts.append(literal(text[position:]))
    return parts


def joined_url(parts: list[Any]) -> str:
    """The URL from rendered :func:`url_parts`; refused if a value chose the host or left its path.

    The runbook's own text decides where the path ends (its first ``?`` or
    ``#``); every value before that is a path value. Raises
    :class:`~gonogo.errors.StepError` naming the template, never its value.
    """
    text = ""
    values: list[tuple[int, int, str]] = []  # where each path value is in the URL, its template
    path_end: int | None = None
    for part in parts:
        if isinstance(part, str):
            found = re.search(r"[?#]", part)
            if path_end is None and found is not None:
                path_end = len(text) + found.start()
            text += part
            continue
        template, value = str(part["template"]), str(part["value"])
        if path_end is None:
            refused = _leaves_segment(value)
            if refused is not None:
                raise StepError(
                    f"{template} in the url's path holds {refused}; a path value stays inside "
                    "its segment: '/', '\\', '?', '#' and a '.' or '..' segment are refused, "
                    "also %-encoded"
                )
            values.append((len(text), len(text) + len(value), template))
        text += value
    base = _BASE.match(text)
    base_end = base.end() if base is not None else 1  # a relative URL starts with its own '/'
    in_base = [t for start, _, t in values if start < base_end]
    if in_base:
        raise StepError(f"{in_base[0]} may not choose the url's scheme, host or port")
    path = text[: len(text) if path_end is None else path_end]
    for segment in re.finditer(r"[^/]+", path):
        inside = [t for s, e, t in values if s < segment.end() and e > segment.start()]
        if inside and _decoded(segment.group()) in (".", ".."):
            raise StepError(
                f"{' and '.join(inside)} would make a '.' or '..' segment in the url's path, "
                "which climbs out of the path the runbook wrote"
            )
    return text


def _decodings(value: str) -> list[str]:
    """``value`` and each %-decoding of it until nothing changes: ``%252f``, ``%2f``, ``/``."""
    found = [value]
    while (decoded := unquote(found[-1])) != found[-1]:
        found.append(decoded)
    return found


def _decoded(value: str) -> str:
    return _decodings(value)[-1]


def _leaves_segment(encoded: str) -> str | None:
    """What in a rendered (URL-encoded) path value would take it out of its segment, or None."""
    for depth, text in enumerate(_decodings(encoded)):
        for character in _OUT_OF_SEGMENT:
            if character in text:
                # 0 is the encoded value, 1 the value itself, deeper the value's own %-encoding
                return f"'{character}'" if depth <= 1 else f"a %-encoded '{character}'"
    return None
