"""The package's layers: imports go only downward, never in a cycle, and the core and
the client never import Airflow, so ``gonogo validate`` and ``gonogo plan`` run without it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import EHR, ROOT

from gonogo.core.runbook.graph import find_cycle

PACKAGE = ROOT / "plugins" / "gonogo"

#: What each layer may import from the package (besides itself).
ALLOWED = {
    "core": {"core", "errors"},
    "dag": {"core", "dag", "errors"},
    "server": {"core", "dag", "server", "errors"},
    "client": {"core", "client", "errors"},
    "dev": {"core", "client", "dev", "errors"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module a module imports, at module level, inside functions or for type checking."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            found.add(base)
            # `from gonogo.core import naming` imports the module gonogo.core.naming
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def internal_graph() -> dict[str, set[str]]:
    return {name: {m for m in imports_of(name) if m in MODULES and m != name} for name in MODULES}


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_package_has_no_import_cycle() -> None:
    graph = internal_graph()
    # A package's __init__ is imported with any of its modules; it re-exports, so leave
    # it out as a target, or every re-export would look like a cycle.
    targets = {n: sorted(m for m in ups if m != "gonogo") for n, ups in graph.items()}
    assert find_cycle(targets) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) in ALLOWED))
def test_each_module_imports_only_its_own_layer_and_those_below(name: str) -> None:
    used = {layer(m) for m in imports_of(name) if m.startswith("gonogo.")}
    assert used <= ALLOWED[layer(name)], f"{name} imports from {used - ALLOWED[layer(name)]}"


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if layer(n) in ("core", "client", "__init__", "errors"))
)
def test_core_and_client_modules_do_not_name_airflow(name: str) -> None:
    airflow = {m for m in imports_of(name) if m == "airflow" or m.startswith("airflow.")}
    assert airflow == set()


def test_importing_the_core_and_the_client_loads_no_airflow() -> None:
    names = sorted(n for n in MODULES if layer(n) in ("core", "client", "__init__", "errors"))
    code = (
        f"import {', '.join(names)}; import sys; "
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')); "
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", str(ROOT / "runbooks")],
        ["plan", str(EHR)],
        ["rehearse", str(EHR), "--nogo", "go_nogo_2"],
    ],
)
def test_offline_commands_work_where_airflow_cannot_be_imported(argv: list[str]) -> None:
    # sys.modules["airflow"] = None makes every `import airflow...` raise ImportError.
    code = (
        "import sys; sys.modules['airflow'] = None; "
        "from gonogo.client.cli import main; "
        f"sys.exit(main({argv!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
