"""Every write route of the installed Airflow is classified by gonogo's middleware.

An Airflow upgrade that adds a write route fails here until someone decides what
it may do to a gonogo run; until then the middleware refuses every write through it.
"""

from __future__ import annotations

from tests.dag.test_middleware import airflow_write_routes

from gonogo.server.middleware import ROUTES


def test_every_write_route_of_the_installed_airflow_is_classified() -> None:
    names = {route.name for route in airflow_write_routes()}
    assert len(names) > 50  # the listing found Airflow's API, not an empty app
    unclassified = sorted(names - set(ROUTES))
    assert unclassified == [], (
        f"classify these routes in gonogo.server.middleware.ROUTES: {unclassified}"
    )


def test_the_table_names_only_routes_the_installed_airflow_has() -> None:
    names = {route.name for route in airflow_write_routes()}
    assert sorted(set(ROUTES) - names) == []
