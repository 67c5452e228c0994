"""Semantic checks: what a single model cannot see on its own.

Every check appends to one list, so a user sees every problem in a file in one
pass. Each problem points at the line and column of the offending key or value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gonogo.core import naming
from gonogo.core.change.policy import PolicyError, current_policy
from gonogo.core.earlylife.checks import early_life_problems
from gonogo.core.runbook.graph import find_cycle, phase_upstreams
from gonogo.core.runbook.model import (
    ID_PATTERN,
    Gate,
    GlobalStep,
    Param,
    Phase,
    Runbook,
    Step,
)
from gonogo.core.runbook.shell import (
    ANY_ARGUMENT_IS_CODE,
    CODE_OPTIONS,
    INTERPRETER,
    WRAPPERS,
    env_name,
    evaluated,
    param_name,
    param_variable,
    spelling,
    templates_in,
)
from gonogo.core.runbook.source import Loc, Source, did_you_mean
from gonogo.core.runbook.templating import quoted_in_json, url_problem
from gonogo.core.settings import python_prefixes
from gonogo.core.timing.timeplan import time_problems
from gonogo.errors import Problem

TEMPLATE = re.compile(r"{{\s*(.*?)\s*}}")
PARAM_REF = re.compile(r"^params\.([A-Za-z_]\w*)")


def check(runbook: Runbook, source: Source) -> list[Problem]:
    """Every semantic problem in ``runbook``, errors and warnings."""
    problems: list[Problem] = []
    problems += _unique_ids(runbook, source)
    problems += _roles(runbook, source)
    problems += _dependencies(runbook, source)
    problems += _window_and_change(runbook, source)
    problems += _manual_owners(runbook, source)
    problems += _templates(runbook, source)
    problems += _values_are_data(runbook, source)
    problems += _names(runbook, source)
    problems += _python_callables(runbook, source)
    problems += _param_defaults(runbook, source)
    problems += _irreversible(runbook, source)
    problems += time_problems(runbook, source)
    problems += _communication(runbook, source)
    problems += early_life_problems(runbook, source)
    return problems


def actions_of(runbook: Runbook) -> Iterator[tuple[Loc, Any]]:
    """Every action-bearing item (steps, their rollbacks, checks, global steps) with its location."""
    for i, item in enumerate(runbook.phases):
        if isinstance(item, Phase):
            for j, step in enumerate(item.steps):
                yield ("phases", i, "steps", j), step
                if step.rollback is not None:
                    yield ("phases", i, "steps", j, "rollback"), step.rollback
                if step.rehearse is not None:
                    yield ("phases", i, "steps", j, "rehearse"), step.rehearse
        else:
            for j, check_ in enumerate(item.checks):
                yield ("phases", i, "checks", j), check_
    for j, global_step in enumerate(runbook.rollback.steps):
        yield ("rollback", "steps", j), global_step


def _unique_ids(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    seen: dict[str, Loc] = {}

    def claim(ident: str, loc: Loc) -> None:
        if ident in seen:
            line, _ = source.position(seen[ident])
            problems.append(source.problem(loc, f"id {ident!r} is already used on line {line}"))
        else:
            seen[ident] = loc

    for i, item in enumerate(runbook.phases):
        if isinstance(item, Phase):
            claim(item.id, ("phases", i, "id"))
            if item.id in naming.RESERVED_IDS or item.id.startswith(naming.GATE_PREFIX):
                problems.append(
                    source.problem(
                        ("phases", i, "id"),
                        f"{item.id!r} is a name gonogo uses for its own tasks; "
                        "give the phase another id",
                    )
                )
        else:
            claim(item.gate, ("phases", i, "gate"))
            if item.gate == naming.FREEZE_GATE:
                problems.append(
                    source.problem(
                        ("phases", i, "gate"),
                        f"{item.gate!r} is the gate gonogo adds for an exception to a freeze; "
                        "give the gate another id",
                    )
                )
    for loc, action in actions_of(runbook):
        if hasattr(action, "id"):  # steps, checks, global steps; not undo or rehearse actions
            claim(action.id, (*loc, "id"))
    return problems


def _roles(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    for name, defined in runbook.roles.items():
        if not defined.users:
            problems.append(
                source.problem(("roles", name), "a role needs at least one user", key=True)
            )

    def known(role: str, loc: Loc) -> None:
        if role not in runbook.roles:
            hint = did_you_mean(role, runbook.roles)
            defined = ", ".join(sorted(runbook.roles)) or "none"
            problems.append(
                source.problem(loc, f"unknown role {role!r}{hint} (defined roles: {defined})")
            )

    for loc, action in actions_of(runbook):
        if isinstance(action, Step | GlobalStep) and action.owner is not None:
            known(action.owner, (*loc, "owner"))
    for i, item in enumerate(runbook.phases):
        if isinstance(item, Gate):
            for j, role in enumerate(item.sign_off):
                known(role, ("phases", i, "sign_off", j))
    for key in ("decide_by", "approve"):
        for j, role in enumerate(getattr(runbook.rollback, key)):
            known(role, ("rollback", key, j))
    if runbook.approval is not None:
        for j, role in enumerate(runbook.approval.sign_off):
            known(role, ("approval", "sign_off", j))
    if runbook.rollback.mode == "decide" and not runbook.rollback.decide_by and not runbook.gates:
        problems.append(
            source.problem(
                ("rollback", "mode"),
                "decide mode asks the first sign_off role, but there is no gate; "
                "name the roles in rollback.decide_by",
            )
        )
    return problems


def _dependencies(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    phase_of: dict[str, int] = {}
    for i, item in enumerate(runbook.phases):
        if isinstance(item, Phase):
            for step in item.steps:
                phase_of.setdefault(step.id, i)
    for i, item in enumerate(runbook.phases):
        if not isinstance(item, Phase):
            continue
        for j, step in enumerate(item.steps):
            for k, dep in enumerate(step.depends_on or []):
                loc = ("phases", i, "steps", j, "depends_on", k)
                if dep == step.id:
                    problems.append(source.problem(loc, "a step cannot depend on itself"))
                elif dep not in phase_of:
                    hint = did_you_mean(dep, phase_of)
                    problems.append(source.problem(loc, f"unknown step {dep!r}{hint}"))
                elif phase_of[dep] > i:
                    later = runbook.phases[phase_of[dep]].id
                    problems.append(
                        source.problem(
                            loc,
                            f"step {dep!r} is in the later phase {later!r}; "
                            "depends_on names a step of the same or an earlier phase",
                        )
                    )
        ids = [s.id for s in item.steps]
        cycle = find_cycle(phase_upstreams(item)) if len(set(ids)) == len(ids) else []
        if cycle:
            # Point at the first depends_on written in the cycle: that is where to fix it.
            explicit = [c for c in cycle if item.steps[ids.index(c)].depends_on is not None]
            index = ids.index(explicit[0] if explicit else cycle[0])
            problems.append(
                source.problem(
                    ("phases", i, "steps", index, "depends_on"),
                    f"dependency cycle (each waits for the next): {' -> '.join([*cycle, cycle[0]])}",
                )
            )
    return problems


def _window_and_change(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    if runbook.window is not None and runbook.window.end <= runbook.window.start:
        problems.append(source.problem(("window", "end"), "the window must end after it starts"))
    try:
        rule = current_policy().rule(runbook.change.type, runbook.environment)
    except PolicyError as exc:
        return [*problems, source.problem(("change", "type"), f"the change policy: {exc}")]
    if len(runbook.gates) < rule.min_gates:
        count = "one GO/NOGO gate" if rule.min_gates == 1 else f"{rule.min_gates} GO/NOGO gates"
        problems.append(
            source.problem(
                ("change", "type"),
                f"a {runbook.change.type} change needs at least {count} in phases, and this "
                f"runbook has {len(runbook.gates)} (change policy for {runbook.environment}: "
                f"{current_policy().source})",
            )
        )
    elif rule.approval != "none" and runbook.approval is None and not runbook.gates:
        problems.append(
            source.problem(
                ("change", "type"),
                f"a {runbook.change.type} change needs its plan approved: name the CAB roles "
                "in approval.sign_off",
            )
        )
    if runbook.requires is not None and runbook.requires.environment == runbook.environment:
        problems.append(
            source.problem(
                ("requires", "environment"),
                f"the promotion guard needs an earlier environment than {runbook.environment} "
                "itself",
            )
        )
    if runbook.runbook.endswith(naming.APPROVAL_SUFFIX):
        problems.append(
            source.problem(
                ("runbook",),
                f"a runbook id may not end with {naming.APPROVAL_SUFFIX!r}: "
                "gonogo names each runbook's plan-approval DAG so",
            )
        )
    if naming.REHEARSAL_PARAM in runbook.params:
        problems.append(
            source.problem(
                ("params", naming.REHEARSAL_PARAM),
                f"the param {naming.REHEARSAL_PARAM!r} is reserved: gonogo adds it to the "
                "trigger form to start a rehearsal",
                key=True,
            )
        )
    return problems


def _manual_owners(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    for i, item in enumerate(runbook.phases):
        if not isinstance(item, Phase):
            continue
        for j, step in enumerate(item.steps):
            loc = ("phases", i, "steps", j)
            if step.manual is not None and step.owner is None:
                problems.append(
                    source.problem(loc, "a manual step needs an owner: the role that confirms it")
                )
            if (
                step.rollback is not None
                and step.rollback.manual is not None
                and step.owner is None
            ):
                problems.append(
                    source.problem(
                        (*loc, "rollback"),
                        "a manual rollback needs the step to have an owner who confirms it",
                    )
                )
            if step.rehearse is not None and step.rehearse.manual is not None:
                problems.append(
                    source.problem(
                        (*loc, "rehearse", "manual"),
                        "a rehearse action runs by itself: bash, http or python, not manual",
                    )
                )
    for j, global_step in enumerate(runbook.rollback.steps):
        if global_step.manual is not None and global_step.owner is None:
            problems.append(
                source.problem(
                    ("rollback", "steps", j),
                    "a manual step needs an owner: the role that confirms it",
                )
            )
    return problems


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _templates(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    for loc, action in actions_of(runbook):
        fields = {
            "bash": action.bash,
            "exec": action.exec,
            "manual": action.manual,
            "env": action.env,
            "http": action.http.model_dump(by_alias=True, exclude_none=True)
            if action.http
            else None,
        }
        for where, text in _strings(fields, loc):
            for name in _params_named([text]):
                if name not in runbook.params:
                    hint = did_you_mean(name, runbook.params)
                    declared = ", ".join(sorted(runbook.params)) or "none"
                    problems.append(
                        source.problem(
                            where,
                            f"{{{{ params.{name} }}}} names no declared param{hint} "
                            f"(declared: {declared})",
                        )
                    )
    return problems


def _python_callables(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    prefixes = python_prefixes()
    for loc, action in actions_of(runbook):
        if action.python is None:
            continue
        module = action.python.callable.split(":", 1)[0]
        if not any(module == p or module.startswith(p + ".") for p in prefixes):
            problems.append(
                source.problem(
                    (*loc, "python"),
                    f"module {module!r} is not under an allowed prefix "
                    f"({', '.join(prefixes)}); set GONOGO_PYTHON_PREFIXES to allow more",
                )
            )
    return problems


#: JSON-schema type names and the Python values JSON gives for each, as Airflow's jsonschema
#: checks them. ``null`` is a type of its own: None is a value only where a schema names it
#: (a request's comment is ``["string", "null"]``; a runbook param never is).
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "null": (type(None),),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def is_json_type(value: Any, types: Sequence[str]) -> bool:
    """Whether ``value`` is of one of the JSON-schema ``types``: a bool is no integer or number."""
    allowed = tuple(t for name in types for t in JSON_TYPES.get(name, ()))
    return isinstance(value, allowed) and not (isinstance(value, bool) and "boolean" not in types)


def param_value_problem(param: Param, value: Any) -> str | None:
    """Why Airflow would refuse ``value`` for this param, as its default or given at trigger, or None."""
    if not is_json_type(value, [param.type]):
        got = "null" if value is None else type(value).__name__
        return f"the value must be of type {param.type}, got {got}"
    if param.enum is not None and value not in param.enum:
        return f"the value {value!r} is not one of the enum values"
    if param.pattern is not None and isinstance(value, str) and not re.search(param.pattern, value):
        return f"the value {value!r} does not match the pattern {param.pattern!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            return f"the value {value} is below the minimum {param.minimum}"
        if param.maximum is not None and value > param.maximum:
            return f"the value {value} is above the maximum {param.maximum}"
    return None


def param_default_problem(param: Param) -> str | None:
    """Why Airflow would refuse this param's default, or None.

    No default (None) is not a null value: the person who triggers gives one.
    """
    if param.default is None:
        return None
    problem = param_value_problem(param, param.default)
    return problem.replace("the value", "the default", 1) if problem else None


def _param_defaults(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    for name, param in runbook.params.items():
        reason = param_default_problem(param)
        if reason:
            problems.append(source.problem(("params", name, "default"), reason))
    return problems


def is_read_only(step: Step) -> bool:
    """Steps that change nothing need no rollback: read_only, manual and GET/HEAD requests."""
    return (
        step.read_only
        or step.manual is not None
        or (step.http is not None and step.http.method in ("GET", "HEAD"))
    )


def _irreversible(runbook: Runbook, source: Source) -> list[Problem]:
    problems = []
    gate_seen = False
    for i, item in enumerate(runbook.phases):
        if not isinstance(item, Phase):
            gate_seen = True
            continue
        if not gate_seen:
            continue
        for j, step in enumerate(item.steps):
            if step.rollback is None and not is_read_only(step):
                problems.append(
                    source.problem(
                        ("phases", i, "steps", j, "id"),
                        f"step {step.id!r} runs after a gate and has no rollback: "
                        "it cannot be undone",
                        warning=True,
                    )
                )
    return problems


def _communication(runbook: Runbook, source: Source) -> list[Problem]:
    """Roles named by notify rules exist; a P1/P2 incident manager exists where it is told."""
    problems = []
    for i, rule in enumerate(runbook.notify):
        for j, role in enumerate(rule.roles):
            if role not in runbook.roles:
                hint = did_you_mean(role, runbook.roles)
                problems.append(
                    source.problem(("notify", i, "roles", j), f"unknown role {role!r}{hint}")
                )
    manager = runbook.incident.manager
    told = any("rollback_failed" in rule.on for rule in runbook.notify)
    if told and runbook.incident.priority in ("P1", "P2") and manager not in runbook.roles:
        problems.append(
            source.problem(
                ("incident",) if "incident" in runbook.model_fields_set else ("notify",),
                f"a {runbook.incident.priority} incident is sent to the role {manager!r}, "
                "which is not defined; add it under roles or name another in incident.manager",
                warning=True,
            )
        )
    return problems


def _values_are_data(runbook: Runbook, source: Source) -> list[Problem]:
    """A value is data wherever it goes: never shell text, one argument, a JSON value.

    Every shell command (steps, undo actions, gate checks, rehearse actions,
    global rollback steps; guided retries run the step's own command) runs as
    written, so a template in it is refused with the spelling to use
    (:mod:`gonogo.core.runbook.shell`). Where the text itself evaluates a value's
    variable as code, or a free-form string param reaches a command, it warns.
    """
    problems = []
    reaching: dict[str, Loc] = {}
    variables = {name: param_variable(name) for name in runbook.params}
    for loc, action in actions_of(runbook):
        if action.bash is not None:
            problems += _shell_text(source, (*loc, "bash"), action.bash, action.env, variables)
            for name, variable in variables.items():
                if variable in action.bash and re.search(rf"\${{?{variable}\b", action.bash):
                    reaching.setdefault(name, (*loc, "bash"))
        if action.exec is not None:
            problems += _argument_list(source, (*loc, "exec"), action.exec)
            for name in _params_named(action.exec):
                reaching.setdefault(name, (*loc, "exec"))
        for key, value in action.env.items():
            problems += _env_name(source, (*loc, "env", key), key, value)
            for name in _params_named([value]):
                reaching.setdefault(name, (*loc, "env"))
        if action.http is not None:
            wrong_url = url_problem(action.http.url, action.http.connection)
            if wrong_url is not None:
                problems.append(source.problem((*loc, "http", "url"), wrong_url))
        if action.http is not None and action.http.body is not None:
            for expression in quoted_in_json(action.http.body):
                problems.append(
                    source.problem(
                        (*loc, "http", "body"),
                        f"write {{{{ {expression} }}}} without quotes around it: "
                        "a body template is inserted as a JSON value, quoted and escaped",
                    )
                )
    for name, where in reaching.items():
        param = runbook.params.get(name)
        if param is not None and param.type == "string" and not (param.pattern or param.enum):
            line, _ = source.position(where)
            problems.append(
                source.problem(
                    ("params", name),
                    f"param {name!r} reaches a command (line {line}) and takes any text: "
                    "give it a pattern or an enum, which Airflow checks when a run is triggered",
                    key=True,
                    warning=True,
                )
            )
    seen: dict[str, str] = {}
    for name in runbook.params:
        variable = env_name(name)
        if variable in seen:
            problems.append(
                source.problem(
                    ("params", name),
                    f"param {name!r} and {seen[variable]!r} would share the environment "
                    f"variable GONOGO_PARAM_{variable}; rename one",
                    key=True,
                )
            )
        seen.setdefault(variable, name)
    return problems


def _shell_text(
    source: Source, where: Loc, command: str, env: Mapping[str, str], params: Mapping[str, str]
) -> list[Problem]:
    """A template in shell text is an error; a value's variable run as code, a warning.

    ``params``: each param's environment variable, by param name.
    """
    problems = [source.problem(where, spelling(t)) for t in templates_in(command)]
    variables = [*params.values(), *(k for k, v in env.items() if TEMPLATE.search(v))]
    for line in evaluated(command, variables):
        problems.append(
            source.problem(
                where,
                f"{line}: a value could run as code; pass it to a script as an argument "
                "(exec:) or check it against a pattern first",
                warning=True,
            )
        )
    return problems


#: Environment names programs read as code, a library, a search path or a config file. A
#: name is the runbook's own choice, so no list of what is allowed exists; a value from a
#: template may not go into one of these (names, and prefixes ending in _).
INTERPRETED_NAMES = frozenset(
    {
        "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND",
        "IFS", "CDPATH", "GLOBIGNORE", "PATH", "HOME", "SHELL", "TMPDIR", "GCONV_PATH",
        "LOCPATH", "NLSPATH", "HOSTALIASES", "RES_OPTIONS", "NODE_OPTIONS", "NODE_PATH",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "LESSOPEN",
        "LESSCLOSE", "PAGER", "EDITOR", "VISUAL", "BROWSER", "TERMINFO", "PKG_CONFIG_PATH",
        "OPENSSL_CONF", "CURL_HOME", "WGETRC", "SSL_CERT_FILE", "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    }
)  # fmt: skip
INTERPRETED_PREFIXES = (
    "BASH_", "LD_", "DYLD_", "PYTHON", "PERL", "RUBY", "GEM_", "LUA_", "GIT_", "SSH_",
    "MALLOC_", "GLIBC_", "GONOGO_", "AIRFLOW", "KUBE", "DOCKER_", "NPM_", "PIP_",
)  # fmt: skip


def _env_name(source: Source, where: Loc, name: str, value: str) -> list[Problem]:
    """An env: name is a plain variable name, and a value from a template never programs."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return [
            source.problem(
                where,
                f"env name {name!r} is not a plain variable name (letters, digits, _)",
                key=True,
            )
        ]
    upper = name.upper()
    if TEMPLATE.search(value) and (
        upper in INTERPRETED_NAMES or upper.startswith(INTERPRETED_PREFIXES)
    ):
        return [
            source.problem(
                where,
                f"{name} is read by programs (bash, the loader, an interpreter, gonogo), so a "
                "value from a template must not set it; give the variable a name of its own",
                key=True,
            )
        ]
    return []


