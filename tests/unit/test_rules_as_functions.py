"""The pure functions the Airflow layer relies on, tested as functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gonogo.core import naming
from gonogo.core.runbook.expect import check_response
from gonogo.core.runbook.rules import is_json_type
from gonogo.core.runbook.shell import env_name
from gonogo.core.runs import rollback as rb
from gonogo.core.runs.decisions import (
    Decision,
    comment_schema,
    decisions,
    has_reason,
    missing_reason,
    note,
    table,
)
from gonogo.core.runs.gates import (
    eligible,
    evidence,
    four_eyes_refusal,
    literal,
    started_the_run,
    summarize,
)
from gonogo.core.runs.records import Answer, Request
from gonogo.server.rules import (
    form_refusal,
    parse_answer,
    second_role_refusal,
    state_change_refusal,
)

# -- shell quoting -----------------------------------------------------------------------------


def test_param_names_become_environment_names() -> None:
    assert env_name("app-version.x") == "APP_VERSION_X"


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_id", "final"),
    [
        ("gate__g.rm", True),
        ("gate__g.rm__round_1", False),
        (f"gate__g.rm__round_{naming.REASKS + 1}", True),
        ("gate__g.result", False),
        ("gate__g.checks", False),
        ("install.step", False),
        ("gate__g", False),
    ],
)
def test_only_a_stop_mode_request_or_the_last_reask_round_ends_a_gate(
    task_id: str, final: bool
) -> None:
    assert naming.is_final_round(task_id) is final


def test_gate_task_ids_are_taken_apart_the_way_they_are_built() -> None:
    for role_round in naming.round_ids("rm", reask=True):
        parsed = naming.parse_gate_task(naming.gate_task("g", role_round))
        assert parsed is not None and parsed.gate == "g" and parsed.role == "rm"
    assert naming.parse_gate_task("phase.step") is None
    assert naming.round_ids("rm", reask=False) == ["rm"]


# -- the comment rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ({"chosen_options": ["NOGO"], "params_input": {}}, True),
        ({"chosen_options": ["NOGO"], "params_input": {"comment": "   "}}, True),
        ({"chosen_options": ["Failed"], "params_input": {"comment": None}}, True),
        ({"chosen_options": ["Continue"]}, True),
        ({"chosen_options": ["NOGO"], "params_input": {"comment": "AMK incident"}}, False),
        ({"chosen_options": ["GO"], "params_input": {}}, False),
        ({"chosen_options": ["Done"]}, False),
    ],
)
def test_an_answer_that_needs_a_reason_is_refused_without_one(
    body: dict[str, object], refused: bool
) -> None:
    answer = parse_answer(json.dumps(body).encode())
    comment = answer["params_input"].get("comment")
    reason = missing_reason(answer["chosen_options"], comment, None)  # an undeclared form
    assert (reason is not None) is refused
    if refused:
        assert "needs a comment" in str(reason)


def test_each_request_declares_which_of_its_options_need_a_reason() -> None:
    undo_interrupted = {"comment": {"value": "", "schema": comment_schema(["Done", "Failed"])}}
    assert "Done needs a comment" in str(missing_reason(["Done"], "", undo_interrupted))
    assert missing_reason(["Done"], "checked the config", undo_interrupted) is None
    manual = {"comment": {"value": "", "schema": comment_schema(["Failed"])}}
    assert missing_reason(["Done"], None, manual) is None
    assert missing_reason(["Failed"], " ", manual) is not None


@pytest.mark.parametrize(
    "comment",
    ["", "   ", "\u200b\u200b", "\u2060\ufeff", "\n\t", "\u3164", "\u115f", "\u2800", ".", "!?"],
)
def test_invisible_characters_are_not_a_reason(comment: str) -> None:
    assert not has_reason(comment)
    assert has_reason("AMK incident") and has_reason("ok") and has_reason("7")


def test_params_input_must_be_exactly_the_requests_form() -> None:
    form = {"comment": {"value": "", "schema": {"type": ["string", "null"]}}}
    assert form_refusal({"comment": "ok"}, form) is None
    assert form_refusal({"comment": None}, form) is None
    assert form_refusal({}, form) is None
    assert "comment must be string or null" in str(form_refusal({"comment": 5}, form))
    assert "no field extra" in str(form_refusal({"extra": 1}, form))
    assert "comment must be string, got NoneType" in str(
        form_refusal({"comment": None}, {"comment": {"schema": {"type": "string"}}})
    )


def test_a_value_the_drop_down_does_not_offer_is_refused_and_a_partial_form_is_not() -> None:
    # A value outside an enum fails its Param: refused before it is stored. A form answered
    # in part keeps the other fields' defaults (gonogo.dag.hitl.Request.answer).
    form = {
        "comment": {"value": "", "schema": {"type": ["string", "null"]}},
        "escalated_to_1": {"value": "none", "schema": {"type": "string", "enum": ["none", "dsl"]}},
    }
    assert form_refusal({"comment": "", "escalated_to_1": "dsl"}, form) is None
    assert form_refusal({}, form) is None  # no form at all: Airflow keeps the defaults
    assert form_refusal({"comment": "ok"}, form) is None
    assert "escalated_to_1 must be one of 'none', 'dsl', got 'lgv'" in str(
        form_refusal({"comment": "", "escalated_to_1": "lgv"}, form)
    )


@pytest.mark.parametrize(
    ("value", "types", "ok"),
    [
        (None, ["string", "null"], True),
        (None, ["string"], False),
        (None, ["integer"], False),
        (True, ["integer"], False),
        (True, ["number", "boolean"], True),
        (1, ["number"], True),
        (1.5, ["integer"], False),
        ("x", ["null"], False),
    ],
)
def test_null_is_a_json_value_only_where_the_schema_names_it(
    value: object, types: list[str], ok: bool
) -> None:
    assert is_json_type(value, types) is ok


@pytest.mark.parametrize(
    ("user_id", "user_name", "trigger_id", "trigger_name", "refused"),
    [
        ("7", "kari", "7", "kari", True),
        ("7", "kari", "7", None, True),  # by id: what the API server signed
        ("7", "kari", None, "kari", True),  # by name: what Airflow records on the run
        ("kari", "kari", "7", "kari", True),  # an auth manager whose ids are names
        ("8", "ola", "7", "kari", False),
        ("8", "ola", None, None, False),
    ],
)
def test_the_task_and_the_api_server_apply_one_four_eyes_rule(
    user_id: str, user_name: str, trigger_id: str | None, trigger_name: str | None, refused: bool
) -> None:
    reason = four_eyes_refusal(user_id, user_name, trigger_id, trigger_name)
    assert (reason is not None) is refused
    assert started_the_run([user_id, user_name], trigger_id, trigger_name) is refused
    if refused:
        assert "four-eyes rule" in str(reason)
    # The task asks only users the API server would let answer.
    if user_id == user_name:
        assert (eligible([user_id], trigger_id, trigger_name) == []) is refused


def test_one_person_counts_for_one_role_per_gate() -> None:
    answered = [("gate__g.rm", "7"), ("gate__h.so", "8")]
    assert "already answered for role rm" in str(second_role_refusal("7", "gate__g.so", answered))
    assert second_role_refusal("8", "gate__g.so", answered) is None  # other gate
    assert second_role_refusal("7", "gate__g.rm__round_2", answered) is None  # same role again


def test_gates_rollback_and_people_s_answers_cannot_be_moved_by_hand() -> None:
    assert state_change_refusal([("gate__g.rm", "GateRoleOperator")])
    assert state_change_refusal([("p.check", "ManualStepOperator")])
    assert state_change_refusal([("outcome", "PythonOperator")])
    assert state_change_refusal([("rollback.undo_1", "UndoSlot")])
    assert state_change_refusal([("p.step", "StepBashOperator")]) is None
    assert state_change_refusal([("p.step", "StepBashOperator")], widened=True)
    assert state_change_refusal([], whole_run=True)


# -- answers and the decision log --------------------------------------------------------------


def test_an_answer_reads_the_same_from_an_event_and_a_detail() -> None:
    event = {
        "chosen_options": ["NOGO"],
        "params_input": {"comment": " fix it "},
        "responded_by_user": {"id": "7", "name": "kari"},
    }
    detail = {**event, "response_received": True}
    assert (
        Answer.from_event(event)
        == Answer.from_detail(detail)
        == Answer("NOGO", "kari", "7", "fix it", {"comment": " fix it "})
    )
    assert Answer.from_event({"error_type": "timeout"}).timed_out
    assert Answer.from_detail({"chosen_options": ["GO"], "response_received": False}).timed_out


def detail(task_id: str, created: str, **extra: object) -> Request:
    return Request.from_detail(
        {
            "task_instance": {"task_id": task_id, "state": extra.pop("state", "success")},
            "created_at": created,
            **extra,
        }
    )


def test_the_decision_log_reads_gates_rounds_and_manual_steps() -> None:
    rows = decisions(
        [
            detail(
                "gate__g.rm__round_2",
                "2026-01-01T10:05",
                chosen_options=["GO"],
                response_received=True,
                responded_by_user={"id": "a", "name": "a"},
            ),
            detail("gate__g.so", "2026-01-01T10:00", state="failed"),
            detail("p.check", "2026-01-01T10:10", state="skipped"),
        ]
    )
    assert [(r.gate, r.role, r.round, r.answer) for r in rows] == [
        ("g", "so", 1, "NOGO (timeout)"),
        ("g", "rm", 2, "GO"),
        ("step:check", "", 1, "withdrawn"),
    ]
    assert table(rows).splitlines()[0].split() == [
        "gate",
        "role",
        "round",
        "answer",
        "by",
        "at",
        "comment",
    ]


def test_the_run_note_starts_with_the_marker_and_names_the_outcome_and_decisions() -> None:
    row = Decision("g", "rm", 1, "NOGO", "kari", "t", "AMK incident", 1, "gate__g.rm")
    text = note([row], {"outcome": "rolled_back", "reasons": ["gate g: NOGO"], "undone": ["s1"]})
    lines = text.splitlines()
    assert lines[0] == naming.NOTE_MARKER
    assert "**Outcome: rolled_back**" in lines
    assert "- g/rm: NOGO by kari: AMK incident" in lines
    assert note([], None).splitlines() == [naming.NOTE_MARKER, "No decisions."]


# -- gate texts --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{{ 7*7 }}", "{% if x %}", "{# not a comment #}", "a } b"])
def test_runbook_text_renders_literally_in_a_jinja_template(text: str) -> None:
    import jinja2

    assert jinja2.Environment().from_string(literal(text)).render() == text


def test_evidence_lists_finished_steps_against_plan_and_the_checks() -> None:
    text = evidence(
        [("p.a", "Step A", 600.0), ("p.b", "Step B", None)],
        [{"task_id": "p.a", "state": "success", "duration": 61.2}],
        [{"id": "c1", "required": True, "passed": False, "detail": "HTTP 500"}],
    )
    assert "| Step A | success | 1m1s | 10m |" in text
    assert "Step B" not in text
    assert "- `c1` (required): FAILED. HTTP 500" in text
    assert "none yet" in evidence([("p.a", "A", None)], [], [])


def test_a_gate_is_go_only_when_every_role_said_go() -> None:
    go = {"answer": "GO", "by": "a"}
    nogo = {"answer": "NOGO", "by": "b", "comment": "not ready"}
    assert summarize("g", {"rm": [go], "so": [nogo, go]}) == (
        True,
        "gate g: GO from rm (a), so (a)",
    )
    assert (
        summarize("g", {"rm": [go], "so": [None]})[1] == "gate g: NOGO (timeout): no answer from so"
    )
    assert summarize("g", {"rm": [nogo]})[1] == "gate g: NOGO from rm (b): not ready"


# -- http expectations -------------------------------------------------------------------------


def test_a_response_is_checked_against_status_text_and_json_fields() -> None:
    body = json.dumps({"status": "ok", "items": [{"v": 2}]})
    assert check_response(200, body, {"json": {"status": "ok", "items.0.v": 2}}) == []
    misses = check_response(503, body, {"status": [200, 204], "contains": "up", "json": {"x": 1}})
    assert misses == [
        "status 503, expected 200 or 204",
        "the body does not contain 'up'",
        "the JSON body has no 'x'",
    ]


# -- rollback outcome and record ---------------------------------------------------------------

FORWARD = ["acquire_lock", "p.a", "p.b", "gate__g.rm", "q.c"]
STEPS = [
    rb.ForwardStep("a", "p.a", True),
    rb.ForwardStep("b", "p.b", False),
    rb.ForwardStep("c", "q.c", True),
]


def test_the_outcome_follows_what_failed_and_what_was_undone() -> None:
    ok = dict.fromkeys(FORWARD, "success")
    assert rb.decide_outcome(ok, FORWARD, ["p.a", "q.c"], ["rollback.undo_1"]) == rb.SUCCEEDED
    nogo = {"acquire_lock": "success", "gate__g.rm": "failed"}
    assert rb.decide_outcome(nogo, FORWARD, ["p.a", "q.c"], []) == rb.NOGO_BEFORE_START
    failed = {**ok, "q.c": "failed"}
    assert rb.decide_outcome(failed, FORWARD, ["p.a"], ["rollback.undo_1"]) == rb.ROLLED_BACK
    broken = {**failed, "rollback.undo_1": "failed"}
    assert rb.decide_outcome(broken, FORWARD, ["p.a"], ["rollback.undo_1"]) == rb.ROLLBACK_FAILED


def test_a_success_needs_a_record_of_every_step_and_gate() -> None:
    ok = dict.fromkeys(FORWARD, "success")
    skipped = ["step p.a: no record of a try that finished (skipped or marked by hand)"]
    assert rb.decide_outcome(ok, FORWARD, ["p.a"], [], skipped) == rb.INCOMPLETE
    # A failure still decides: what is unrecorded does not hide a rollback.
    failed = {**ok, "q.c": "failed"}
    assert rb.decide_outcome(failed, FORWARD, ["p.a"], [], skipped) == rb.ROLLED_BACK


def test_the_plan_from_states_undoes_newest_first_and_says_why() -> None:
    states = {"p.a": "success", "p.b": "success", "q.c": "failed"}
    finished = {
        "p.a": datetime(2026, 1, 1, 10, tzinfo=UTC),
        "p.b": datetime(2026, 1, 1, 11, tzinfo=UTC),
    }
    plan = rb.plan_from_states(states, finished, FORWARD, STEPS)
    assert plan == {
        "failed": ["q.c"],
        "reasons": ["step q.c failed"],
        "compensate": ["a"],
        "not_undone": ["b"],
    }
    assert rb.reasons_for(["gate__g.checks", "gate__g.rm__round_2"]) == [
        "gate g: a required check failed",
        "gate g: NOGO or no answer from role rm",
    ]


def test_the_record_says_exactly_what_was_and_was_not_undone() -> None:
    plan = {"compensate": ["c", "a"], "not_undone": ["b"]}
    states = {"rollback.undo_1": "success", "rollback.undo_2": "failed", "rollback.tell": "skipped"}
    record = rb.rollback_record(states, plan, ["tell"])
    assert record == {
        "undone": ["c"],
        "undo_failed": ["a"],
        "not_run": [],
        "no_rollback_defined": ["b"],
        "global_done": [],
        "global_not_done": ["tell"],
    }
    assert rb.not_undone_lines(record) == ["b: no rollback defined", "a: undo failed"]
    assert rb.in_flight({"p.a": "running", "q.c": "success"}, STEPS) == ["p.a"]


def test_a_long_run_note_is_cut_to_what_airflow_stores_keeping_the_outcome() -> None:
    from gonogo.core.runs.decisions import NOTE_LIMIT

    rows = [
        Decision("g", f"role{n}", 1, "GO", "kari", "t", "x" * 80, 1, f"gate__g.role{n}")
        for n in range(40)
    ]
    text = note(rows, {"outcome": "rolled_back", "reasons": ["step s failed"]})
    assert len(text) <= NOTE_LIMIT
    assert text.splitlines()[:2] == [naming.NOTE_MARKER, "**Outcome: rolled_back**"]
    assert "more line(s): `gonogo decisions`" in text.splitlines()[-1]


def test_the_recorded_trigger_is_read_from_the_run_conf_and_only_with_an_id() -> None:
    from gonogo.core.runs.decisions import recorded_trigger

    conf = {"version": "1", naming.CONF_TRIGGER: {"id": 7, "name": "kari"}}
    assert recorded_trigger(conf) == {"id": "7", "name": "kari"}
    assert recorded_trigger({naming.CONF_TRIGGER: {"name": "kari"}}) is None
    assert recorded_trigger({}) is None
    assert recorded_trigger(None) is None


def test_a_gate_is_go_only_by_records_of_different_eligible_members() -> None:
    from gonogo.core.runs.gates import gate_verdict

    users = {"rm": ["a", "b"], "so": ["b", "c"]}
    go_a = {"answer": "GO", "by": "a", "by_id": "a"}
    go_b = {"answer": "GO", "by": "b", "by_id": "b"}
    go_c = {"answer": "GO", "by": "c", "by_id": "c"}
    assert gate_verdict("g", {"rm": [go_a], "so": [go_c]}, users, "x", "x") is None
    # A task marked success by hand leaves no record.
    assert "no recorded GO from role so" in str(
        gate_verdict("g", {"rm": [go_a], "so": [None]}, users, "x", "x")
    )
    # The person who started the run, by id or by name.
    assert "may not answer" in str(gate_verdict("g", {"rm": [go_a], "so": [go_c]}, users, "a", "x"))
    assert "may not answer" in str(gate_verdict("g", {"rm": [go_a], "so": [go_c]}, users, "x", "c"))
    # Someone outside the role.
    assert "may not answer" in str(gate_verdict("g", {"rm": [go_c], "so": [go_b]}, users, "x", "x"))
    # One person for two roles.
    assert "answered for both rm and so" in str(
        gate_verdict("g", {"rm": [go_b], "so": [go_b]}, users, "x", "x")
    )
    # A reask round's later GO counts; its earlier NOGO does not stand.
    nogo = {"answer": "NOGO", "by": "a", "by_id": "a"}
    assert gate_verdict("g", {"rm": [nogo, go_a, None], "so": [go_c]}, users, "x", "x") is None


def test_the_decision_log_starts_with_the_plan_its_run_was_checked_against() -> None:
    from gonogo.core.runs.decisions import plan_line

    assert plan_line({}) is None  # refused before the fingerprint was taken
    assert plan_line({"fingerprint": "abc123def456"}) == "plan fingerprint abc123def456"
    approved = {"fingerprint": "abc", "approval": {"approved_by": ["ann (cab)", "bo (cab)"]}}
    assert plan_line(approved) == "plan fingerprint abc, approved by ann (cab), bo (cab)"
    flagged = {"fingerprint": "abc", "approval": None, "retrospective": True, "rehearsal": True}
    assert plan_line(flagged) == (
        "plan fingerprint abc, retrospective approval required; a rehearsal"
    )
    assert table([], (), approved).splitlines()[0] == plan_line(approved)
