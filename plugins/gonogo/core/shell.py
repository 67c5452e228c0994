"""Runbook commands as shell text: template values reach the shell as data, never as code.

A ``{{ … }}`` in a bash command used to be rendered into the command text, so
a value such as ``$(touch x)`` inside double quotes ran as code. Now no value
is ever part of the text bash parses: every template becomes a quoted variable
(``"$GONOGO_PARAM_MSG"`` for a param, ``"$GONOGO_VALUE_1"`` for anything else)
and its value travels in the environment, which Airflow renders and bash never
parses. That is only safe where the variable stands as a whole word, outside
any quotes, so :func:`scan` classifies every template and validation
(:mod:`gonogo.core.rules`) refuses the rest with the safe spelling.

The scanner is deliberately conservative: it follows words, quotes, comments,
``$( … )``, backticks, ``${ … }``, ``(( … ))`` and ``[[ … ]]`` well enough to
know whether a template is a plain argument word, and refuses a template
wherever it cannot be sure: inside quotes or a substitution, in part of a
word, in a heredoc, after ``case``, as the command itself, or as an argument
of a builtin or wrapper that runs its arguments as code (``eval``, ``sudo``,
``ssh``…).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from gonogo.core.gates import literal

_TEMPLATE_AT = re.compile(r"{{(.*?)}}", re.S)
_PARAM = re.compile(
    r"""^params(?:\.([A-Za-z_]\w*)|\[\s*(['"])([^'"]+)\2\s*\])(?:\s*\|\s*shquote)?$"""
)
_SHQUOTE = re.compile(r"\s*\|\s*shquote$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*(\[[^\]]*\])?\+?=")
_DELIMITERS = " \t\n;&|()<>"
#: Words after which the next word is still a command (reserved words, assignments aside).
_PREFIXES = frozenset({"!", "{", "then", "do", "else", "elif", "if", "while", "until", "time"})
#: Builtins and wrappers that run an argument as code or as a program, or evaluate it
#: as arithmetic or a variable name; a value passed to them could run as code.
EVALUATORS = frozenset(
    {
        "eval", "let", "source", ".", "exec", "trap", "alias", "declare", "typeset",
        "local", "export", "readonly", "command", "builtin", "unset", "read",
        "mapfile", "sudo", "su", "doas", "env", "nohup", "xargs", "nice", "timeout",
        "watch", "ssh", "parallel", "flock", "setsid", "stdbuf",
    }
)  # fmt: skip
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})


def shquote(value: Any) -> str:
    """A Jinja filter: any value as one literal shell word."""
    return shlex.quote("" if value is None else str(value))


def env_name(name: str) -> str:
    """A param name as the tail of an environment variable: ``app-version`` is ``APP_VERSION``."""
    return re.sub(r"\W", "_", name).upper()


def param_name(expression: str) -> str | None:
    """The param a template names on its own (``params.v``, ``params['v']``, ``| shquote``)."""
    match = _PARAM.match(expression.strip())
    if match is None:
        return None
    return match.group(1) or match.group(3)


@dataclass(frozen=True)
class Found:
    """One ``{{ … }}`` in a command: where it is, and why it is unsafe (None when it is safe)."""

    start: int
    end: int
    expression: str
    unsafe: str | None = None

    @property
    def text(self) -> str:
        return "{{ " + self.expression + " }}"


def variable(expression: str, number: int = 1) -> str:
    """The environment variable that carries a template's value into the command."""
    name = param_name(expression)
    return f"GONOGO_PARAM_{env_name(name)}" if name else f"GONOGO_VALUE_{number}"


#: Where quoting the value does not help: the shell would still run or evaluate it.
_NOT_BY_QUOTING = ("as the command", "as an argument of", "inside [[", "inside (( ", "inside $((")


def advice(found: Found) -> str:
    """What is wrong with an unsafe template and, where there is one, the safe spelling."""
    assert found.unsafe is not None
    if found.unsafe.startswith(_NOT_BY_QUOTING):
        return f"{found.text} cannot be used {found.unsafe}"
    quote = "" if found.unsafe.startswith("in a heredoc") else '"'
    name = param_name(found.expression)
    if name is not None:
        spelling = f"{quote}$GONOGO_PARAM_{env_name(name)}{quote}"
        return f"write {spelling} instead of {found.text} {found.unsafe}"
    own = re.sub(r"\W+", "_", _SHQUOTE.sub("", found.expression)).strip("_").upper()[:40]
    own = own if own and not own[0].isdigit() else "VALUE"
    return (
        f'write {quote}${own}{quote} with env: {{{own}: "{found.text}"}} '
        f"instead of {found.text} {found.unsafe}"
    )


class _Scanner:
    """Walks a command once, recording every template and whether it is a safe whole word."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: list[Found] = []
        self.lost: str | None = None  # set once the scanner cannot follow the rest

    # -- helpers ---------------------------------------------------------------------------

    def _template(self, i: int) -> int | None:
        """The end of the template starting at ``i``, or None when none starts there."""
        if not self.text.startswith("{{", i):
            return None
        match = _TEMPLATE_AT.match(self.text, i)
        return match.end() if match else None

    def _record(self, i: int, end: int, unsafe: str | None) -> None:
        raw = self.text[i + 2 : end - 2]
        if raw.startswith("-") or raw.endswith("-"):
            unsafe = unsafe or "with whitespace control ({{- or -}}), which joins it to a word"
        self.found.append(Found(i, end, raw.strip("-").strip(), self.lost or unsafe))

    def _delimited(self, i: int) -> bool:
        return i >= len(self.text) or self.text[i] in _DELIMITERS

    # -- quoted and nested parts: every template inside is unsafe --------------------------

    def _until(self, i: int, reason: str, close: str, *, escapes: bool, what: str) -> int:
        """From ``i`` to after the closing ``close``, recording every template on the way."""
        while i < len(self.text):
            end = self._template(i)
            if end is not None:
                self._record(i, end, reason)
                i = end
            elif escapes and self.text[i] == "\\":
                i += 2
            elif self.text[i] == close:
                return i + 1
            else:
                i += 1
        self.lost = self.lost or f"after {what} that is never closed"
        return i

    def _single(self, i: int, reason: str) -> int:
        """From after an opening ``'`` to after its closing one."""
        return self._until(i, reason, "'", escapes=False, what="a quote")

    def _ansi(self, i: int, reason: str) -> int:
        """From after ``$'`` to after the closing ``'`` (backslash escapes apply)."""
        return self._until(i, reason, "'", escapes=True, what="a quote")

    def _double(self, i: int, reason: str) -> int:
        """From after an opening ``"`` to after its closing one."""
        while i < len(self.text):
            end = self._template(i)
            if end is not None:
                self._record(i, end, reason)
                i = end
                continue
            c = self.text[i]
            if c == "\\":
                i += 2
            elif c == '"':
                return i + 1
            elif c in "$`":
                i = self._dollar(i, reason)
            else:
                i += 1
        self.lost = self.lost or "after a quote that is never closed"
        return i

    def _backticks(self, i: int, reason: str) -> int:
        """From after an opening backtick to after its closing one."""
        return self._until(i, reason, "`", escapes=True, what="a backtick")

    def _braces(self, i: int, reason: str) -> int:
        """From after ``${`` to after the matching ``}``, quotes inside followed."""
        depth = 1
        while i < len(self.text):
            end = self._template(i)
            if end is not None:
                self._record(i, end, reason)
                i = end
                continue
            c = self.text[i]
            if c == "\\":
                i += 2
            elif c == "'":
                i = self._single(i + 1, reason)
            elif c == '"':
                i = self._double(i + 1, reason)
            elif c in "$`":
                i = self._dollar(i, reason)
            elif c == "{":
                depth, i = depth + 1, i + 1
            elif c == "}":
                depth -= 1
                i += 1
                if depth == 0:
                    return i
            else:
                i += 1
        self.lost = self.lost or "after a ${ that is never closed"
        return i

    def _dollar(self, i: int, reason: str | None) -> int:
        """A ``$`` or backtick construct at ``i``; returns the index after it."""
        text = self.text
        if text[i] == "`":
            return self._backticks(i + 1, reason or "inside backticks")
        if text.startswith("$((", i):
            return self._code(i + 3, "))", reason or "inside $(( … )) arithmetic")
        if text.startswith("$(", i):
            return self._code(i + 2, ")", reason or "inside $( … )")
        if text.startswith("${", i):
            return self._braces(i + 2, reason or "inside ${ … }")
        if text.startswith("$'", i):
            return self._ansi(i + 2, reason or "inside $'…' quotes")
        if text.startswith('$"', i):
            return self._double(i + 2, reason or "inside double quotes")
        return i + 1

    # -- shell code: words, commands, operators --------------------------------------------

    def _code(self, i: int, closer: str | None, reason: str | None) -> int:
        """Shell code from ``i`` up to ``closer`` (None: the end), returning the index after it.

        With ``reason`` set every template is unsafe for that reason; otherwise a
        template is safe when it is a whole word in argument position.
        """
        text = self.text
        command_pos = True
        command: list[str] = []  # the current simple command's words, unquoted
        redirect = False
        condition = False  # inside [[ … ]]
        word = ""
        word_start = True
        heredoc = False

        def finish() -> None:
            nonlocal word, command_pos, redirect, condition
            if not word:
                return
            plain = re.sub(r"""['"\\]""", "", word)
            if redirect:
                redirect = False
            elif command_pos and (plain in _PREFIXES or _ASSIGNMENT.match(plain)):
                pass
            elif command_pos:
                command_pos = False
                command.append(plain)
                if plain == "[[":
                    condition = True
                elif plain == "case":
                    self.lost = self.lost or "after case, whose patterns gonogo cannot follow"
            else:
                command.append(plain)
                if plain == "]]":
                    condition = False
            word = ""

        def control() -> None:
            nonlocal command_pos, redirect
            finish()
            command_pos, redirect = True, False
            command.clear()

        while i < len(text):
            if closer is not None and text.startswith(closer, i):
                finish()
                return i + len(closer)
            end = self._template(i)
            if end is not None:
                whole = word_start and not word and self._delimited(end)
                why = reason or self._argument_problem(
                    whole, command_pos and not redirect, command, condition
                )
                self._record(i, end, why)
                word += text[i:end] if not whole else "\x00"
                if whole and (command_pos and not redirect):
                    command_pos = False
                word_start = False
                i = end
                continue
            c = text[i]
            if c == "\n":
                control()
                if heredoc:
                    self.lost = self.lost or "in a heredoc (or after one)"
                word_start, i = True, i + 1
            elif c in " \t":
                finish()
                word_start, i = True, i + 1
            elif c == "#" and word_start and not word:
                while i < len(text) and text[i] != "\n":
                    end = self._template(i)
                    if end is not None:
                        self._record(i, end, reason)  # a comment: the shell never reads it
                        i = end
                    else:
                        i += 1
            elif c in ";&|":
                if c == "&" and text.startswith(">", i + 1):
                    finish()
                    redirect, word_start, i = True, True, i + 2
                    continue
                control()
                word_start, i = True, i + 1
            elif c in "<>":
                finish()
                if text.startswith("<<", i) and not text.startswith("<<<", i):
                    heredoc = True
                while i < len(text) and text[i] in "<>&|-":
                    i += 1
                redirect, word_start = True, True
            elif c == "(":
                finish()
                if command_pos and text.startswith("((", i):
                    i = self._code(i + 2, "))", reason or "inside (( … )) arithmetic")
                else:
                    i = self._code(i + 1, ")", reason)
                command_pos, word_start = False, True
            elif c == ")":
                # A ) that closes nothing: a case pattern, or text gonogo misread.
                self.lost = self.lost or "after a ) that gonogo cannot match"
                finish()
                word_start, i = True, i + 1
            elif c == "\\":
                word += text[i : i + 2]
                word_start, i = False, i + 2
            elif c == "'":
                start = i
                i = self._single(i + 1, reason or "inside single quotes")
                word += text[start:i]
                word_start = False
            elif c == '"':
                start = i
                i = self._double(i + 1, reason or "inside double quotes")
                word += text[start:i]
                word_start = False
            elif c in "$`":
                start = i
                i = self._dollar(i, reason)
                word += text[start:i]
                word_start = False
            else:
                word += c
                word_start, i = False, i + 1
        finish()
        if closer is not None:
            self.lost = self.lost or f"after a {closer[0]}( that is never closed"
        return i

    @staticmethod
    def _argument_problem(
        whole: bool, command_pos: bool, command: list[str], condition: bool
    ) -> str | None:
        if not whole:
            return "as part of a larger word; make it a word of its own"
        if command_pos:
            return "as the command itself; a value cannot choose the program that runs"
        if condition:
            return "inside [[ … ]], which may evaluate it as arithmetic; use [ … ] or a script"
        name = command[0] if command else ""
        if name in EVALUATORS:
            return f"as an argument of {name}, which can run it as code; pass it to a script"
        if name in _SHELLS and any(a.startswith("-") and "c" in a for a in command[1:]):
            return f"as an argument of {name} -c, which runs it as code; pass it to a script"
        if name == "printf" and "-v" in command[1:]:
            return "as an argument of printf -v, which can run it as code; pass it to a script"
        return None


def scan(command: str) -> list[Found]:
    """Every ``{{ … }}`` in ``command``, each marked safe or with the reason it is not."""
    scanner = _Scanner(command)
    scanner._code(0, None, None)
    return sorted(scanner.found, key=lambda f: f.start)


def unsafe_templates(command: str) -> list[Found]:
    """The templates of ``command`` that cannot be passed as an environment variable."""
    return [f for f in scan(command) if f.unsafe is not None]


def to_environment(command: str) -> tuple[str, dict[str, str]]:
    """The command with every template replaced by a quoted variable, and the templates it needs.

    ``echo {{ params.msg }} {{ run_id }}`` becomes ``echo "$GONOGO_PARAM_MSG"
    "$GONOGO_VALUE_1"`` and ``{"GONOGO_VALUE_1": "{{ run_id }}"}``; a param's own
    variable is in every action's environment already. Everything else in the
    command is made Jinja-literal, so rendering it changes nothing (``${#a[@]}``
    stays as written). Raises :class:`ValueError` on a template that
    :func:`unsafe_templates` refuses; validation reports those first.
    """
    found = scan(command)
    bad = [f for f in found if f.unsafe is not None]
    if bad:
        raise ValueError("; ".join(advice(f) for f in bad))
    parts: list[str] = []
    env: dict[str, str] = {}
    numbers: dict[str, int] = {}
    position = 0
    for item in found:
        parts.append(literal(command[position : item.start]))
        expression = _SHQUOTE.sub("", item.expression)
        if param_name(item.expression) is None:
            number = numbers.setdefault(expression, len(numbers) + 1)
            env[variable(expression, number)] = "{{ " + expression + " }}"
        else:
            number = 0
        parts.append(f'"${variable(item.expression, number)}"')
        position = item.end
    parts.append(literal(command[position:]))
    text = "".join(parts)
    # BashOperator reads a command that ends in .sh as a template file: a trailing space stops it.
    return (text + " " if text.rstrip().endswith((".sh", ".bash")) else text), env
