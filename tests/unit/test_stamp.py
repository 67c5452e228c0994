"""The trigger stamp's signature covers each field on its own."""

from __future__ import annotations

import pytest

from gonogo.core.runs import stamp


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("d", "r\x1fk", "x", "n"), ("d", "r", "k\x1fx", "n")),
        (("d", "r,k", "x", "n"), ("d", "r", "k,x", "n")),
        (('d", "r', "k", "x", "n"), ("d", "r", "k", "x")),
        (("d", "r", "7", "kari"), ("d", "r", "7", "kari ")),
    ],
)
def test_fields_that_join_to_the_same_text_sign_differently(
    one: tuple[str, str, str, str], other: tuple[str, str, str, str]
) -> None:
    assert stamp.sign("s", *one) != stamp.sign("s", *other)


def test_a_stamp_verifies_only_for_its_dag_run_and_secret() -> None:
    found = stamp.stamp("s", "d", "r", "7", "kari")
    assert stamp.verified("s", "d", "r", found) == {"id": "7", "name": "kari"}
    for secret, dag, run in [("t", "d", "r"), ("s", "e", "r"), ("s", "d", "q")]:
        assert stamp.verified(secret, dag, run, found) is None
    assert stamp.verified("s", "d", "r", {**found, "id": "8"}) is None
    assert stamp.verified("s", "d", "r", {**found, "id": 7}) is None
    assert stamp.verified("s", "d", "r", [found]) is None
