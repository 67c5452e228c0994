"""Runbook commands as shell text: no value is ever part of what a shell parses.

A bash command runs exactly as it is written. A value reaches it only as an
environment variable: every param as ``"$GONOGO_PARAM_<NAME>"``, anything else
through the action's ``env:``, whose values are templates Airflow renders and
no shell parses. Where a list of arguments is enough, ``exec:`` runs it without
a shell, and each template fills exactly one argument.

An earlier design rewrote each template into a quoted variable wherever a
scanner judged it a whole shell word. Bash has more ways to turn a word into
code than any scanner follows (arithmetic, ``eval`` behind a function or a
quote, a pipe into ``sh``), so validation now refuses every template in shell
text (:func:`templates_in`, with the spelling to use from :func:`spelling`) and
warns where the runbook's own text evaluates a value's variable as code
(:func:`evaluated`). Those warnings are a reviewer's aid, not the guard: the
guard is that a value is never shell text.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

from gonogo.core.runs.gates import literal

#: A Jinja expression or block in text, closed or not: in shell text each is refused.
_JINJA = re.compile(r"{{(.*?)(?:}}|$)|{%(.*?)(?:%}|$)", re.S)
_PARAM = re.compile(
    r"""^params(?:\.([A-Za-z_]\w*)|\[\s*(['"])([^'"]+)\2\s*\])(?:\s*\|\s*shquote)?$"""
)
_FILTERS = re.compile(r"\s*\|.*$", re.S)

# -- which programs run code: one classification, for shell text and for exec lists --------

#: Shells: each runs its ``-c`` argument, a script file or its input as shell code.
SHELLS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "rbash", "csh", "tcsh", "fish", "yash"}
)
#: Interpreters (shells too): the first positional argument is a script, a code option's is code.
INTERPRETER = re.compile(
    r"^(?:" + "|".join(sorted(SHELLS)) + r"|busybox|python[\d.]*|pypy[\d.]*|perl[\d.]*|"
    r"ruby[\d.]*|node(?:js)?|deno|[gnm]?awk|sed|php[\d.]*|lua[\d.]*|tclsh[\d.]*|wish|Rscript|R|"
    r"pwsh|osascript|expect|jq)$"
)
CODE_OPTIONS = frozenset({"-c", "-e", "-E", "--eval", "--command", "-x", "-f", "--expression"})
#: Programs that run any argument as code (ssh joins them into a remote shell command).
ANY_ARGUMENT_IS_CODE = frozenset({"ssh", "eval", "su", "watch", "parallel", "script"})
#: Programs that run the program named after their options (and these many positionals).
WRAPPERS = {
    "sudo": 0, "doas": 0, "env": 0, "xargs": 0, "nice": 0, "nohup": 0, "setsid": 0,
    "stdbuf": 0, "time": 0, "command": 0, "exec": 0, "runuser": 0, "ionice": 0,
    "timeout": 1, "flock": 1, "chroot": 1, "taskset": 1, "builtin": 0,
}  # fmt: skip
#: Shell builtins that run a file or text as code, or evaluate a name or arithmetic in it.
_EVALUATES = frozenset(
    {
        "source", ".", "trap", "let", "declare", "typeset", "local", "readonly", "export",
        "read", "mapfile", "readarray", "printf", "find",
    }
)  # fmt: skip


def runs_code(program: str) -> bool:
    """Whether ``program`` (a name, no path) can run what it is given as code."""
    return (
        program in _EVALUATES
        or program in ANY_ARGUMENT_IS_CODE
        or program in WRAPPERS
        or INTERPRETER.match(program) is not None
    )


#: Where bash evaluates text as arithmetic, in which a name like ``a[$(cmd)]`` runs cmd.
_ARITHMETIC = (
    re.compile(r"\$\(\((.*?)\)\)", re.S),
    re.compile(r"(?<![$\w])\(\((.*?)\)\)", re.S),
    re.compile(r"\$\[(.*?)\]", re.S),
    re.compile(r"\[\[(.*?)\]\]", re.S),
    re.compile(r"\$\{\w+\[([^\]]*)\]", re.S),
    re.compile(r"(?:^|[\s;&|(])(?:\[|test)\s+(?:!\s+)?-v\s+(.*?)(?:\]|$|[;&|\n])", re.M),
)
_SEPARATORS = re.compile(r"\|\||&&|[;&\n()]|\|&?")


def shquote(value: Any) -> str:
    """A Jinja filter: any value as one literal shell word."""
    return shlex.quote("" if value is None else str(value))


def env_name(name: str) -> str:
    """A param name as the tail of an environment variable: ``app-version`` is ``APP_VERSION``."""
    return re.sub(r"\W", "_", name).upper()


def param_variable(name: str) -> str:
    """The environment variable every shell action has for param ``name``."""
    return f"GONOGO_PARAM_{env_name(name)}"


def param_name(expression: str) -> str | None:
    """The param a template names on its own (``params.v``, ``params['v']``, ``| shquote``)."""
    match = _PARAM.match(expression.strip())
    if match is None:
        return None
    return match.group(1) or match.group(3)


def templates_in(text: str) -> list[str]:
    """Every ``{{ … }}`` and ``{% … %}`` in ``text``, as written (an unclosed one too)."""
    return [m.group(0) for m in _JINJA.finditer(text)]


def spelling(template: str) -> str:
    """Why ``template`` cannot be in shell text, and what to write instead."""
    if template.startswith("{%"):
        return (
            f"{template} is a template block in shell text; a command runs as written: "
            "decide in the runbook (a step per case) or in a script"
        )
    expression = template.removeprefix("{{").removesuffix("}}").strip("-").strip()
    name = param_name(expression)
    if name is not None:
        return (
            f'{template} in shell text: write "${param_variable(name)}" instead '
            "(every param is in the environment; a value is never shell text), "
            f'or use exec: [program, …, "{template}"]'
        )
    own = re.sub(r"\W+", "_", _FILTERS.sub("", expression)).strip("_").upper()[:40]
    own = own if own and not own[0].isdigit() else "VALUE"
    return (
        f'{template} in shell text: set it in env: ({own}: "{template}") and write '
        f'"${own}" instead, or use exec: [program, …, "{template}"]'
    )


def as_written(command: str) -> str:
    """A command for BashOperator: Jinja-literal, so Airflow's rendering changes nothing.

    ``${#a[@]}`` stays as written. BashOperator reads a command that ends in
    ``.sh`` as a template file, so such a command gets a trailing space.
    """
    text = literal(command)
    return text + " " if text.rstrip().endswith((".sh", ".bash")) else text


def evaluated(command: str, variables: Iterable[str]) -> list[str]:
    """Where ``command`` evaluates one of ``variables`` as code: one line for each.

    A heuristic over the text, for the runbook's reviewer: arithmetic (where a
    value such as ``a[$(touch x)]`` runs), a command that runs its arguments or
    its input as code (``eval``, ``sh -c``, ``source``, ``xargs``…), a pipe or a
    here-string into a shell, and ``source <(…)``.
    """
    names = sorted({v for v in variables if v in command}, key=len, reverse=True)
    if not names:  # most commands name none of them: nothing to look for
        return []
    alternatives = "|".join(map(re.escape, names))
    referenced = re.compile(rf"\$\{{?[#!]?({alternatives})\b")
    bare = re.compile(rf"(?<![\w$])({alternatives})\b")
    found: list[str] = []

    def add(line: str) -> None:
        if line not in found:
            found.append(line)

    for pattern in _ARITHMETIC:
        for match in pattern.finditer(command):
            for name in {*referenced.findall(match.group(1)), *bare.findall(match.group(1))}:
                add(f"${name} is evaluated as arithmetic in {_short(match.group(0))}")
    for name in re.findall(rf"\$\{{!({alternatives})\b", command):
        add(f"${name} is used as a variable name (${{!…}}), which evaluates a[$(…)] in it")
    for name in re.findall(rf"\$\{{({alternatives})@P", command):
        add(f"${name} is expanded as a prompt (@P), which runs $(…) in it")
    for match in re.finditer(r"\$\{\w+:(?![-=+?])([^}]*)\}", command):  # ${v:offset:length}
        for name in {*referenced.findall(match.group(1)), *bare.findall(match.group(1))}:
            add(f"${name} is evaluated as arithmetic in {_short(match.group(0))}")
    for match in re.finditer(r"\b\w+\[([^\]]*)\]\+?=", command):  # a[…]=: an array subscript
        for name in {*referenced.findall(match.group(1)), *bare.findall(match.group(1))}:
            add(f"${name} is evaluated as arithmetic in the subscript {_short(match.group(0))}")
    heredocs = re.finditer(
        r"(?:^|[\s;&|(])(?:\S*/)?(sh|bash|dash|zsh|ksh)\b[^\n]*<<-?\s*(\w+)[^\n]*\n(.*?)^\s*\2\s*$",
        command,
        re.S | re.M,
    )
    for match in heredocs:  # an unquoted delimiter: the value is put into the script's text
        if referenced.search(match.group(3)):
            add(f"a here-document into {match.group(1)} puts the value into its code")
    for match in re.finditer(
        r"\|&?\s*(?:\S*/)?(sh|bash|dash|zsh|ksh|python3?|perl)\s*(?=$|[;&|)\n]|-s\b|-\s)",
        command,
        re.M,
    ):
        line_start = command.rfind("\n", 0, match.start()) + 1
        if referenced.search(command[line_start : match.start()]):
            add(f"output that holds a value is piped into {match.group(1)}")
    if re.search(r"(?:^|[\s;&|])(?:source|\.)\s+<\(", command) and referenced.search(command):
        add("source <(…) runs the output as code")
    pieces = _SEPARATORS.split(command)
    for piece in pieces:
        words = piece.split()
        program = _program(words)
        if program and referenced.search(next(w for w in words if _program([w]) == program)):
            add(f"{_short(program)} is a value run as the program")
        code_at = [
            i
            for i, w in enumerate(words[:-1])
            if os.path.basename(w.strip("'\"")) in SHELLS and words[i + 1] == "-c"
        ]
        if code_at and referenced.search(" ".join(words[code_at[0] :])):
            add(f"a value is passed to {words[code_at[0]]} -c, which runs it as code")
        for name in referenced.findall(piece):
            if runs_code(program) and (program != "printf" or "-v" in words):
                add(f"${name} is passed to {program}, which can run it as code")
        if "<<<" in piece and program in SHELLS and referenced.search(piece.split("<<<", 1)[1]):
            add(f"a here-string into {program} runs its text as code")
    return found


def _program(words: Sequence[str]) -> str:
    """The program a simple command runs: reserved words and assignments skipped, no path."""
    for word in words:
        if word in ("!", "{", "then", "do", "else", "elif", "if", "while", "until"):
            continue
        if re.match(r"^[A-Za-z_]\w*(\[[^\]]*\])?\+?=", word):
            continue
        return os.path.basename(word.strip("'\"\\$"))
    return ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "…"
