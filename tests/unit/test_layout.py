"""The README's Layout names every folder and module of the package, so a reader finds each one.

A module added without a word in the Layout fails here: say where it belongs and
what it is for.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "plugins" / "gonogo"


def _layout() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Layout") :]
    start = section.index("```")
    return section[start : section.index("```", start + 3)]


def test_the_layout_names_every_folder_and_module() -> None:
    layout = _layout()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout))
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path.stem == "__init__":
            if relative.parent != Path(".") and f"{relative.parent.name}/" not in layout:
                missing.append(f"the folder {relative.parent}/")
        elif path.stem not in words:
            missing.append(str(relative))
    assert not missing, "README.md's Layout does not name: " + ", ".join(missing)


def test_every_folder_of_the_core_says_what_belongs_there() -> None:
    for init in sorted((PACKAGE / "core").glob("*/__init__.py")):
        text = init.read_text(encoding="utf-8").strip()
        assert text.startswith('"""') and len(text) > 40, f"{init.parent.name}/ has no docstring"


def test_the_core_keeps_only_shared_names_at_its_top() -> None:
    """Everything else lives in a folder by concept."""
    top = sorted(p.stem for p in (PACKAGE / "core").glob("*.py"))
    assert top == ["__init__", "naming", "settings"]
