"""A static check of the team deployment: docker-compose.yml against what gonogo pins and ships."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import EXAMPLES, ROOT

SERVICES = {
    "postgres",
    "redis",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def pinned_airflow() -> str:
    found = re.search(r'"apache-airflow==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert found, "pyproject.toml must pin apache-airflow=="
    return found.group(1)


def test_the_image_is_the_pinned_airflow_version() -> None:
    base = re.search(r"^FROM apache/airflow:(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert base, "the Dockerfile builds FROM the official apache/airflow image"
    assert base.group(1).split("-")[0] == pinned_airflow()


def test_the_services_are_the_team_topology(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    missing = [
        name for name, service in compose["services"].items() if "healthcheck" not in service
    ]
    assert missing == []


def test_the_executor_is_celery_with_postgres_and_redis(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if not name.startswith("airflow-"):
            continue
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name


def test_every_mounted_path_exists(compose: dict[str, Any]) -> None:
    env = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            source = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], source)
            if source.startswith((".", "/")):
                path = ROOT / source
                example = path.with_name(path.name.replace(".json", ".example.json"))
                assert path.exists() or example.exists(), (
                    f"{name} mounts {source}, which does not exist"
                )


def test_the_real_env_file_is_ignored_and_an_example_is_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and "deploy/passwords.json" in ignored
    assert (ROOT / ".env.example").exists() and (
        ROOT / "deploy" / "passwords.example.json"
    ).exists()


def test_the_approvers_of_the_examples_exist_in_the_deployment() -> None:
    from gonogo import load_file

    env = (ROOT / ".env.example").read_text()
    users = {
        entry.split(":")[0] for entry in re.search(r"AIRFLOW_USERS=(\S+)", env).group(1).split(",")
    }
    for path in EXAMPLES:
        runbook, _ = load_file(path)
        for role in runbook.roles.values():
            assert set(role.users) <= users, f"{path.name}: {set(role.users) - users} missing"
    assert Path(ROOT / "deploy" / "passwords.example.json").read_text().count(":") == len(users)


def test_workers_wait_for_an_api_server_that_restarts(compose: dict[str, Any]) -> None:
    """A task resumed while the API server restarts starts once it is back (README, Crashes)."""
    for name, service in compose["services"].items():
        if name.startswith("airflow-"):
            env = service["environment"]
            assert int(env["AIRFLOW__WORKERS__EXECUTION_API_RETRIES"]) >= 10, name
            assert float(env["AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN"]) >= 5, name
