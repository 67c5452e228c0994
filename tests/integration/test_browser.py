"""Issue 13 in a real browser: an approver follows the board's deep link and answers.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by
``.ci/run``) drives the Airflow UI with the gonogo views inside it. Screenshots
of every page land in ``tests/artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests.integration.conftest import USERS, Airflow

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.long]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
DAG = "it-gate"


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        return "headless Chromium is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, what: str, condition: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition, what)


def log_in(driver: Any, airflow: Airflow, user: str) -> None:
    """Through the Airflow login form, as a person would."""
    from selenium.webdriver.common.by import By

    password = next(u.password for u in USERS if u.name == user)
    driver.delete_all_cookies()
    driver.get(airflow.stack.base_url + "/")
    field = wait(driver, "the login form", lambda d: d.find_elements(By.NAME, "username") or None)[
        0
    ]
    field.send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, "the login", lambda d: d.get_cookie("_token"))


def in_view(driver: Any, what: str, find: Any, timeout: float = 60) -> Any:
    """Look inside the gonogo view's iframe until ``find(driver)`` returns something."""
    from selenium.webdriver.common.by import By

    def probe(d: Any) -> Any:
        # The UI swaps the view's iframe while a page loads: a frame that went
        # away between finding it and switching to it is "not yet", not a failure.
        try:
            d.switch_to.default_content()
            frames = d.find_elements(By.TAG_NAME, "iframe")
            if not frames:
                return None
            d.switch_to.frame(frames[0])
            return find(d)
        except Exception:
            return None

    return wait(driver, what, probe, timeout)


def shot(driver: Any, name: str) -> Path:
    driver.switch_to.default_content()
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_an_approver_answers_from_the_board_and_reads_the_report(
    airflow: Airflow, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    airflow.wait_dags(DAG)
    run = airflow.operator.trigger(DAG)
    for role, user in (("release_manager", "relman"), ("service_owner", "svcowner2")):
        task = f"gate__go_nogo.{role}"
        airflow.admin.wait_pending(DAG, run, task)
        airflow.client(user).answer_or_raise(DAG, run, task, "GO", "ready")
    airflow.admin.wait_pending(DAG, run, "gate__go_nogo.hospital")

    log_in(browser, airflow, "wardrep")
    browser.get(f"{airflow.stack.base_url}/plugin/gonogo-board")
    row = f'tr.rollout[data-run="{run}"]'

    def waiting_link(d: Any) -> Any:
        links = d.find_elements(By.CSS_SELECTOR, f"{row} a.request")
        return links[0] if links else None

    link = in_view(browser, "the run waiting at the gate on the board", waiting_link)
    assert "gate__go_nogo.hospital/required_actions" in link.get_attribute("href")
    shot(browser, "board-waiting")
    link = in_view(browser, "the link again, inside the view", waiting_link)
    link.click()  # target=_top: the Required Actions page of that request, in the UI
    wait(browser, "the Required Actions page", lambda d: "required_actions" in d.current_url)
    browser.switch_to.default_content()
    go = wait(
        browser,
        "the GO button",
        lambda d: next(
            (b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == "GO"), None
        ),
    )
    shot(browser, "required-action")
    # A NOGO without a comment: the API server refuses it, and the page says why.
    nogo = next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "NOGO")
    nogo.click()
    refusal = wait(
        browser,
        "the reason for the refusal on the page",
        lambda d: next(
            iter(d.find_elements(By.XPATH, "//*[contains(text(), 'needs a comment')]")), None
        ),
    )
    assert "NOGO needs a comment" in refusal.text
    shot(browser, "nogo-refused")
    assert (
        airflow.admin.wait_pending(DAG, run, "gate__go_nogo.hospital")["response_received"] is False
    )
    go = next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "GO")
    browser.execute_script("arguments[0].click()", go)  # the refusal's toast may cover it
    airflow.admin.wait_run(DAG, run)

    browser.get(f"{airflow.stack.base_url}/plugin/gonogo-board")
    done = in_view(
        browser,
        "the board to show the run as done",
        lambda d: (
            (cell := d.find_element(By.CSS_SELECTOR, f"{row} td.now")).text == "succeeded" and cell
        ),
        timeout=90,
    )
    assert done.text == "succeeded"
    shot(browser, "board-done")
    decisions = airflow.admin.hitl_details(DAG, run)
    answered = next(d for d in decisions if d["task_instance"]["task_id"].endswith(".hospital"))
    assert answered["responded_by_user"]["name"] == "wardrep"

    # The run view and the kjøreplan, for the README.
    quoted = quote(run, safe="")
    browser.get(f"{airflow.stack.base_url}/dags/{DAG}/runs/{quoted}/plugin/gonogo-run")
    in_view(browser, "the run view", lambda d: d.find_element(By.CSS_SELECTOR, "table.decisions"))
    shot(browser, "run")
    airflow.wait_dags("ehr-upgrade-4-2")  # the example runbook, for a kjøreplan worth showing
    browser.get(f"{airflow.stack.base_url}/dags/ehr-upgrade-4-2/plugin/gonogo-kjoreplan")
    in_view(browser, "the kjøreplan", lambda d: d.find_element(By.CSS_SELECTOR, "svg.gantt"))
    shot(browser, "kjoreplan")

    # A rolled-back run's report.
    nogo = airflow.operator.trigger(DAG)
    airflow.admin.wait_pending(DAG, nogo, "gate__go_nogo.hospital")
    airflow.client("wardrep").answer_or_raise(
        DAG, nogo, "gate__go_nogo.hospital", "NOGO", "AMK reports a major incident"
    )
    airflow.admin.wait_run(DAG, nogo)
    browser.get(
        f"{airflow.stack.base_url}/dags/{DAG}/runs/{quote(nogo, safe='')}/plugin/gonogo-report"
    )
    outcome = in_view(
        browser,
        "the report of the rolled-back run",
        lambda d: (
            d.find_element(By.ID, "outcome").text == "rolled_back"
            and d.find_element(By.ID, "outcome")
        ),
    )
    assert outcome.text == "rolled_back"
    shot(browser, "report-rolled-back")
    saved = {p.name for p in ARTIFACTS.glob("*.png")}
    assert {
        "board-waiting.png",
        "required-action.png",
        "nogo-refused.png",
        "board-done.png",
    } <= saved
    assert {"run.png", "kjoreplan.png", "report-rolled-back.png"} <= saved
