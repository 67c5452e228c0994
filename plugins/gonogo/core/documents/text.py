"""Escaping runbook text for Markdown, where raw HTML would otherwise pass through.

Markdown renderers (Airflow's DAG docs, an ITSM attachment viewer) render inline
HTML, so a title such as ``<img src=x onerror=…>`` must reach them as text.
"""

from __future__ import annotations

_MD = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_text(value: object) -> str:
    """Runbook text as Markdown text: HTML special characters become entities."""
    return "".join(_MD.get(ch, ch) for ch in str(value))


def md_cell(value: object) -> str:
    """Text for one Markdown table cell: also no ``|`` and no line breaks."""
    return md_text(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")
