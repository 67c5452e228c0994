"""YAML text to plain data that remembers where each key and value was written.

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
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from gonogo.core.settings import MAX_RUNBOOK_BYTES as MAX_BYTES
from gonogo.errors import Problem, RunbookError

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


def validation_problems(
    source: Source,
    error: ValidationError,
    fields_at: Callable[[Loc], list[str]],
    clean: Callable[[Loc], Loc] = lambda loc: loc,
) -> list[Problem]:
    """Pydantic's errors as problems at the places they were written, one per place.

    ``fields_at`` gives the keys the format allows at a place (for "did you
    mean"); ``clean`` drops what pydantic adds to a location that the file does
    not hold (a union member's name, a discriminator's tag). A union reports each
    of its members; the first problem at a place is enough.
    """
    found: dict[tuple[int, int, str], Problem] = {}
    for item in error.errors(include_url=False):
        loc = clean(_without_members(item["loc"]))
        kind = item["type"]
        if kind == "extra_forbidden":
            allowed = fields_at(loc[:-1])
            hint = did_you_mean(str(loc[-1]), allowed)
            expected = (
                f"; expected one of: {', '.join(sorted(allowed))}" if allowed and not hint else ""
            )
            problem = source.problem(loc, f"unknown key{hint}{expected}", key=True)
        elif kind == "missing":
            problem = source.problem(loc[:-1], f"missing required key {loc[-1]!r}")
        elif kind in ("union_tag_invalid", "model_type"):
            problem = source.problem(loc, "expected a mapping")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            problem = source.problem(loc, _soften(message, item.get("input")))
        found.setdefault((problem.line, problem.column, problem.path), problem)
    return list(found.values())


def _without_members(loc: Iterable[str | int]) -> Loc:
    """Drop the union members pydantic names in a location (``list[str]``, ``literal['all']``)."""
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("list[", "literal["))))


def _soften(message: str, value: Any) -> str:
    """Pydantic's messages, with the offending value appended where that helps."""
    if isinstance(value, str | int | float | bool) and repr(value) not in message:
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "...'"
        return f"{message[0].lower()}{message[1:]}, got {shown}"
    return message[0].lower() + message[1:] if message else message


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
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            # Not only YAML errors: an impossible date (2026-02-30) or an integer of
            # thousands of digits raises ValueError from the constructor itself.
            line, column = self._at(node)
            kind = str(node.tag).rsplit(":", 1)[-1]
            why = str(exc).split(";")[0]
            reason = getattr(exc, "problem", None) or (
                f"{str(node.value)[:40]!r} is not a valid {kind}: {why}"
            )
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
        deep = _too_deep(text)
        if deep is not None:
            message = f"nested more than {MAX_DEPTH} levels deep; a runbook needs far fewer"
            raise RunbookError([Problem(file, deep[0], deep[1], "", message)])
        node = _compose(text, file)
    builder = _Builder(source, yaml.constructor.SafeConstructor())
    source.data = builder.build(node, ())
    if builder.problems:
        raise RunbookError(builder.problems)
    return source


#: How deep mappings and lists may nest. Composing is recursive (libyaml's composer
#: crashes the process at about 100,000 levels, PyYAML's raises RecursionError at a
#: few hundred), so before PyYAML's composer runs, depth is measured by the parser,
#: which does not recurse. libyaml is only asked when it stops at a nesting limit of
#: its own (:data:`_LIBYAML_BOUNDED`); its tree is measured as it is walked.
MAX_DEPTH = 100
_OPENERS = re.compile(r"[\[{]")


def _too_deep(text: str) -> tuple[int, int] | None:
    """Where the text first nests deeper than :data:`MAX_DEPTH`, or None.

    Block nesting needs a deeper column per level, so it cannot exceed the
    longest line; flow nesting cannot exceed the number of ``[`` and ``{``. Only
    text where that bound is high pays for a pass over the parser's events.
    """
    longest = max((len(line) for line in text.splitlines()), default=0)
    if longest + len(_OPENERS.findall(text)) <= MAX_DEPTH:
        return None
    # libyaml first, for speed; newer libyaml builds stop at a nesting limit of their
    # own (1,000 levels in PyYAML 6.0.4) before any event reaches this depth, so on
    # any error the pure-Python parser, which has no such limit, measures again.
    loaders = [yaml.SafeLoader] if _LIBYAML is None else [_LIBYAML, yaml.SafeLoader]
    for loader in loaders:
        try:
            return _first_too_deep(yaml.parse(text, Loader=loader))
        except yaml.YAMLError:
            continue
    return None  # the composer reports the error, at no greater depth than reached here


def _first_too_deep(events: Iterator[yaml.Event]) -> tuple[int, int] | None:
    depth = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            mark = event.start_mark
            if depth > MAX_DEPTH:
                return (mark.line + 1, mark.column + 1) if mark else (1, 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def _bounded(loader: type[yaml.CSafeLoader] | None) -> bool:
    """Whether libyaml refuses deep nesting itself (1,000 levels from PyYAML 6.0.4 on).

    Asked once, with a nesting it reaches safely either way (far below where its
    composer would crash), so an older libyaml is never handed a nesting bomb.
    """
    if loader is None:
        return False
    deep = "[" * 1500 + "]" * 1500
    try:
        for _ in yaml.parse(deep, Loader=loader):
            pass
    except yaml.YAMLError:
        return True
    return False


_LIBYAML_BOUNDED = _bounded(_LIBYAML)


def _compose_with_libyaml(text: str) -> yaml.Node | None:
    """The node tree from libyaml, about twenty times faster than PyYAML's own parser.

    Only an answer that PyYAML would give too is used. On an error, an empty
    document, an alias, an empty value or syntax the two parsers read
    differently (``_DIVERGENT``) this returns None and :func:`_compose` decides,
    so messages and positions are always those of the reference composer. A
    property test checks that both composers agree whenever this returns a tree.
    """
    if _LIBYAML is None or not _LIBYAML_BOUNDED or _DIVERGENT.search(text):
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
    """Whether a node is reachable twice, is an empty plain value, or nests too deep.

    libyaml composes an alias as the anchored node itself (nothing is expanded),
    so a node reachable twice is an alias; the reference composer says where it
    is written. PyYAML places an empty value right after its ``:``, libyaml at
    the next token. Too deep, :func:`_too_deep` says where, as without libyaml.
    """
    seen: set[int] = set()
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            if depth > MAX_DEPTH:
                return True
            for key, value in node.value:
                stack += ((key, depth + 1), (value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            if depth > MAX_DEPTH:
                return True
            stack += ((item, depth + 1) for item in node.value)
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
