"""Every error gonogo raises on purpose.

The hierarchy::

    GonogoError
    ├── RunbookError          one or more problems in a runbook file, each located
    │   └── CalendarError     one or more problems in the calendar file, each located
    ├── GateError             a gate could not be opened or decided (e.g. no eligible approver)
    ├── StepError             a technical step did not meet its expectations
    ├── RollbackError         a compensation failed; the change is only partly undone
    ├── TimePlanError         a planned start outside the window, or a time that cannot be read
    ├── ItsmError             the ITSM refused the change or a request, in its own words
    ├── RehearsalError        a rehearsal asked about a param, gate or step the runbook lacks
    └── ClientError           the CLI could not talk to Airflow or was refused
        ├── Unreachable       no answer from Airflow at all (down, restarting, no network)
        └── ApprovalRefused   Airflow refused an answer (not assigned, already answered, …)

A traceback is never the user interface: the CLI prints ``str(error)`` for each
of these and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


class GonogoError(Exception):
    """Base class of every error gonogo raises on purpose."""


class ItsmError(GonogoError):
    """The ITSM refused the change or a request; the message quotes the ITSM."""


@dataclass(frozen=True, order=True)
class Problem:
    """One located finding in a runbook file.

    Ordering is by file and position so a report reads top to bottom.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = field(default="error", compare=False)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        prefix = "warning: " if self.severity == "warning" else ""
        subject = f"{self.path}: " if self.path else ""
        return f"{where}: {prefix}{subject}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


class RunbookError(GonogoError):
    """A runbook file has at least one error. Carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class CalendarError(RunbookError):
    """The calendar file (maintenance windows, freezes, dependencies) has at least one error."""


class GateError(GonogoError):
    """A gate cannot be opened or decided."""


class StepError(GonogoError):
    """A technical step ran but did not do what the runbook expects."""


class RollbackError(GonogoError):
    """A compensation failed; the record says what was and was not undone."""


class TimePlanError(GonogoError):
    """A planned start outside the change window, or one that is not a time."""


class RehearsalError(GonogoError):
    """A rehearsal was asked about a param, gate or step the runbook does not have."""


class ClientError(GonogoError):
    """The CLI could not reach Airflow, or Airflow answered with an error."""


class Unreachable(ClientError):
    """Airflow did not answer at all: whatever was sent may or may not have arrived."""


class ApprovalRefused(ClientError):
    """Airflow refused an answer to a gate request."""
