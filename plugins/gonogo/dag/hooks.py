"""What a task checks before its work and records after it, kept out of the serialized DAG.

Airflow's ``pre_execute=`` and ``post_execute=`` operator arguments run a function
before and after ``execute``. The DAG processor serializes them as their source
code, read with ``inspect.getsource`` for every task at every parse: an eighth of the
time it spends serializing a loader file's DAGs, and the same few functions' source
stored again in every task of every serialized DAG (bench/README.md, "Where a
changed runbook's time goes"). The task runner also calls a task's own ``pre_execute`` and
``post_execute`` methods, at the same two points and on a deferred task's resume
too, and an attribute that is not an operator argument is not serialized. So a
gonogo task keeps its hooks in :attr:`Hooked.run_before` and
:attr:`Hooked.run_after`, set by :func:`hooked`, and runs them from those methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Hook = Callable[[Any], None]


class Hooked:
    """A task that runs :attr:`run_before` before its work and :attr:`run_after` after it.

    No ``__init__`` of its own: Airflow would then merge the default arguments once
    more for each class of the task (see :class:`gonogo.dag.hitl.Request`).
    """

    run_before: Hook | None = None
    run_after: Hook | None = None

    def pre_execute(self, context: Any) -> None:
        if self.run_before is not None:
            self.run_before(context)

    def post_execute(self, context: Any, result: Any = None) -> None:
        # Airflow's task runner passes the context alone to an overriding post_execute.
        if self.run_after is not None:
            self.run_after(context)


T = TypeVar("T", bound=Hooked)


def hooked(task: T, before: Hook | None = None, after: Hook | None = None) -> T:
    """``task`` with ``before`` run before its work and ``after`` once the work succeeded."""
    task.run_before, task.run_after = before, after
    return task
