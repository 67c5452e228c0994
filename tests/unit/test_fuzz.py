"""Property tests: whatever a user writes, the loader answers with located problems.

The example runbooks are mutated at random (keys deleted, values of the wrong
type, junk keys, junk characters, truncation). The loader must either accept
the result or raise :class:`gonogo.RunbookError` whose every problem points
into the file. Any other exception would reach the user as a traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.conftest import EXAMPLES

import gonogo
from gonogo.core.runbook import source
from gonogo.core.runs.rollback import StepRecord, plan_rollback

FILE = "rb.yaml"
TEXTS = {path.name: path.read_text() for path in EXAMPLES}
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Path_ = tuple[str | int, ...]


def assert_loads_or_points_into_the_file(text: str) -> None:
    try:
        gonogo.load_text(text, FILE)
    except gonogo.RunbookError as error:
        assert error.problems, "a RunbookError must carry at least one problem"
        last_line = len(text.splitlines()) + 1
        for problem in error.problems:
            assert problem.file == FILE, problem
            assert 1 <= problem.line <= last_line, problem
            assert problem.column >= 1, problem
            assert problem.message, problem


# -- strategies --------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["", "30m", "0m", "{{ params.nope }}", "x:y", "release_manager", "~", "yes"]),
)
junk_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=10), inner, max_size=3),
    ),
    max_leaves=8,
)
junk_keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["titel", "timout", "gate", "id", "steps", "<<", "on", "1"]),
    st.integers(),
    st.booleans(),
    st.none(),
)
junk_text = st.one_of(
    st.text(min_size=1, max_size=8),
    st.sampled_from(
        [
            ":",
            "- ",
            "{",
            "}",
            "[",
            "]",
            "&a ",
            "*a",
            "!!python/object:os.system ",
            "\t",
            "\x00",
            "\ufeff",
            "'",
            '"',
            "\n---\n",
            "\n  ",
            "#",
            "%YAML 1.1\n",
            "? ",
            "|\n",
            "\x85",
            "\ud7ff",
        ]
    ),
)


def containers(data: Any, at: Path_ = ()) -> list[Path_]:
    """The path of every dict and list in ``data``, the root included."""
    found: list[Path_] = []
    if isinstance(data, dict):
        found.append(at)
        for key, value in data.items():
            found += containers(value, (*at, key))
    elif isinstance(data, list):
        found.append(at)
        for index, value in enumerate(data):
            found += containers(value, (*at, index))
    return found


def children(data: Any, at: Path_) -> list[Path_]:
    node = follow(data, at)
    keys = node.keys() if isinstance(node, dict) else range(len(node))
    return [(*at, key) for key in keys]


def follow(data: Any, at: Path_) -> Any:
    for part in at:
        data = data[part]
    return data


def same_type(a: Any, b: Any) -> bool:
    return type(a) is type(b)


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    """An example runbook with one to three structural mutations, dumped back to YAML."""
    name = draw(st.sampled_from(sorted(TEXTS)))
    data = yaml.safe_load(TEXTS[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        parent = draw(st.sampled_from(containers(data)))
        node = follow(data, parent)
        operation = draw(st.sampled_from(["delete", "retype", "insert"]))
        if operation == "insert" or not node:
            if isinstance(node, dict):
                node[draw(junk_keys)] = draw(junk_values)
            else:
                node.insert(draw(st.integers(0, len(node))), draw(junk_values))
            continue
        child = draw(st.sampled_from(children(data, parent)))
        if operation == "delete":
            del node[child[-1]]
        else:
            old = node[child[-1]]
            node[child[-1]] = draw(junk_values.filter(lambda new, old=old: not same_type(new, old)))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()))


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """An example runbook's raw text with junk inserted and possibly cut short."""
    text = TEXTS[draw(st.sampled_from(sorted(TEXTS)))]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(junk_text) + text[at:]
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text


# -- the loader --------------------------------------------------------------------------------


@FUZZ
@given(mutated_data())
def test_mutated_runbook_data_loads_or_is_located(text: str) -> None:
    assert_loads_or_points_into_the_file(text)


@FUZZ
@given(mutated_text())
def test_mutated_runbook_text_loads_or_is_located(text: str) -> None:
    assert_loads_or_points_into_the_file(text)


@FUZZ
@given(st.text(max_size=200))
@example("runbook: x\x1f\n")  # the YAML reader refuses control characters before parsing
@example("runbook: x\n<: null\n")  # a key that looks like pydantic's '<phase>' union tag
def test_arbitrary_text_loads_or_is_located(text: str) -> None:
    assert_loads_or_points_into_the_file(text)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(sorted(TEXTS)))
