"""A Gantt chart of a plan (and of what happened) as a self-contained SVG.

SVG built as text keeps the HTML documents single files that print the same
everywhere, with no charting library and no script. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from html import escape

from gonogo.core.timing.clock import format_clock

ROW = 22
LABEL_WIDTH = 260
CHART_WIDTH = 460
AXIS = 24

#: Fill colours by result; anything else is drawn neutral.
FILLS = {
    "planned": "#c9d3df",
    "success": "#2e7d32",
    "GO": "#2e7d32",
    "failed": "#c62828",
    "upstream_failed": "#c62828",
    "NOGO": "#c62828",
    "running": "#f9a825",
    "awaiting_input": "#f9a825",
    "waiting": "#f9a825",
    "skipped": "#9e9e9e",
}


@dataclass(frozen=True)
class Bar:
    """One row: a step (a bar) or a gate (a milestone), in minutes from the plan's start."""

    label: str
    milestone: bool
    planned_start: float | None
    planned_minutes: float
    actual_start: float | None = None
    actual_minutes: float | None = None
    result: str = ""


def gantt_svg(bars: Sequence[Bar], title: str = "Timeline") -> str:
    """The chart: planned as a light bar, actual (when given) as a coloured bar under it."""
    ends = [0.0]
    for b in bars:
        if b.planned_start is not None:
            ends.append(b.planned_start + b.planned_minutes)
        if b.actual_start is not None:
            ends.append(b.actual_start + (b.actual_minutes or 0))
    starts = [0.0] + [
        s for b in bars for s in (b.planned_start, b.actual_start) if s is not None and s < 0
    ]
    low, high = min(starts), max(ends)
    span = max(high - low, 1.0)
    scale = CHART_WIDTH / span
    height = AXIS + ROW * len(bars) + 4
    width = LABEL_WIDTH + CHART_WIDTH + 30  # room for the last tick label

    def x(minutes: float) -> float:
        return round(LABEL_WIDTH + (minutes - low) * scale, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
    ]
    step = _tick(span)
    tick = 0.0
    while tick <= span + 1e-9:
        at = x(low + tick)
        parts.append(
            f'<line x1="{at}" y1="{AXIS - 6}" x2="{at}" y2="{height}" stroke="#e0e0e0"/>'
            f'<text x="{at}" y="{AXIS - 10}" text-anchor="middle" fill="#555">'
            f"{escape(_clock(low + tick))}</text>"
        )
        tick += step
    for row, bar in enumerate(bars):
        top = AXIS + row * ROW
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{top + 14}" text-anchor="end">'
            f"{escape(_short(bar.label))}</text>"
        )
        if bar.planned_start is not None:
            parts.append(_shape(bar, x(bar.planned_start), bar.planned_minutes * scale, top + 2, 8))
        if bar.actual_start is not None:
            actual = Bar(bar.label, bar.milestone, None, 0, result=bar.result or "running")
            parts.append(
                _shape(
                    actual,
                    x(bar.actual_start),
                    (bar.actual_minutes or 0) * scale,
                    top + 11,
                    8,
                    FILLS.get(bar.result, "#546e7a"),
                )
            )
    parts.append("</svg>")
    return "".join(parts)


def _shape(bar: Bar, left: float, length: float, top: float, size: float, fill: str = "") -> str:
    fill = fill or FILLS["planned"]
    if bar.milestone:
        half = size / 2 + 1
        cx, cy = left, top + size / 2
        return (
            f'<polygon class="milestone" points="{cx},{cy - half} {cx + half},{cy} '
            f'{cx},{cy + half} {cx - half},{cy}" fill="{fill}" stroke="#333" stroke-width="0.5"/>'
        )
    return (
        f'<rect class="bar" x="{left}" y="{top}" width="{max(round(length, 1), 2)}" '
        f'height="{size}" fill="{fill}"/>'
    )


def _tick(span: float) -> float:
    for candidate in (5, 10, 15, 30, 60, 120, 240, 480, 1440):
        if span / candidate <= 10:
            return float(candidate)
    return span / 10


def _clock(minutes: float) -> str:
    return format_clock(timedelta(minutes=round(minutes)))


def _short(label: str, limit: int = 42) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
