"""Command -> expression with the previous query; the query prepared once (known words)."""

import pytest

from refseg_node.language.queries import prepare_query, resolve_query


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
    assert prepare_query("", expression, lambda _: unknown).nothing_known is expected


def test_a_query_is_prepared_once_with_the_vocabulary_look_up():
    looked_up = []

    def unknown_words(expression):
        looked_up.append(expression)
        return ("zorblax",)

    q = prepare_query("pick up the zorblax cup", "the zorblax cup", unknown_words)
    assert (q.command, q.expression) == ("pick up the zorblax cup", "the zorblax cup")
    assert q.words == ("the", "zorblax", "cup") and q.unknown_words == ("zorblax",)
    assert not q.nothing_known and not q.nothing_known
    assert looked_up == ["the zorblax cup"]         # once, when prepared; never per frame
