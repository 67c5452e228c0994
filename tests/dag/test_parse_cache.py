"""The parse cache: an unchanged runbook file is not read again, and nothing else is ever served.

The DAG processor runs the loader file every 30 s; :mod:`gonogo.core.runbook.parsed`
keeps what each runbook validated to under a key of everything it depends on.
These tests show that a hit builds the very DAG the YAML builds, and that every
change of input is a miss.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, RUNBOOKS
from tests.dag.test_stable_parse import GATE_OPENS

from gonogo.core.runbook.loader import load_file, load_files
from gonogo.core.runbook.parsed import CACHE_ENV, ParseCache
from gonogo.dag.builder import build_dags
from gonogo.dag.folder import build_all


def _serialized(runbook: object) -> list[str]:
    from airflow.serialization.serialized_objects import DagSerialization

    return [
        json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str)
        for dag in build_dags(runbook, RUNBOOKS)  # type: ignore[arg-type]
    ]


@pytest.fixture(autouse=True)
def _no_cache_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test run names a cache of its own (tests/conftest.py); these tests name theirs."""
    monkeypatch.delenv(CACHE_ENV, raising=False)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ParseCache]:
    with ParseCache.opened(tmp_path / "parsed", tmp_path / "runbooks") as found:
        assert found is not None
        yield found


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "parsed").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_a_hit_builds_the_same_dags_as_the_yaml(path: Path, cache: ParseCache) -> None:
    [first] = load_files([path], cache)
    [hit] = load_files([path], cache)
    assert first.source is not None and hit.source is None  # the second came from the cache
    assert hit.runbook == first.runbook and hit.problems == first.problems
    assert _serialized(hit.runbook) == _serialized(load_file(path)[0])


def _runbook(folder: Path, text: str = GATE_OPENS) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "rb.yaml"
    path.write_text(text)
    return path


def test_a_changed_file_is_read_again(tmp_path: Path, cache: ParseCache) -> None:
    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    path.write_text(GATE_OPENS.replace("echo installed", "echo installed again"))
    [item] = load_files([path], cache)
    assert item.source is not None  # a miss
    assert item.runbook is not None
    assert "echo installed again" in item.runbook.model_dump_json()


def test_a_changed_setting_is_a_miss(
    tmp_path: Path, cache: ParseCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    monkeypatch.setenv("GONOGO_POLICY", "{standard: {min_gates: 2}}")
    [item] = load_files([path], ParseCache(cache.fd, cache.root))
    assert item.runbook is None  # the new policy's rule applies: the cache did not hide it
    assert any("change policy" in p.message for p in item.problems)


def test_an_entry_that_does_not_match_its_key_is_not_used(
    tmp_path: Path, cache: ParseCache
) -> None:
    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    [entry] = _entries(tmp_path)
    key, _, rest = entry.read_text().partition("\n")
    entry.write_text(f"{'0' * len(key)}\n{rest.replace('echo installed', 'rm -rf /')}")
    [item] = load_files([path], cache)
    assert item.source is not None and "rm -rf" not in item.runbook.model_dump_json()
    entry.write_text(f"{key}\nnot json")
    [item] = load_files([path], cache)
    assert item.source is not None and item.runbook is not None


def test_a_broken_runbook_is_never_kept(tmp_path: Path, cache: ParseCache) -> None:
    path = _runbook(tmp_path / "runbooks", GATE_OPENS.replace("title:", "titel:", 1))
    for _ in range(2):
        [item] = load_files([path], cache)
        assert item.runbook is None and any("titel" in str(p) for p in item.problems)
    assert not _entries(tmp_path)


def test_two_cached_files_with_one_id_are_both_refused_at_their_runbook_key(
    tmp_path: Path, cache: ParseCache
) -> None:
    folder = tmp_path / "runbooks"
    first = _runbook(folder)
    second = folder / "copy.yaml"
    load_files([first], cache)
    shutil.copy(first, second)
    load_files([second], cache)
    items = load_files([first, second], cache)
    assert [i.source for i in items] == [None, None]  # both hits
    for item in items:
        assert item.runbook is None
        [problem] = item.problems
        assert (problem.line, problem.column) == (2, 1) and "also used by" in problem.message


def test_no_cache_in_a_folder_others_may_write_a_link_or_when_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with ParseCache.opened(shared, tmp_path) as found:
        assert found is None
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(mine)  # a link can be pointed elsewhere after the check
    with ParseCache.opened(tmp_path / "link", tmp_path) as found:
        assert found is None
    monkeypatch.setenv(CACHE_ENV, "off")
    with ParseCache.opened(tmp_path / "parsed", tmp_path) as found:
        assert found is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "named"))
    with ParseCache.opened(tmp_path / "parsed", tmp_path) as found:
        assert found is not None
    assert (tmp_path / "named").stat().st_mode & 0o777 == 0o700


