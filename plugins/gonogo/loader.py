"""YAML text to a validated :class:`~gonogo.model.Runbook`, every problem located.

PyYAML's ``safe_load`` forgets where things came from and keeps the last of two
duplicate keys. So this module composes the node tree with safe semantics (no
Python tags), builds plain data from it while recording the line and column of
every key and value, and refuses duplicate keys and aliases (the only way to
write a "billion laughs" bomb). Pydantic and the semantic checks then report
against those positions.

Composing uses libyaml when PyYAML has it, because PyYAML's pure-Python parser
takes most of the time of ``gonogo validate``. Anything libyaml might read
differently, and every error, goes to the pure-Python composer, so the result
and the messages do not depend on whether libyaml is installed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gonogo.errors import Problem, RunbookError
from gonogo.model import Runbook

MAX_BYTES = 1024 * 1024
SUFFIXES = (".yaml", ".yml")

Loc = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"


@dataclass
class Source:
    """A parsed YAML document and where each of its parts came from (1-based line and column)."""

    file: str
    data: Any
    value_at: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_at: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """The position of ``loc``, or of its closest recorded ancestor."""
        probe = tuple(loc)
        while True:
            table = self.key_at if key else self.value_at
            if probe in table:
                return table[probe]
            if not key and probe in self.key_at:
                return self.key_at[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]
            key = False

    def problem(
        self, loc: Loc, message: str, *, key: bool = False, warning: bool = False
    ) -> Problem:
        line, column = self.position(loc, key=key)
        return Problem(
            self.file,
            line,
            column,
            format_loc(loc),
            message,
            "warning" if warning else "error",
        )


def format_loc(loc: Iterable[str | int]) -> str:
    """``('phases', 2, 'steps', 0, 'timeout')`` reads ``phases[2].steps[0].timeout``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A "did you mean" suffix for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Builder:
    """Turns a composed node tree into plain data and position tables."""

    def __init__(self, source: Source, constructor: yaml.constructor.SafeConstructor) -> None:
        self.source = source
        self.constructor = constructor
        self.problems: list[Problem] = []

    def _at(self, node: yaml.Node) -> tuple[int, int]:
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.source.value_at[loc] = self._at(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        if node.tag == _STR:  # most values; the constructor would return node.value too
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            line, column = self._at(node)
            reason = getattr(exc, "problem", None) or str(exc)
            self.problems.append(
                Problem(self.source.file, line, column, format_loc(loc), f"{reason}")
            )
            return None

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, column = self._at(key_node)
                self.problems.append(
                    Problem(
                        self.source.file,
                        line,
                        column,
                        format_loc(loc),
                        "a key must be a plain name",
                    )
                )
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                line, column = self._at(key_node)
                self.problems.append(
                    Problem(
                        self.source.file,
                        line,
                        column,
                        format_loc(loc),
                        "merge keys (<<) are not supported",
                    )
                )
                continue
            # Keys are always text: `on:` must not become True, nor `1:` an int.
            key = str(key_node.value)
            child = (*loc, key)
            if key in result:
                line, column = self._at(key_node)
                first_line, _ = self.source.key_at[child]
                self.problems.append(
                    Problem(
                        self.source.file,
                        line,
                        column,
                        format_loc(child),
                        f"duplicate key; it is already set on line {first_line}",
                    )
                )
                continue
            self.source.key_at[child] = self._at(key_node)
            result[key] = self.build(value_node, child)
        return result


class _Composer(yaml.SafeLoader):
    """SafeLoader that refuses aliases where they are written, before anything expands them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases: list[yaml.Mark] = []

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            self.aliases.append(event.start_mark)
            self.get_event()  # type: ignore[no-untyped-call]
            return yaml.ScalarNode("tag:yaml.org,2002:null", "", event.start_mark, event.end_mark)
        return super().compose_node(parent, index)  # type: ignore[arg-type]


_LIBYAML: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)
#: Where libyaml and PyYAML read the same text differently: tabs, tags, ``?`` (PyYAML
#: refuses it anywhere in a flow collection), a comment right after a block scalar
#: header, and a byte order mark after the start. Such text goes to the reference composer.
_DIVERGENT = re.compile(r"[\t!?]|[|>][-+\d]*#|.\ufeff", re.S)


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document with positions. Raises :class:`RunbookError` on any problem."""
    source = Source(file, None)
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise RunbookError([Problem(file, 1, 1, "", f"file is larger than {MAX_BYTES} bytes")])
    node = _compose_with_libyaml(text)
    if node is None:
        node = _compose(text, file)
    builder = _Builder(source, yaml.constructor.SafeConstructor())
    source.data = builder.build(node, ())
    if builder.problems:
        raise RunbookError(builder.problems)
    return source


def _compose_with_libyaml(text: str) -> yaml.Node | None:
    """The node tree from libyaml, about twenty times faster than PyYAML's own parser.

    Only an answer that PyYAML would give too is used. On an error, an empty
    document, an alias, an empty value or syntax the two parsers read
    differently (``_DIVERGENT``) this returns None and :func:`_compose` decides,
    so messages and positions are always those of the reference composer. A
    property test checks that both composers agree whenever this returns a tree.
    """
    if _LIBYAML is None or _DIVERGENT.search(text):
        return None
    loader = _LIBYAML(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
    except Exception:  # any doubt goes to the reference composer
        return None
    finally:
        loader.dispose()
    if node is None or _needs_reference(node):
        return None
    return node


def _needs_reference(root: yaml.Node) -> bool:
    """Whether a node is reachable twice, or is an empty plain value.

    libyaml composes an alias as the anchored node itself (nothing is expanded),
    so a node reachable twice is an alias; the reference composer says where it
    is written. PyYAML places an empty value right after its ``:``, libyaml at
    the next token.
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
        elif isinstance(node, yaml.ScalarNode) and not node.value and not node.style:
            return True
    return False


def _compose(text: str, file: str) -> yaml.Node:
    """The node tree from PyYAML's pure-Python composer, which says where each error is."""
    try:
        loader = _Composer(text)
    except yaml.reader.ReaderError as exc:
        # The reader refuses control characters before parsing starts, and only knows the offset.
        line, column = _line_column(text, exc.position)
        message = f"invalid YAML: the character U+{exc.character:04X} is not allowed"
        raise RunbookError([Problem(file, line, column, "", message)]) from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        raise RunbookError([Problem(file, line, column, "", f"invalid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise RunbookError([Problem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise RunbookError(
            [Problem(file, 1, 1, "", "the file is empty; expected a runbook mapping")]
        )
    if loader.aliases:
        first, more = loader.aliases[0], len(loader.aliases) - 1
        also = f" ({more} more in this file)" if more else ""
        message = f"aliases (*name) are not allowed in runbooks; write the value out{also}"
        raise RunbookError([Problem(file, first.line + 1, first.column + 1, "", message)])
    return node


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of a character offset, counting line breaks as YAML does."""
    lines = text[:offset].splitlines(keepends=True)
    if not lines:
        return (1, 1)
    last = lines[-1]
    if last != last.rstrip("\r\n\x85\u2028\u2029"):
        return (len(lines) + 1, 1)
    return (len(lines), len(last) + 1)


def _pydantic_problems(source: Source, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = _without_union_tag(item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            parent = _model_fields_at(source, loc[:-1])
            hint = did_you_mean(str(loc[-1]), parent)
            expected = (
                f"; expected one of: {', '.join(sorted(parent))}" if parent and not hint else ""
            )
            problems.append(source.problem(loc, f"unknown key{hint}{expected}", key=True))
        elif kind == "missing":
            problems.append(source.problem(loc[:-1], f"missing required key {loc[-1]!r}"))
        else:
            message = item["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            if kind == "union_tag_invalid" or kind == "model_type":
                message = "expected a mapping"
            problems.append(source.problem(loc, _soften(message, item.get("input"))))
    return problems


def _without_union_tag(loc: Loc) -> Loc:
    """Drop the '<phase>'/'<gate>' tag pydantic puts after ``phases[i]``, and only that one.

    A user's own key may start with '<' too; it stays, so the unknown key is still reported.
    """
    if len(loc) > 2 and loc[0] == "phases" and loc[2] in ("<phase>", "<gate>"):
        return (*loc[:2], *loc[3:])
    return loc


def _soften(message: str, value: Any) -> str:
    """Pydantic's messages, with the offending value appended where that helps."""
    if isinstance(value, str | int | float | bool) and repr(value) not in message:
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "...'"
        return f"{message[0].lower()}{message[1:]}, got {shown}"
    return message[0].lower() + message[1:] if message else message


def _model_fields_at(source: Source, loc: Loc) -> list[str]:
    """The keys the schema allows at ``loc``, for "did you mean" hints."""
    from typing import get_args, get_origin

    from gonogo import model as m

    current: Any = m.Runbook
    data: Any = source.data
    skip_next = False  # the next part is a list index or a dict key, not a field
    for part in loc:
        data = _child(data, part)
        if skip_next:
            skip_next = False
            if current is None and isinstance(data, dict):  # an item of phases
                current = m.Gate if "gate" in data else m.Phase
            continue
        fields = getattr(current, "model_fields", {})
        info = next((f for n, f in fields.items() if (f.alias or n) == part), None)
        if info is None:
            return []
        if current is m.Runbook and part == "phases":
            current, skip_next = None, True
            continue
        current = None
        for candidate in (info.annotation, *get_args(info.annotation)):
            origin = get_origin(candidate)
            if origin in (list, dict):
                candidate, skip_next = get_args(candidate)[-1], True
            if hasattr(candidate, "model_fields"):
                current = candidate
                break
        if current is None and not skip_next:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _child(data: Any, part: str | int) -> Any:
    if isinstance(data, list) and isinstance(part, int) and part < len(data):
        return data[part]
    return data.get(part) if isinstance(data, dict) else None


def load_text(text: str, file: str = "<string>") -> tuple[Runbook, list[Problem]]:
    """Validate runbook text. Returns the runbook and its warnings; raises on any error."""
    from gonogo.checks import check

    source = parse_yaml(text, file)
    if not isinstance(source.data, dict):
        raise RunbookError(
            [source.problem((), "expected a mapping with 'runbook', 'title', … at the top")]
        )
    try:
        runbook = Runbook.model_validate(source.data)
    except ValidationError as exc:
        raise RunbookError(_pydantic_problems(source, exc)) from None
    problems = check(runbook, source)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RunbookError(problems)
    return runbook, problems


def load_file(path: str | os.PathLike[str]) -> tuple[Runbook, list[Problem]]:
    """Read and validate one runbook file."""
    path = Path(path)
    shown = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise RunbookError([Problem(shown, 1, 1, "", f"file is larger than {MAX_BYTES} bytes")])
        raw = path.read_bytes()
    except OSError as exc:
        raise RunbookError(
            [Problem(shown, 1, 1, "", f"cannot read the file: {exc.strerror}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunbookError(
            [Problem(shown, 1, 1, "", f"the file is not UTF-8 ({exc.reason})")]
        ) from None
    return load_text(text, shown)


def runbook_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every runbook file named, or found below the folders named (hidden ones left out)."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if not path.is_dir():
            found.append(path)
            continue
        below: list[Path] = []
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            below.extend(
                Path(folder, n) for n in names if n.endswith(SUFFIXES) and not n.startswith(".")
            )
        found.extend(sorted(below))
    return found
