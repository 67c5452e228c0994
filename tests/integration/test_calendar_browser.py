"""The Calendar page in a real browser: the weeks, a collision marked, a change's kjøreplan a click away.

Headless Chromium as in tests/integration/test_browser.py; the screenshot lands
in ``tests/artifacts/browser/calendar.png`` (git-ignored).
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.conftest import Airflow
from tests.integration.test_browser import browser, in_view, log_in, shot, wait  # noqa: F401
from tests.integration.test_calendar_trigger import Planned, planned  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.long]


def test_a_viewer_sees_the_weeks_with_the_collision_and_opens_a_changes_kjoreplan(
    airflow: Airflow,
    browser: Any,  # noqa: F811
    planned: Planned,  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By

    log_in(browser, airflow, "viewer")
    browser.get(f"{airflow.stack.base_url}/plugin/gonogo-calendar")
    day = planned.day.date().isoformat()

    def chip(d: Any) -> Any:
        found = d.find_elements(
            By.CSS_SELECTOR, f'td[data-date="{day}"] span.chip.change[data-runbook="it-cal-a"]'
        )
        return found[0] if found else None

    change = in_view(browser, "the planned change in its day", chip)
    assert "collides" in change.get_attribute("class").split()
    assert "type-normal" in change.get_attribute("class").split()
    emergency = in_view(
        browser,
        "the emergency change beside it",
        lambda d: d.find_element(By.CSS_SELECTOR, f'td[data-date="{day}"] span.type-emergency'),
    )
    assert "Portal hotfix" in emergency.text
    collision = in_view(
        browser,
        "the collision above the weeks",
        lambda d: d.find_element(By.CSS_SELECTOR, "p.collision.error"),
    )
    assert "it-cal-a" in collision.text and "it-cal-b" in collision.text
    in_view(
        browser,
        "a maintenance window",
        lambda d: d.find_element(By.CSS_SELECTOR, "span.maintenance"),
    )
    shot(browser, "calendar")

    link = in_view(browser, "the change's link", lambda d: chip(d).find_element(By.TAG_NAME, "a"))
    link.click()  # target=_top: the change's kjøreplan, in the UI
    wait(
        browser,
        "the kjøreplan of the change",
        lambda d: "it-cal-a/plugin/gonogo-kjoreplan" in d.current_url,
    )
    # The UI swaps the view's iframe while it loads the new page: read the
    # heading's text inside the probe, so a swapped frame is only "not yet".
    heading = in_view(
        browser,
        "the kjøreplan",
        lambda d: next(
            (h.text for h in d.find_elements(By.TAG_NAME, "h1") if h.text.startswith("Kjøreplan")),
            None,
        ),
    )
    assert heading == "Kjøreplan: Portal release 7"
