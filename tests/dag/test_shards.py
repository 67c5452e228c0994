"""Several loader files share the runbooks: each owns a stable shard, together they own all.

Built with Airflow's own DagBag over a real DAGs folder, as the DAG processor does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import ROOT

pytest.importorskip("airflow")

from airflow.dag_processing.dagbag import DagBag

from gonogo.dag.folder import owner, shard_of

LOADER = ROOT / "dags" / "gonogo_dags.py"


def runbook(runbook_id: str) -> str:
    return (
        f"runbook: {runbook_id}\ntitle: Shard test\nservice: shard\nenvironment: test\n"
        "change: {id: CHG-SHARD, type: standard}\n"
        "phases: [{id: p, steps: [{id: s, bash: 'true', read_only: true}]}]\n"
    )


def folder_of(tmp_path: Path, copies: int, ids: list[str]) -> Path:
    dags = tmp_path / "dags"
    dags.mkdir()
    for n in range(copies):
        name = "gonogo_dags.py" if n == 0 else f"gonogo_dags_{n:02d}.py"
        shutil.copy(LOADER, dags / name)
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    for index, runbook_id in enumerate(ids):
        (runbooks / f"rb-{index:03d}.yaml").write_text(runbook(runbook_id))
    return dags


def bag_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> DagBag:
    monkeypatch.setenv("GONOGO_RUNBOOKS_DIR", str(path.parent.parent / "runbooks"))
    return DagBag(dag_folder=str(path), safe_mode=False)


def test_every_runbook_loads_from_exactly_one_of_the_loader_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"svc-{n:03d}" for n in range(40)]
    dags = folder_of(tmp_path, 4, ids)
    loaded: dict[str, list[str]] = {}
    for loader in sorted(dags.glob("*.py")):
        index, shards = shard_of(loader)
        assert shards == 4
        bag = bag_of(loader, monkeypatch)
        assert not bag.import_errors
        assert all(owner(dag_id, 4) == index for dag_id in bag.dag_ids)
        loaded[loader.name] = sorted(bag.dag_ids)
    everything = sorted(d for found in loaded.values() for d in found)
    assert everything == ids  # each runbook once: none lost, none twice
    assert all(found for found in loaded.values())  # 40 ids spread over all four


def test_two_files_with_one_id_are_both_refused_whichever_shard_owns_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dags = folder_of(tmp_path, 3, ["twin", "twin", "single"])
    errors: dict[str, str] = {}
    dag_ids: list[str] = []
    for loader in sorted(dags.glob("*.py")):
        bag = bag_of(loader, monkeypatch)
        dag_ids += bag.dag_ids
        errors.update({Path(k).name: v for k, v in bag.import_errors.items()})
    assert dag_ids == ["single"]
    assert sorted(errors) == ["rb-000.yaml", "rb-001.yaml"]
    assert "runbook id 'twin' is also used by" in errors["rb-000.yaml"]


def test_one_loader_file_owns_every_runbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"svc-{n:03d}" for n in range(10)]
    dags = folder_of(tmp_path, 1, ids)
    assert shard_of(dags / "gonogo_dags.py") == (0, 1)
    assert sorted(bag_of(dags / "gonogo_dags.py", monkeypatch).dag_ids) == ids


def test_gonogo_shards_writes_and_removes_loader_copies(tmp_path: Path) -> None:
    from gonogo.client.cli import main

    dags = folder_of(tmp_path, 1, [])
    assert main(["shards", "4", str(dags)]) == 0
    names = sorted(p.name for p in dags.glob("*.py"))
    assert names == ["gonogo_dags.py", *(f"gonogo_dags_{n:02d}.py" for n in (1, 2, 3))]
    assert all((dags / n).read_text() == LOADER.read_text() for n in names)
    assert [shard_of(dags / n) for n in names] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert main(["shards", "2", str(dags)]) == 0
    assert sorted(p.name for p in dags.glob("*.py")) == ["gonogo_dags.py", "gonogo_dags_01.py"]
    assert main(["shards", "0", str(dags)]) == 2
    assert main(["shards", "2", str(tmp_path / "runbooks")]) == 2


def test_more_than_99_loader_files_get_names_of_one_width(tmp_path: Path) -> None:
    """20,000 runbooks at 200 a file need 100 files; each still owns its own place."""
    from gonogo.client.cli import main

    dags = folder_of(tmp_path, 1, [])
    assert main(["shards", "120", str(dags)]) == 0
    names = sorted(p.name for p in dags.glob("*.py"))
    assert names[1:4] == ["gonogo_dags_001.py", "gonogo_dags_002.py", "gonogo_dags_003.py"]
    assert len(names) == 120 and names[-1] == "gonogo_dags_119.py"
    assert sorted(shard_of(dags / n) for n in names) == [(i, 120) for i in range(120)]
    assert main(["shards", "3", str(dags)]) == 0  # back to two digits: the wide names go
    assert sorted(p.name for p in dags.glob("*.py"))[1:] == [
        "gonogo_dags_01.py",
        "gonogo_dags_02.py",
    ]
    assert main(["shards", "1000", str(dags)]) == 2


def test_a_written_runbook_makes_its_loader_file_look_changed_to_airflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow parses changed DAG files first; a new runbook's loader file is made one."""
    import os
    import time

    ids = [f"svc-{n:03d}" for n in range(12)]
    dags = folder_of(tmp_path, 3, ids)
    loaders = sorted(dags.glob("*.py"))
    now = time.time_ns()
    for path in (tmp_path / "runbooks").glob("*.yaml"):
        os.utime(path, ns=(now - 100 * 10**9,) * 2)
    past = now - 50 * 10**9
    for path in loaders:  # the loader files are newer than every runbook
        os.utime(path, ns=(past, past))
    bag_of(loaders[0], monkeypatch)
    assert [p.stat().st_mtime_ns for p in loaders] == [past] * 3  # nothing changed, nothing touched

    new_id = next(f"new-{n}" for n in range(100) if owner(f"new-{n}", 3) == 2)
    added = tmp_path / "runbooks" / "rb-new.yaml"
    added.write_text(runbook(new_id))
    os.utime(added, ns=(now - 10 * 10**9,) * 2)
    bag_of(loaders[0], monkeypatch)
    times = [p.stat().st_mtime_ns for p in loaders]
    assert times[:2] == [past, past] and times[2] > now - 10 * 10**9  # only its owner
    bag_of(loaders[1], monkeypatch)
    assert [p.stat().st_mtime_ns for p in loaders] == times  # once: now newer than the runbook
    assert new_id in bag_of(loaders[2], monkeypatch).dag_ids


