"""The demo's copy of the runbooks: each change window starts now, and nothing else changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import EHR, RUNBOOKS

from gonogo import load_file
from gonogo.dev.windows import window_moved, windows_from

NOW = datetime(2026, 12, 3, 7, 5, tzinfo=UTC)


def test_the_copy_of_the_ehr_example_opens_its_window_now_with_the_same_length(
    tmp_path: Path,
) -> None:
    moved = windows_from(RUNBOOKS, tmp_path / "runbooks", NOW)
    assert moved == [tmp_path / "runbooks" / EHR.name]
    original, _ = load_file(EHR)
    copy, _ = load_file(moved[0])
    assert original.window is not None and copy.window is not None
    assert copy.window.start == NOW
    assert copy.window.start.utcoffset() == original.window.start.utcoffset() == timedelta(hours=1)
    assert copy.window.end - copy.window.start == original.window.end - original.window.start
    assert copy.model_dump(exclude={"window"}) == original.model_dump(exclude={"window"})


def test_only_the_window_line_differs_and_every_other_file_is_copied_as_it_is(
    tmp_path: Path,
) -> None:
    target = tmp_path / "runbooks"
    windows_from(RUNBOOKS, target, NOW)
    lines = zip(
        EHR.read_text().splitlines(), (target / EHR.name).read_text().splitlines(), strict=True
    )
    changed = [after for before, after in lines if before != after]
    assert changed == [
        'window: {start: "2026-12-03T08:05:00+01:00", end: "2026-12-03T12:05:00+01:00"}'
    ]
    for path in RUNBOOKS.rglob("*"):
        if path.is_file() and path != EHR and "__pycache__" not in path.parts:
            assert (target / path.relative_to(RUNBOOKS)).read_bytes() == path.read_bytes()


def test_a_runbook_without_a_window_or_one_that_does_not_parse_is_left_as_it_is() -> None:
    for text in ("runbook: x\nphases: []\n", "runbook: [unclosed\n", "window: {start: soon}\n"):
        assert window_moved(text, NOW) == text


def test_a_new_copy_replaces_the_last_one(tmp_path: Path) -> None:
    target = tmp_path / "runbooks"
    windows_from(RUNBOOKS, target, NOW)
    (target / "left-over.yaml").write_text("runbook: gone\n")
    windows_from(RUNBOOKS, target, NOW + timedelta(days=1))
    assert not (target / "left-over.yaml").exists()
    copy, _ = load_file(target / EHR.name)
    assert copy.window is not None and copy.window.start == NOW + timedelta(days=1)