def test_the_folder_is_used_as_it_was_opened_even_if_its_path_is_swapped(
    tmp_path: Path, cache: ParseCache
) -> None:
    """An entry is read and written in the folder that passed the check, never by its path."""
    path = _runbook(tmp_path / "runbooks")
    (tmp_path / "parsed").rename(tmp_path / "moved")
    other = tmp_path / "parsed"
    other.mkdir(mode=0o700)
    load_files([path], cache)
    assert len(list((tmp_path / "moved").glob("*.json"))) == 1 and not list(other.iterdir())


def test_an_entry_that_is_a_link_or_not_ours_is_a_miss(tmp_path: Path, cache: ParseCache) -> None:
    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    [entry] = _entries(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    entry.rename(elsewhere)
    entry.symlink_to(elsewhere)
    assert load_files([path], cache)[0].source is not None  # a link: read in full
    entry.unlink()
    load_files([path], cache)
    [entry] = _entries(tmp_path)
    os.chmod(entry, 0o666)
    assert load_files([path], cache)[0].source is not None  # writable by others: a miss


@pytest.mark.parametrize(
    "value",
    ["kwargs: {b: !!binary aGVsbG8=}", "kwargs: {when: 2026-12-01}", "kwargs: {n: .inf}"],
)
def test_a_value_json_cannot_hold_is_never_kept_and_still_loads(
    tmp_path: Path, cache: ParseCache, value: str
) -> None:
    """A runbook whose JSON would read back differently is parsed in full every time."""
    text = GATE_OPENS.replace(
        "        bash: echo checked\n",
        f"        python: {{callable: 'steps.checks:ping', {value}}}\n",
    )
    assert text != GATE_OPENS
    path = _runbook(tmp_path / "runbooks", text)
    for _ in range(2):
        [item] = load_files([path], cache)
        assert item.runbook is not None and item.source is not None
    assert not _entries(tmp_path)


def test_an_entry_of_any_content_is_only_a_miss(tmp_path: Path, cache: ParseCache) -> None:
    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    [entry] = _entries(tmp_path)
    key = entry.read_text().partition("\n")[0]
    for junk in (f"{key}\n" + "[" * 100_000, f"{key}\n[]\n" + "{" * 100_000, "\xff"):
        entry.write_text(junk)
        [item] = load_files([path], cache)
        assert item.runbook is not None and item.source is not None


def test_entries_follow_the_place_under_the_runbooks_folder_and_old_ones_go(
    tmp_path: Path, cache: ParseCache
) -> None:
    """A git sync that swaps the folder for a new copy reads the same entries."""
    from gonogo.core.runbook import parsed

    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "runbooks", copy)
    with ParseCache.opened(tmp_path / "parsed", copy) as other:
        assert load_files([copy / "rb.yaml"], other)[0].source is None  # the same entry
    [entry] = _entries(tmp_path)
    old = entry.with_name("0" * 32 + ".json")
    shutil.copy(entry, old)
    past = entry.stat().st_mtime - (parsed.KEEP_DAYS + 1) * 86400
    os.utime(old, (past, past))
    path.write_text(GATE_OPENS.replace("echo checked", "echo checked again"))
    load_files([path], ParseCache(cache.fd, cache.root))  # a write: it removes what is old
    assert _entries(tmp_path) == [entry]


def test_the_loader_file_keeps_its_runbooks_in_the_airflow_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    folder = tmp_path / "runbooks"
    _runbook(folder)
    first = build_all(folder, {})
    assert len(list((tmp_path / "home" / "gonogo" / "parsed").glob("*.json"))) == 1
    again = build_all(folder, {})
    assert sorted(again) == sorted(first) == ["opens-without-window"]


def test_a_cache_hit_is_still_checked_by_the_model(tmp_path: Path, cache: ParseCache) -> None:
    """An entry with the right key but a runbook the model refuses is a miss, not a DAG."""
    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    [entry] = _entries(tmp_path)
    key, _, rest = entry.read_text().partition("\n")
    warnings, _, runbook = rest.partition("\n")
    data = json.loads(runbook)
    data["environment"] = 42
    entry.write_text(f"{key}\n{warnings}\n{json.dumps(data)}")
    [item] = load_files([path], cache)
    assert item.source is not None and item.runbook is not None
    assert item.runbook.environment == "test"


def test_other_code_is_a_miss(
    tmp_path: Path, cache: ParseCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade or an edit of gonogo (its code stamp) never reads what older code kept."""
    from gonogo.core.runbook import parsed

    path = _runbook(tmp_path / "runbooks")
    load_files([path], cache)
    assert load_files([path], ParseCache(cache.fd, cache.root))[0].source is None  # a hit
    monkeypatch.setattr(parsed, "_CODE", "gonogo of another version")
    assert load_files([path], ParseCache(cache.fd, cache.root))[0].source is not None


def test_code_upgraded_under_a_running_process_is_not_kept(
    tmp_path: Path, cache: ParseCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process runs the code it imported: if the files on disk changed since, it keeps
    nothing under a key the new code would read."""
    from gonogo.core.runbook import parsed

    monkeypatch.setattr(parsed, "code_stamp", lambda: "the files on disk now")
    path = _runbook(tmp_path / "runbooks")
    load_files([path], ParseCache(cache.fd, cache.root))
    assert not _entries(tmp_path)
