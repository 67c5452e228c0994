from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "runbooks"
EHR = RUNBOOKS / "ehr-upgrade.yaml"


@pytest.fixture
def ehr_text() -> str:
    return EHR.read_text()
