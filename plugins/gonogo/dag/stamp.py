"""The secret the trigger stamp is signed with, from Airflow's config (see gonogo.core.runs.stamp)."""

from __future__ import annotations

SETTING = "[gonogo] stamp_secret (AIRFLOW__GONOGO__STAMP_SECRET), else [api_auth] jwt_secret"


def stamp_secret() -> str:
    """``[gonogo] stamp_secret`` when set, else Airflow's ``[api_auth] jwt_secret``; "" for neither.

    The API server signs with it and ``before_start`` checks with it, so every
    component that runs either must see the same value: ``airflow standalone``
    keeps ``jwt_secret`` in its one airflow.cfg, and docker-compose.yml gives every
    container the same environment.
    """
    from airflow.configuration import conf

    own = conf.get("gonogo", "stamp_secret", fallback="") or ""
    return own or (conf.get("api_auth", "jwt_secret", fallback="") or "")