def test_a_runbook_dated_in_the_future_or_a_linked_loader_file_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else Airflow would parse that loader file without pause, or a file outside the folder
    would be touched."""
    import os
    import time

    ids = [f"svc-{n:03d}" for n in range(12)]
    dags = folder_of(tmp_path, 3, ids)
    loaders = sorted(dags.glob("*.py"))
    now = time.time_ns()
    past = now - 50 * 10**9
    for path in (tmp_path / "runbooks").glob("*.yaml"):
        os.utime(path, ns=(now - 100 * 10**9,) * 2)
    for path in loaders:
        os.utime(path, ns=(past, past))
    future_id = next(f"fut-{n}" for n in range(100) if owner(f"fut-{n}", 3) == 1)
    future = tmp_path / "runbooks" / "rb-future.yaml"
    future.write_text(runbook(future_id))
    os.utime(future, ns=(now + 3600 * 10**9,) * 2)
    target = tmp_path / "elsewhere.py"
    shutil.copy(LOADER, target)
    os.utime(target, ns=(past, past))
    loaders[2].unlink()
    loaders[2].symlink_to(target)
    linked_id = next(f"lnk-{n}" for n in range(100) if owner(f"lnk-{n}", 3) == 2)
    (tmp_path / "runbooks" / "rb-linked.yaml").write_text(runbook(linked_id))
    bag_of(loaders[0], monkeypatch)
    assert loaders[1].stat().st_mtime_ns == past  # the future-dated runbook touched nothing
    assert target.stat().st_mtime_ns == past  # nor the file the link names


def test_the_cycle_collector_is_paused_only_while_runbooks_are_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from gonogo.dag import builder, folder

    dags = folder_of(tmp_path, 1, ["svc-a", "svc-b"])
    seen: list[bool] = []
    real = builder.build_dags

    def build(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builder, "build_dags", build)
    assert gc.isenabled()
    built = folder.build_all(tmp_path / "runbooks", {"__file__": str(dags / "gonogo_dags.py")})
    assert sorted(built) == ["svc-a", "svc-b"] and seen == [False, False]
    assert gc.isenabled()

    monkeypatch.setattr(builder, "build_dags", lambda *a, **k: 1 / 0)
    folder.build_all(tmp_path / "runbooks", {"__file__": str(dags / "gonogo_dags.py")})
    assert gc.isenabled()  # a build that raised is reported, and the collector is back on


def test_a_task_reads_only_its_own_runbook_file_when_the_file_is_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gonogo.dag import folder

    dags = folder_of(tmp_path, 2, [f"svc-{n:03d}" for n in range(30)])
    runbooks = tmp_path / "runbooks"
    (runbooks / "rb-007.yaml").rename(runbooks / "svc-007.yaml")
    loader = next(p for p in sorted(dags.glob("*.py")) if shard_of(p)[0] == owner("svc-007", 2))
    heads: list[str] = []
    real = folder.head_id

    def counted(path: str | Path) -> str | None:
        heads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(folder, "head_id", counted)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "svc-007")
    assert bag_of(loader, monkeypatch).dag_ids == ["svc-007"]
    assert heads == ["svc-007.yaml"]

    # Under any other name the runbook is still found, by the heads of every file.
    heads.clear()
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "svc-003")
    other = next(p for p in sorted(dags.glob("*.py")) if shard_of(p)[0] == owner("svc-003", 2))
    assert bag_of(other, monkeypatch).dag_ids == ["svc-003"]
    assert len(heads) >= 30


def test_a_loader_file_that_runs_out_of_time_loads_what_it_built_and_reports_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past Airflow's time per DAG file not one DAG of the file would load: stop before it.

    The loader's clock moves 0.04 s per runbook, so it runs out of its 7.5 s (of 10 s)
    after 187 of 600 whatever this machine's speed; Airflow's own timeout stays real.
    """
    from gonogo.dag import folder

    ids = [f"svc-{n:03d}" for n in range(600)]
    dags = folder_of(tmp_path, 1, ids)
    ticks = iter(range(10**6))
    monkeypatch.setattr(folder, "_clock", lambda: next(ticks) * 0.04)
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "10")
    bag = bag_of(dags / "gonogo_dags.py", monkeypatch)
    # Airflow never had to kill the file, which would have lost every DAG in it.
    assert not any("DagBag import timeout" in e for e in bag.import_errors.values())
    assert "gonogo_dags.py" not in {Path(k).name for k in bag.import_errors}
    loaded = sorted(bag.dag_ids)
    assert len(loaded) == 187
    assert loaded == ids[: len(loaded)]  # the first files in order: the same ones every parse
    reported = sorted(Path(k).name for k in bag.import_errors)
    assert reported == [f"rb-{n:03d}.yaml" for n in range(len(loaded), len(ids))]
    message = bag.import_errors[next(iter(bag.import_errors))]
    assert "got through 187 of its 600 runbooks" in message
    assert "`gonogo shards 3`" in message


