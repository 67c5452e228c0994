"""HTML rendering through Jinja2 with autoescaping on, for every template.

Jinja2 ships with Airflow and is a base dependency of gonogo, but it is imported
here, on first use, so ``gonogo validate`` does not pay for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from gonogo.core.timing.clock import format_minutes

TEMPLATES = Path(__file__).resolve().parent / "templates"


def clock(value: Any) -> str:
    """An ISO time as ``2026-12-05 22:05`` (its own offset kept); relative times as given."""
    if not value:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    return str(value)


def minutes(value: Any) -> str:
    """Seconds as ``1h5m``, ``12m`` or, under a minute, ``40s``; ``-`` for none."""
    if value is None or value == "":
        return "-"
    return format_minutes(timedelta(seconds=float(value)))


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = clock
    env.filters["minutes"] = minutes
    return env


def render(template: str, **context: Any) -> str:
    """Render one template; ``gantt`` (SVG we built and escaped) is inserted as markup."""
    import markupsafe

    if "gantt" in context:
        context["gantt"] = markupsafe.Markup(context["gantt"])
    return str(_environment().get_template(template).render(**context))
