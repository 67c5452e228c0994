from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "runbooks"
EHR = RUNBOOKS / "ehr-upgrade.yaml"
#: The example runbooks: every YAML file in runbooks/ but the calendar.
EXAMPLES = sorted(p for p in RUNBOOKS.glob("*.yaml") if p.name != "calendar.yaml")


@pytest.fixture
def ehr_text() -> str:
    return EHR.read_text()