def test_the_dag_processors_watch_touches_the_owner_of_a_written_runbook_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gonogo.server.prompter: any loader file may own it, the first one too; once each."""
    import os
    import time

    from gonogo.server.prompter import prompt

    ids = [f"svc-{n:03d}" for n in range(12)]
    dags = folder_of(tmp_path, 3, ids)
    monkeypatch.setenv("GONOGO_RUNBOOKS_DIR", str(tmp_path / "runbooks"))
    loaders = sorted(dags.glob("*.py"))
    now = time.time_ns()
    for path in (tmp_path / "runbooks").glob("*.yaml"):
        os.utime(path, ns=(now - 100 * 10**9,) * 2)
    past = now - 50 * 10**9
    for path in loaders:
        os.utime(path, ns=(past, past))
    assert prompt(dags) == []

    new_id = next(f"new-{n}" for n in range(100) if owner(f"new-{n}", 3) == 0)
    added = tmp_path / "runbooks" / "rb-new.yaml"
    added.write_text(runbook(new_id))
    os.utime(added, ns=(now - 10 * 10**9,) * 2)
    assert prompt(dags) == [loaders[0]]
    assert [p.stat().st_mtime_ns > past for p in loaders] == [True, False, False]
    assert prompt(dags) == []  # the loader file is now newer than the runbook


def test_a_loader_file_asked_for_while_being_parsed_is_asked_for_again_once_that_parse_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a parsing process free, Airflow drops a request for a file it is parsing."""
    import os
    import time

    from gonogo.dag.folder import mark_parse, parse_record
    from gonogo.server import prompter

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    dags = folder_of(tmp_path, 3, [f"svc-{n:03d}" for n in range(6)])
    loaders = sorted(dags.glob("*.py"))
    bag_of(loaders[1], monkeypatch)  # a full parse, as the DAG processor's, marks both ends
    assert parse_record(loaders[1]).exists() and parse_record(loaders[1], ended=True).exists()
    assert not parse_record(loaders[0]).exists()

    now = time.time_ns()
    for path in [*loaders, *(tmp_path / "runbooks").glob("*.yaml")]:
        os.utime(path, ns=(now - 100 * 10**9,) * 2)
    asked: list[list[str]] = []
    monkeypatch.setattr(
        prompter, "ask_to_parse", lambda bundle, files: asked.append(files) or files
    )
    bundles = [("dags-folder", dags)]
    known: dict[str, prompter.Owners] = {}
    pending: dict[str, prompter.Asked] = {}

    def parse(began: int, ended: int | None) -> None:
        for which, at in ((False, began), (True, ended)):
            if at is not None:
                mark_parse(loaders[0], ended=which)
                os.utime(parse_record(loaders[0], which), ns=(at,) * 2)

    new_id = next(f"new-{n}" for n in range(100) if owner(f"new-{n}", 3) == 0)
    added = tmp_path / "runbooks" / "rb-new.yaml"
    added.write_text(runbook(new_id))
    os.utime(added, ns=(now - 10 * 10**9,) * 2)
    parse(now - 30 * 10**9, now - 40 * 10**9)  # running since before the runbook was written
    assert prompter.watch_once(bundles, known, pending) == ["gonogo_dags.py"]
    assert prompter.watch_once(bundles, known, pending) == []  # still running: not yet
    parse(now - 30 * 10**9, now - 5 * 10**9)  # it ended, having listed the folder too early
    assert prompter.watch_once(bundles, known, pending) == ["gonogo_dags.py"]  # once more
    assert prompter.watch_once(bundles, known, pending) == []
    assert pending == {"dags-folder": {}}

    os.utime(loaders[0], ns=(now - 100 * 10**9,) * 2)
    os.utime(added, ns=(now - 4 * 10**9,) * 2)  # edited while no parse runs: asked for once
    assert prompter.watch_once(bundles, known, pending) == ["gonogo_dags.py"]
    parse(now - 3 * 10**9, now - 2 * 10**9)
    assert prompter.watch_once(bundles, known, pending) == []

    monkeypatch.setattr(prompter, "ASK_FOR", -1.0)  # a parse that never ends is given up
    os.utime(loaders[0], ns=(now - 100 * 10**9,) * 2)
    os.utime(added, ns=(now - 1 * 10**9,) * 2)
    parse(now - 3 * 10**9, now - 4 * 10**9)
    assert prompter.watch_once(bundles, known, pending) == ["gonogo_dags.py"]
    parse(now - 3 * 10**9, now - 2 * 10**9)
    assert prompter.watch_once(bundles, known, pending) == []
    assert len(asked) == 4