def _argument_list(source: Source, where: Loc, argv: Sequence[str]) -> list[Problem]:
    """exec: a template is one argument, never the program nor code a program runs."""
    return [
        source.problem((*where, index), f"{argv[index]} {why}; {_EXEC_WAY}")
        for index, why in code_arguments(argv)
    ]


_EXEC_WAY = "name the program as fixed text and pass values as its arguments"


def code_arguments(argv: Sequence[str]) -> Iterator[tuple[int, str]]:
    """The templates of an argument list that would be a program, an option or code, and why.

    The list is read for the first program that runs code (a shell or an
    interpreter, wherever it stands: ``docker exec c sh -c …``, ``find -exec sh
    -c …``, ``sudo -u app bash -c …``); a template after it that is its code or
    script is refused. A template inside an option word of a program that
    runs its arguments (``env -S{{ … }}``, ``ssh -o…``) is refused too.
    """
    if not any("{{" in a or "{%" in a for a in argv):
        return  # no value in it at all
    if templates_in(argv[0]):
        yield 0, "is the program to run: a program is fixed text, never a template"
        return
    for i, word in enumerate(argv):
        if templates_in(word):
            continue
        program = word.rsplit("/", 1)[-1]
        later = [j for j in range(i + 1, len(argv)) if templates_in(argv[j])]
        if program in ANY_ARGUMENT_IS_CODE:
            for j in later:
                yield j, f"is an argument of {program}, which runs it as code"
            return
        if INTERPRETER.match(program):
            positional = next((j for j in range(i + 1, len(argv)) if argv[j][:1] != "-"), None)
            for j in later:
                if j == positional or argv[j - 1] in CODE_OPTIONS or argv[j][:1] == "-":
                    yield j, f"is the code, script or an option of {program}"
            return
        if program in WRAPPERS:  # the program it runs comes after its options
            k, skip = i + 1, WRAPPERS[program]
            while k < len(argv) and (argv[k][:1] == "-" or "=" in argv[k] or skip):
                if argv[k][:1] != "-" and "=" not in argv[k]:
                    skip -= 1
                k += 1
            if k < len(argv) and templates_in(argv[k]):
                yield k, f"is the program {program} runs: a program is fixed text"
                return
    for j in range(1, len(argv)):
        if argv[j][:1] == "-" and templates_in(argv[j]) and argv[0].rsplit("/", 1)[-1] in (
            "env", "sudo", "doas", "xargs", "scp", "rsync", "tar", "git", "find",
        ):  # fmt: skip
            yield (
                j,
                "is inside an option, which can run a command (env -S, ssh -o, tar --to-command…)",
            )


