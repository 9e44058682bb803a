"""Commands to referring expressions, on real phrasings and on the real ReferIt expressions."""

import json
from pathlib import Path

import pytest

from refseg_node.language.command_parser import (
    DEFAULT_MAX_LENGTH,
    command_to_expression,
    parse_command,
)

REFERIT = Path(__file__).resolve().parents[3].parent / "shared" / "referit"
# A copy of part of ReferIt's test split (ronghanghu/text_objseg release) kept in the repository.
REFERIT_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "referit"

COMMANDS = [
    ("pick up the jar on the table", "the jar on the table"),
    ("could you grab the red cup on the left please", "the red cup on the left"),
    ("segment the sky", "the sky"),
    ("Segment the sky.", "the sky"),
    ("Pick up the jar on the table.", "the jar on the table"),
    ("please pick up the blue bottle", "the blue bottle"),
    ("Robot, please pick the red cup up.", "the red cup"),
    ("can you find the sky?", "the sky"),
    ("hand me the blue bottle, thanks", "the blue bottle"),
    ("give me the small green ball", "the small green ball"),
    ("bring me the bottle next to the blue box", "the bottle next to the blue box"),
    ("show me the two green balls", "the two green balls"),
    ("I would like you to pick up the green ball for me please", "the green ball"),
    ("i want you to grab the mug", "the mug"),
    ("would you mind fetching the jar", "the jar"),
    ("do you mind picking up the bowl please", "the bowl"),
    ("grab red cup on the left", "red cup on the left"),
    ("find the book behind the bowl", "the book behind the bowl"),
    ("locate the person on the far left", "the person on the far left"),
    ("highlight the bowl", "the bowl"),
    ("point to the box on the right", "the box on the right"),
    ("take the yellow box", "the yellow box"),
    ("get the can on the right now", "the can on the right"),
    ("select the bottom left corner", "the bottom left corner"),
    ("pick up the cup and put it in the box", "the cup"),
    ("grab the bottle, then place it on the shelf", "the bottle"),
    ("okay robot, just grab the jar on the left, thank you", "the jar on the left"),
    ("um, pick up the cup", "the cup"),
    ("PICK UP THE RED CUP", "THE RED CUP"),
    ("  pick   up   the   cup  ", "the   cup"),
]

# Queries that are no commands come back unchanged (surrounding whitespace aside).
BARE = [
    "the jar on the table",
    "bush/tree on left bottom corner",
    "far left person",
    "upper left of photo",
    "sky",
    "hand on womans shoulder",
    "hand that is touching the ear with white sleeve on the right",
    "segment of brown hills on right",
    "get on the bus",
    "lift chair",
    "move right",
    "pick",
    "find out",
    "just the sky",
    "the red cup please",
    "ramasse la tasse rouge à gauche",
    "左边的红色杯子",
    "¿dónde está la taza?",
]


@pytest.mark.parametrize(("command", "expression"), COMMANDS)
def test_commands_become_expressions(command, expression):
    assert command_to_expression(command) == expression
    parsed = parse_command(command)
    assert parsed.command == command and parsed.verb and not parsed.anaphoric


@pytest.mark.parametrize("text", BARE)
def test_bare_expressions_pass_through_unchanged(text):
    parsed = parse_command(text)
    assert parsed.expression == text.strip()
    assert parsed.verb == "" and not parsed.anaphoric and not parsed.truncated


@pytest.mark.parametrize("command", ["pick it up", "grab that", "pick that one up",
                                     "could you pick them up please", "take this", "grab it."])
def test_pronoun_objects_are_anaphoric_with_no_expression(command):
    parsed = parse_command(command)
    assert parsed.anaphoric and parsed.expression == "" and parsed.verb


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_queries_give_empty_expressions(text):
    parsed = parse_command(text)
    assert parsed.expression == "" and not parsed.anaphoric and parsed.verb == ""


def test_long_queries_are_cut_at_a_word_boundary():
    text = "pick up the " + " ".join(["very"] * 100) + " red cup"
    parsed = parse_command(text, max_length=50)
    assert parsed.truncated and len(parsed.expression) <= 50
    assert parsed.expression.startswith("the very") and parsed.expression.endswith("very")
    unbroken = "x" * 500
    cut = parse_command(unbroken, max_length=40)
    assert cut.truncated and cut.expression == "x" * 40
    assert not parse_command("the cup", max_length=7).truncated
    with pytest.raises(ValueError, match="max_length"):
        parse_command("the cup", max_length=0)


def _referit_expressions():
    """All ReferIt test-split expressions: the shared copy, else the repository's excerpt."""
    for folder in (REFERIT, REFERIT_FIXTURE):
        path = folder / "referit_query_test.json"
        if path.is_file():
            queries = json.loads(path.read_text(encoding="utf-8"))
            return [e for exprs in queries.values() for e in exprs]
    pytest.skip("no referit_query_test.json found")


def test_referit_expressions_pass_through_unless_they_are_commands():
    """Every real ReferIt expression is unchanged, except a handful that are commands.

    ReferIt players sometimes typed commands ("pick a person", "select the bottom left corner");
    those lose the verb, and only the verb: what is left is the rest of the original text.
    """
    expressions = _referit_expressions()
    changed = []
    for text in expressions:
        parsed = parse_command(text)
        assert len(text) > DEFAULT_MAX_LENGTH or not parsed.truncated
        if parsed.expression != text.strip():
            changed.append((text, parsed))
    assert len(expressions) > 100
    # At most 1 in 2,000 ReferIt expressions reads as a command.
    assert len(changed) <= max(1, len(expressions) // 2000), changed
    for text, parsed in changed:
        assert parsed.verb, text
        assert parsed.expression and parsed.expression in text, (text, parsed)
        assert text.lower().split()[0].strip(",") in parsed.verb.split() + [
            "please", "can", "could", "robot"], (text, parsed)


def test_named_referit_examples_are_unchanged():
    for text in ["bush/tree on left bottom corner", "far left person", "upper left of photo",
                 "any of the people", "water", "man in blue on right", "2nd from left"]:
        assert command_to_expression(text) == text
