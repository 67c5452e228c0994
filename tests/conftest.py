from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "runbooks"
EHR = RUNBOOKS / "ehr-upgrade.yaml"
#: The example runbooks: every YAML file in runbooks/ but the calendar.
EXAMPLES = sorted(p for p in RUNBOOKS.glob("*.yaml") if p.name != "calendar.yaml")


# The loader's parse cache (gonogo.core.runbook.parsed) goes to a folder of this test run, not the
# user's ~/airflow; an Airflow the tests start inherits it, and its keys keep runs apart.
os.environ.setdefault("GONOGO_PARSE_CACHE", tempfile.mkdtemp(prefix="gonogo-parsed-"))


@pytest.fixture
def ehr_text() -> str:
    return EHR.read_text()


def with_window(text: str, window: str | None) -> str:
    """A runbook's text with its one-line ``window:`` replaced by ``window`` (None: removed)."""
    found, count = re.subn(
        r"^window: .*\n", f"window: {window}\n" if window else "", text, flags=re.M
    )
    assert count == 1, "the runbook has no one-line window: to replace"
    return found
