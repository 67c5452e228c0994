"""The parts of Airflow's runtime a task reaches that the DAG tests stand in for.

Only the storage is stood in for (XComs and Variables, as dicts); the task's
own code runs as it does in Airflow.
"""

from __future__ import annotations

import json
from typing import Any

from gonogo.core import naming


class TaskInstance:
    """A task instance's XComs: what the task pulls (``"task"`` or ``"task:key"``) and pushes."""

    def __init__(self, pulled: dict[str, Any] | None = None, task_id: str = "") -> None:
        self.task_id = task_id
        self.pulled = dict(pulled or {})
        self.pushed: dict[str, Any] = {}

    def xcom_pull(self, task_ids: str, key: str = naming.RETURN_VALUE, **_: Any) -> Any:
        return self.pulled.get(task_ids if key == naming.RETURN_VALUE else f"{task_ids}:{key}")

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class Variables:
    """Variable.get and Variable.set over a dict of JSON text (set ``values`` per test)."""

    values: dict[str, str]

    @classmethod
    def get(cls, key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        text = cls.values.get(key)
        return default if text is None else json.loads(text)

    @classmethod
    def set(cls, key: str, value: Any, serialize_json: bool = False, **_: Any) -> None:
        cls.values[key] = json.dumps(value)