def test_examples_survive_a_round_trip_through_safe_dump(name: str) -> None:
    """The mutation tests start from valid data, so dumping must not itself break a runbook."""
    data = yaml.safe_load(TEXTS[name])
    # PyYAML reads an unquoted ``on:`` key as True (YAML 1.1); gonogo's own loader keeps it text.
    data["notify"] = [
        {("on" if k is True else k): v for k, v in r.items()} for r in data.get("notify", [])
    ]
    gonogo.load_text(yaml.safe_dump(data, sort_keys=False), FILE)


# -- the fast composer ------------------------------------------------------------------------

YAML_CHARACTERS = ":-[]{}#&*!|>'\" \n\t?,%@`ab1.~\r\x85\u2028\ufeff"
yaml_ish = st.text(alphabet=st.sampled_from(list(YAML_CHARACTERS)))


def shape(node: yaml.Node) -> tuple[Any, ...]:
    """What the builder reads from a node: tag, value, style and where it starts."""
    at = (node.start_mark.line, node.start_mark.column)
    if isinstance(node, yaml.MappingNode):
        return ("map", node.tag, at, [(shape(k), shape(v)) for k, v in node.value])
    if isinstance(node, yaml.SequenceNode):
        return ("seq", node.tag, at, [shape(item) for item in node.value])
    return ("scalar", node.tag, node.value, node.style or None, at)


@FUZZ
@given(st.one_of(mutated_text(), mutated_data(), yaml_ish, st.text(max_size=100)))
@example("a: {b: }\n")  # libyaml places an empty value at the next token
@example("---")
@example("a: [x, s?e]\n")  # PyYAML refuses '?' in a flow collection, libyaml does not
@example("0\t0\n")
@example("|1#\n")
@example("!\n")
@example("\r\ufeff.")
def test_libyaml_fast_path_agrees_with_the_reference_composer(text: str) -> None:
    if source._LIBYAML is None:
        pytest.skip("PyYAML is built without libyaml")
    fast = source._compose_with_libyaml(text)
    if fast is not None:
        assert shape(fast) == shape(source._compose(text, FILE))


# -- the rollback planner ----------------------------------------------------------------------

STATES = ["success", "failed", "skipped", "upstream_failed", "running", None]
BASE = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
# Few distinct end times, so ties (broken by position) are common.
end_times = st.one_of(
    st.none(), st.integers(min_value=0, max_value=5).map(lambda m: BASE + timedelta(minutes=m))
)


@st.composite
def step_records(draw: st.DrawFn) -> list[StepRecord]:
    count = draw(st.integers(min_value=0, max_value=12))
    positions = draw(st.permutations(range(count)))
    return [
        StepRecord(
            step_id=f"s{position}",
            state=draw(st.sampled_from(STATES)),
            end=draw(end_times),
            has_rollback=draw(st.booleans()),
            position=position,
        )
        for position in positions
    ]


def newest_first(records: list[StepRecord]) -> list[str]:
    """The expected order, written independently: by end time, then position, both descending.

    A step without an end time counts as the oldest.
    """
    ordered = sorted(records, key=lambda r: r.position, reverse=True)
    ordered = sorted(
        ordered, key=lambda r: (r.end - BASE) if r.end else timedelta.min, reverse=True
    )
    return [r.step_id for r in ordered]


@settings(max_examples=300, deadline=None)
@given(step_records())
@example(  # Airflow's end dates are timezone-aware; a missing one must still sort
    [StepRecord("a", "success", None, True, 0), StepRecord("b", "success", BASE, True, 1)]
)
def test_rollback_undoes_exactly_the_successful_steps_newest_first(
    records: list[StepRecord],
) -> None:
    plan = plan_rollback(records)

    succeeded = [r for r in records if r.state == "success"]
    assert plan.compensate == newest_first([r for r in succeeded if r.has_rollback])
    assert plan.not_undone == newest_first([r for r in succeeded if not r.has_rollback])
    never_ran_or_failed = {r.step_id for r in records if r.state != "success"}
    assert never_ran_or_failed.isdisjoint(plan.compensate + plan.not_undone)


@settings(max_examples=100, deadline=None)
@given(step_records())
def test_rollback_plan_does_not_depend_on_the_order_records_arrive_in(
    records: list[StepRecord],
) -> None:
    assert plan_rollback(records) == plan_rollback(list(reversed(records)))