def test_a_runbook_written_since_the_last_look_is_asked_for_though_a_parse_touched_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another loader file's parse touches the owner first: a touch alone waits for the round."""
    import os
    import time

    from gonogo.dag.folder import mark_parse
    from gonogo.server import prompter

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    dags = folder_of(tmp_path, 3, [f"svc-{n:03d}" for n in range(6)])
    monkeypatch.setenv("GONOGO_RUNBOOKS_DIR", str(tmp_path / "runbooks"))
    loaders = sorted(dags.glob("*.py"))
    now = time.time_ns()
    for path in (tmp_path / "runbooks").glob("*.yaml"):
        os.utime(path, ns=(now - 100 * 10**9,) * 2)
    for path in loaders:
        os.utime(path, ns=(now - 50 * 10**9,) * 2)
    monkeypatch.setattr(prompter, "ask_to_parse", lambda bundle, files: files)
    bundles = [("dags-folder", dags)]
    known: dict[str, prompter.Owners] = {}
    pending: dict[str, prompter.Asked] = {}
    assert prompter.watch_once(bundles, known, pending) == []  # the first look: nothing new

    new_id = next(f"new-{n}" for n in range(100) if owner(f"new-{n}", 3) == 0)
    added = tmp_path / "runbooks" / "rb-new.yaml"
    added.write_text(runbook(new_id))
    os.utime(added, ns=(now - 10 * 10**9,) * 2)
    os.utime(loaders[0], ns=(now - 5 * 10**9,) * 2)  # prompt_changed in another file's parse
    assert prompter.watch_once(bundles, known, pending) == ["gonogo_dags.py"]
    mark_parse(loaders[0])
    assert prompter.watch_once(bundles, known, pending) == []


