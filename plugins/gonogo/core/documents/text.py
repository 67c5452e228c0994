"""Escaping runbook text for Markdown, where raw HTML would otherwise pass through.

Markdown renderers (Airflow's DAG docs, an ITSM attachment viewer) render inline
HTML, so a title such as ``<img src=x onerror=…>`` must reach them as text.
"""

from __future__ import annotations

import re

_MD = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BREAKS = re.compile(r"[ \t]*[\r\n]+[ \t\r\n]*")


def md_text(value: object) -> str:
    """Runbook text as Markdown text: HTML special characters become entities."""
    return "".join(_MD.get(ch, ch) for ch in str(value))


def md_line(value: object) -> str:
    """Text for one line (a list item, a heading): its line breaks become spaces.

    What a person typed (a comment) may hold line breaks; on a line of its own
    after one, ``## …`` or ``- …`` would be a heading or an entry of the document.
    """
    return _BREAKS.sub(" ", md_text(value))


def md_cell(value: object) -> str:
    """Text for one Markdown table cell: also no ``|`` and no line breaks."""
    return md_line(value).replace("|", "\\|")