def _params_named(texts: Sequence[str]) -> list[str]:
    """The params the templates in ``texts`` read."""
    names = []
    for text in texts:
        for expression in TEMPLATE.findall(text):
            match = PARAM_REF.match(expression)
            name = match.group(1) if match else param_name(expression)
            if name is not None:
                names.append(name)
    return names


#: A runbook id Python or Airflow could misread: a dunder name such as ``__file__``
#: (the DAG file's own globals), or a leading ``.`` or ``-`` (a hidden file, an option).
_MISREAD_ID = re.compile(r"^(__|[.-])|__$")


def _names(runbook: Runbook, source: Source) -> list[Problem]:
    """The runbook id and role names are plain ids that nothing downstream can misread."""
    problems = []
    if _MISREAD_ID.search(runbook.runbook):
        problems.append(
            source.problem(
                ("runbook",),
                f"runbook id {runbook.runbook!r} could be misread by Python or Airflow; "
                "it may not start with '.', '-' or '__' nor end with '__'",
            )
        )
    for name in runbook.roles:
        if not re.fullmatch(ID_PATTERN, name):
            problems.append(
                source.problem(
                    ("roles", name),
                    f"role name {name!r} is not a valid id: letters, digits, '_' and '-', "
                    "starting with a letter, digit or '_'",
                    key=True,
                )
            )
    return problems
