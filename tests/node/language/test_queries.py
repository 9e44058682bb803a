"""Command -> expression with the previous query, known words, and the log limiters."""

import pytest

from refseg_node.language.queries import Throttle, TokenBucket, nothing_known, resolve_query


def test_a_command_gives_its_expression():
    r = resolve_query("pick up the red cup on the left", 200, None)
    assert r.expression == "the red cup on the left" and r.warnings == ()


def test_a_pronoun_keeps_the_previous_object_or_is_ignored_with_a_warning():
    assert resolve_query("pick it up", 200, "the jar").expression == "the jar"
    r = resolve_query("pick it up", 200, None)
    assert r.expression is None
    assert [k for k, _ in r.warnings] == ["anaphoric"] and "names no object" in r.warnings[0][1]


def test_a_long_command_is_cut_with_a_warning():
    r = resolve_query("the " + "red " * 300 + "cup", 200, None)
    assert len(r.expression) <= 200
    assert r.warnings[0][0] == "long_query" and "cut to 200" in r.warnings[0][1]


@pytest.mark.parametrize("expression,unknown,expected", [
    ("ramasse la tasse", ("ramasse", "la", "tasse"), True),
    ("the zorblax cup", ("zorblax",), False),
    ("the cup, please!", (), False),
    ("?!", (), True),                   # no word at all
])
def test_nothing_known(expression, unknown, expected):
    assert nothing_known(expression, unknown) is expected


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(burst=3, rate=2.0, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.allow(0.4)
    assert bucket.allow(0.5)            # 0.5 s * 2/s = one token back
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_throttle_once_per_period_and_kind():
    t = Throttle()
    assert t.allow("a", 0.0, 5.0) and not t.allow("a", 4.9, 5.0) and t.allow("a", 5.0, 5.0)
    assert t.allow("b", 1.0, 5.0)
    assert t.allow("c", 0.0, 0.0) and t.allow("c", 0.0, 0.0)
