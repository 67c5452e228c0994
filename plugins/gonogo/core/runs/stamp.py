"""The trigger stamp: who started a run, signed, so a task can tell it was the API server's.

The API server's middleware writes ``{id, name, sig}`` into a gonogo run's conf
when a person triggers it; ``sig`` is an HMAC over the DAG, the run id and the
person, keyed by a secret from Airflow's config. A run started any other way
(the CLI, another DAG, a database write) has no valid stamp, and
``before_start`` refuses it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any


def _key(secret: str) -> bytes:
    # A key of gonogo's own, derived from the configured secret, so the stamp never
    # signs with the secret itself.
    return hmac.new(secret.encode(), b"gonogo trigger stamp", hashlib.sha256).digest()


def sign(secret: str, dag_id: str, run_id: str, user_id: str, user_name: str) -> str:
    # A JSON list, so no field can reach into the next ("a,b" + "c" is not "a" + "b,c").
    message = json.dumps([dag_id, run_id, user_id, user_name], separators=(",", ":"))
    return hmac.new(_key(secret), message.encode(), hashlib.sha256).hexdigest()


def stamp(secret: str, dag_id: str, run_id: str, user_id: str, user_name: str) -> dict[str, str]:
    """The conf value the API server records for a run a person triggered."""
    return {
        "id": user_id,
        "name": user_name,
        "sig": sign(secret, dag_id, run_id, user_id, user_name),
    }


def verified(secret: str, dag_id: str, run_id: str, found: Any) -> dict[str, str] | None:
    """The stamp's ``{id, name}`` when its signature holds for this DAG and run, else None."""
    if not isinstance(found, Mapping):
        return None
    user_id, name, sig = found.get("id"), found.get("name"), found.get("sig")
    if not all(isinstance(v, str) for v in (user_id, name, sig)) or not user_id:
        return None
    expected = sign(secret, dag_id, run_id, str(user_id), str(name))
    if not hmac.compare_digest(expected, str(sig)):
        return None
    return {"id": str(user_id), "name": str(name)}
