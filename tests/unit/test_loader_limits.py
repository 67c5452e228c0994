"""The loader reads only regular files, only so much, and never lets an exception out.

Each case is a file that once hung the DAG processor or escaped as a traceback
and stopped the rest of the folder; now each is a located error for that file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import RUNBOOKS

from gonogo.core.runbook.loader import load_file, load_files, load_text
from gonogo.core.settings import MAX_RUNBOOK_BYTES
from gonogo.errors import RunbookError

GOOD = (RUNBOOKS / "hotfix.yaml").read_text()


def refusal(path: Path) -> str:
    with pytest.raises(RunbookError) as caught:
        load_file(path)
    return str(caught.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "r.yaml")
    assert "not a regular file" in refusal(tmp_path / "r.yaml")


def test_a_symlink_to_an_endless_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").symlink_to("/dev/zero")
    assert "not a regular file" in refusal(tmp_path / "r.yaml")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").mkdir()
    assert "not a regular file" in refusal(tmp_path / "r.yaml")


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text(GOOD)
    (tmp_path / "r.yaml").symlink_to(tmp_path / "real.yaml")
    runbook, _ = load_file(tmp_path / "r.yaml")
    assert runbook.runbook


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_bytes(b"#" * (MAX_RUNBOOK_BYTES + 1))
    assert f"larger than {MAX_RUNBOOK_BYTES} bytes" in refusal(tmp_path / "r.yaml")


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("runbook: a\nx: 2026-02-30\n", "<t>:2:4: x:", "is not a valid timestamp"),
        ("runbook: a\nx: " + "9" * 5000 + "\n", "<t>:2:4: x:", "is not a valid int"),
        ("runbook: a\nx: " + "[" * 5000 + "]" * 5000 + "\n", "<t>:2:", "nested more than"),
        ("runbook: a\nx: " + "[" * 200_000 + "]" * 200_000 + "\n", "<t>:2:", "nested more than"),
        (
            "runbook: a\nx:\n" + "".join(" " * i + "k:\n" for i in range(1, 300)),
            "<t>:",
            "nested more than",
        ),
        (
            GOOD.replace("timeout: ", "timeout: 99999999999999h #", 1),
            "<t>:",
            "expected a duration",
        ),
    ],
)
def test_an_odd_value_is_a_located_error(text: str, where: str, what: str) -> None:
    with pytest.raises(RunbookError) as caught:
        load_text(text, "<t>")
    message = str(caught.value)
    assert message.startswith(where) and what in message


@pytest.mark.parametrize(
    "text",
    [
        "runbook: a\nx: " + "[" * 150 + "]" * 150 + "\n",
        "runbook: a\nx:\n" + "".join(" " * i + "k:\n" for i in range(1, 150)),
        "runbook: a\nx:\n"
        + "".join(" " * i + "- k: 1\n" + " " * i + "  j:\n" for i in range(0, 240, 2)),
    ],
)
def test_too_deep_is_found_where_it_is_with_libyaml_as_without(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libyaml composes nesting up to its own limit; the walk of its tree refuses the rest."""
    from gonogo.core.runbook import source

    def refusal_of() -> str:
        with pytest.raises(RunbookError, match="nested more than") as caught:
            load_text(text, "<t>")
        return str(caught.value)

    with_libyaml = refusal_of()
    monkeypatch.setattr(source, "_LIBYAML_BOUNDED", False)
    assert refusal_of() == with_libyaml


def test_one_odd_file_never_stops_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("runbook: a\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "c.yaml").symlink_to("/dev/zero")
    loaded = load_files(sorted(tmp_path.iterdir()))
    assert [item.valid for item in loaded] == [False, True, False]
    assert all(item.problems for item in loaded if not item.valid)


def test_two_files_with_one_runbook_id_are_both_refused_at_their_runbook_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    loaded = load_files([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert [item.valid for item in loaded] == [False, False]
    line = GOOD.splitlines().index(next(x for x in GOOD.splitlines() if x.startswith("runbook:")))
    first = str(next(p for p in loaded[0].problems if "runbook id" in p.message))
    assert first.startswith(f"{tmp_path / 'a.yaml'}:{line + 1}:1: runbook: runbook id")
    assert str(tmp_path / "b.yaml") in first
