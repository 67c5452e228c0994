"""Who is asking, as the middleware sees it, is who Airflow says is asking.

Real tokens from the installed auth manager (SimpleAuthManager), decoded by its
own validator and resolved by Airflow's own ``get_user``; only the revoked-token
lookup, a database read, is answered "not revoked". The real API server runs in
tests/integration/test_trust.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gonogo.server import middleware
from gonogo.server.middleware import Caller, Refuse


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.revoked_token import RevokedToken

    # The signer and validator are cached for the process: one long key for all of them.
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "k" * 64)
    monkeypatch.setattr(RevokedToken, "is_revoked", classmethod(lambda cls, jti, **kw: False))
    manager = create_auth_manager()

    def make(name: str) -> str:
        return str(manager.generate_jwt(SimpleAuthManagerUser(username=name, role="user")))

    return make


def scope(*headers: tuple[str, str], state: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "PATCH",
        "path": "/api/v2/dags/ours",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers],
        "state": state or {},
    }


def who(request_scope: dict[str, Any]) -> Caller | Refuse | None:
    return asyncio.run(middleware._who(request_scope))


def name(found: Caller | Refuse | None) -> str | None:
    assert not isinstance(found, Refuse), found
    return None if found is None else found.name


@pytest.mark.parametrize(
    ("cookie", "caller"),
    [
        ('pref={"a":1}; _token={t}', "kari"),
        ("theme=dark;_token={t}", "kari"),
        ('a="b; c"; _token={t}; other=x y', "kari"),
        # starlette keeps the last of two: Airflow finds no valid session, and answers 401.
        ("_token=garbage; _token={t}", "kari"),
        ("_token={t}; _token=garbage", None),
    ],
)
def test_a_cookie_airflow_reads_gives_the_same_caller(
    token: Any, cookie: str, caller: str | None
) -> None:
    assert name(who(scope(("Cookie", cookie.replace("{t}", token("kari")))))) == caller


def test_a_basic_authorization_leaves_the_cookie_as_the_caller(token: Any) -> None:
    found = who(scope(("Authorization", "Basic eDp4"), ("Cookie", f"_token={token('kari')}")))
    assert name(found) == "kari"


def test_the_bearer_token_is_the_caller_beside_a_stale_cookie(token: Any) -> None:
    found = who(scope(("Authorization", f"Bearer {token('kari')}"), ("Cookie", "_token=stale")))
    assert name(found) == "kari"
    both = who(
        scope(("Authorization", f"bearer {token('kari')}"), ("Cookie", f"_token={token('kari')}"))
    )
    assert name(both) == "kari"


def test_a_token_and_a_cookie_of_different_users_are_refused(token: Any) -> None:
    found = who(
        scope(("Authorization", f"Bearer {token('ola')}"), ("Cookie", f"_token={token('kari')}"))
    )
    assert isinstance(found, Refuse)
    assert found.status == 400
    assert "different users" in found.detail


@pytest.mark.parametrize("header", ["Authorization", "Cookie"])
def test_two_identity_headers_are_refused_even_when_both_name_one_user(
    token: Any, header: str
) -> None:
    value = f"Bearer {token('kari')}" if header == "Authorization" else f"_token={token('kari')}"
    found = who(scope((header, value), (header, value)))
    assert isinstance(found, Refuse)
    assert found.status == 400


def test_a_bearer_token_airflow_refuses_is_refused(token: Any) -> None:
    found = who(
        scope(("Authorization", "Bearer not-a-token"), ("Cookie", f"_token={token('kari')}"))
    )
    assert isinstance(found, Refuse)
    assert found.status == 401


def test_no_credential_is_no_caller_and_airflow_answers(token: Any) -> None:
    assert who(scope()) is None
    assert who(scope(("Cookie", "_token=expired"))) is None


def test_the_user_airflow_built_from_the_session_is_the_caller(token: Any) -> None:
    """``JWTRefreshMiddleware`` runs first and may hand ``get_user`` a refreshed user."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import USER_INJECTED_BY_TRUSTED_MIDDLEWARE

    refreshed = SimpleAuthManagerUser(username="kari-refreshed", role="user")
    state = {"user": refreshed, "user_authenticated_via": USER_INJECTED_BY_TRUSTED_MIDDLEWARE}
    found = who(scope(("Cookie", f"_token={token('kari')}"), state=state))
    assert name(found) == "kari-refreshed"
    # A user some other code left in the request state, without Airflow's marker, is not.
    stray = who(scope(("Cookie", f"_token={token('kari')}"), state={"user": refreshed}))
    assert name(stray) == "kari"