def test_the_watch_reads_a_runbooks_head_again_only_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It looks every 2 s: a runbook newer than the oldest loader file is not re-read each time."""
    import os
    import time

    from gonogo.server import prompter

    dags = folder_of(tmp_path, 3, [f"svc-{n:03d}" for n in range(6)])
    monkeypatch.setenv("GONOGO_RUNBOOKS_DIR", str(tmp_path / "runbooks"))
    loaders = sorted(dags.glob("*.py"))
    now = time.time_ns()
    os.utime(loaders[0], ns=(now - 100 * 10**9,) * 2)  # the oldest loader file, never touched
    for path in loaders[1:]:
        os.utime(path, ns=(now,) * 2)
    for path in (tmp_path / "runbooks").glob("*.yaml"):
        os.utime(path, ns=(now - 50 * 10**9,) * 2)
    read: list[list[str]] = []
    real = prompter.owners_of
    monkeypatch.setattr(
        prompter, "owners_of", lambda files, *rest: read.append(sorted(files)) or real(files, *rest)
    )
    known: prompter.Owners = {}
    first = prompter.newer_owners(loaders, tmp_path / "runbooks", known)
    again = prompter.newer_owners(loaders, tmp_path / "runbooks", known)
    assert first == again and len(first) == 6
    assert [len(files) for files in read] == [6, 0]  # the second look read no head
    edited = tmp_path / "runbooks" / "rb-002.yaml"
    os.utime(edited, ns=(now - 10 * 10**9,) * 2)
    assert prompter.newer_owners(loaders, tmp_path / "runbooks", known) == first
    assert read[-1] == [str(edited)]  # only the edited file's head is read again
    removed = tmp_path / "runbooks" / "rb-003.yaml"
    removed.unlink()
    assert len(prompter.newer_owners(loaders, tmp_path / "runbooks", known)) == 5
    assert str(removed) not in known  # a removed runbook is forgotten
