"""Turn a spoken-style command into the referring expression the model is given.

"pick up the jar on the table" -> "the jar on the table"; "could you grab the red cup on the left
please" -> "the red cup on the left"; "segment the sky" -> "the sky". The model of Hu et al. (2016)
is trained on referring expressions (ReferIt: "bush/tree on left bottom corner", "far left
person"), so the command words and politeness are stripped and the referent is kept.

The rule is conservative: text is rewritten only when it starts (after politeness such as "please",
"could you", "robot,") with a command verb followed by a noun phrase. Anything else, which includes
nearly every ReferIt expression, passes through unchanged. Verbs that are also common nouns or
appear in ReferIt descriptions ("hand", "pick", "select", "touch") count as commands only when a
determiner or pronoun follows ("hand me the cup", "pick a cup", but not "hand on womans shoulder").

A command whose object is only a pronoun ("pick it up", "grab that") names no object: its
expression is empty and :attr:`ParsedCommand.anaphoric` is true, so a caller can keep the object of
the previous query.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

# Long enough for every ReferIt expression (the longest has 171 characters).
DEFAULT_MAX_LENGTH = 200

# Politeness and fillers before a command, each a word sequence (matched lowercase, punctuation
# around a word ignored). Stripped repeatedly, in any order, but only when a command verb follows.
_LEADING_FILLERS = tuple(tuple(p.split()) for p in (
    "please", "kindly", "now", "then", "and", "so", "just", "ok", "okay", "alright", "hey", "hi",
    "um", "uh", "well", "robot", "hey robot", "go ahead and", "try to", "quickly", "carefully",
    "can you", "could you", "would you", "will you", "would you mind", "do you mind",
    "can you please",
    "could you please", "would you please", "i want you to", "i need you to", "i would like you to",
    "i'd like you to", "i want to", "i would like to", "i'd like to", "let's", "lets",
))

# Verbs that are commands whatever follows (unless a preposition does: "segment of brown hills").
_STRONG_VERBS = tuple(tuple(p.split()) for p in (
    "pick up", "grab", "grasp", "fetch", "segment", "segment out", "find", "locate", "highlight",
    "detect", "identify", "point to", "point at", "point out", "show me", "bring me", "hand me",
    "give me", "pass me", "get me", "reach for", "pick out",
))

# Verbs that are commands only when a determiner or pronoun follows ("get the cup", not "get on
# the bus"; "hand me the cup", not "hand on shoulder").
_WEAK_VERBS = tuple(tuple(p.split()) for p in (
    "pick", "take", "get", "select", "touch", "lift", "hold", "give", "bring", "hand", "pass",
    "show", "choose", "mark", "grab hold of", "take hold of",
))

# "would you mind fetching the jar": the -ing forms of the verbs' first words, after "mind".
_GERUNDS = {
    "picking": "pick", "grabbing": "grab", "grasping": "grasp", "fetching": "fetch",
    "segmenting": "segment", "finding": "find", "locating": "locate", "highlighting": "highlight",
    "detecting": "detect", "identifying": "identify", "pointing": "point", "showing": "show",
    "bringing": "bring", "handing": "hand", "giving": "give", "passing": "pass", "getting": "get",
    "reaching": "reach", "taking": "take", "selecting": "select", "touching": "touch",
    "lifting": "lift", "holding": "hold", "choosing": "choose", "marking": "mark",
}

_DETERMINERS = frozenset(
    "the a an this that these those my your his her its our their any some all both each every "
    "either one two three four five six seven eight nine ten it them".split())

# Words after which a "strong" verb is not a command: "segment of brown hills", "find out".
_NOT_AN_OBJECT = frozenset(
    "of on in at to for with by from into onto and or but is are was were be out off".split())

# Words that make a following determiner a relative pronoun ("hand that is on the left").
_COPULAS = frozenset("is are was were has have looks seems".split())

# Pronoun phrases that name no object.
_PRONOUN_OBJECTS = frozenset(tuple(p.split()) for p in (
    "it", "them", "this", "that", "these", "those", "this one", "that one", "the one", "one",
    "something", "anything", "everything",
))

# Polite or filler words after the object: "... please", "... for me", "... now, thanks".
_TRAILING_FILLERS = tuple(tuple(p.split()) for p in (
    "please", "for me", "thanks", "thank you", "now", "right now", "quickly", "carefully",
    "if you can", "if you could", "if possible", "will you", "would you", "ok", "okay",
))

# Particles closing a split verb: "pick the cup up".
_TRAILING_PARTICLES = {"pick": ("up",), "lift": ("up",), "pick out": ("out",), "point out": ()}

# A second action after the object ends it: "pick up the cup and put it in the box".
_FOLLOWING_ACTIONS = frozenset(
    "put place drop bring give hand move hold lift throw pour open close take carry set "
    "leave show pass then".split())

_FIRST_WORDS = frozenset(p[0] for p in _LEADING_FILLERS + _STRONG_VERBS + _WEAK_VERBS)
_WORD = re.compile(r"\S+")
_EDGE_PUNCTUATION = ".,!?;:\"()[]{}"


@dataclass(frozen=True)
class ParsedCommand:
    """What :func:`parse_command` found in one query."""

    command: str            # the query as received
    expression: str         # the referring expression for the model ("" when none)
    verb: str               # the command verb phrase ("pick up"), "" when the text is no command
    anaphoric: bool         # the object is only a pronoun ("pick it up")
    truncated: bool         # the expression was cut to the maximum length


def _key(word: str) -> str:
    return word.lower().strip(_EDGE_PUNCTUATION)


def _match(keys: list[str], start: int, phrases) -> tuple[str, ...] | None:
    """Return the longest phrase of ``phrases`` that ``keys`` holds at ``start``."""
    if start >= len(keys) or keys[start] not in _FIRST_WORDS:
        return None
    best = None
    for phrase in phrases:
        if tuple(keys[start:start + len(phrase)]) == phrase and (best is None
                                                                  or len(phrase) > len(best)):
            best = phrase
    return best


def _strip_trailing(keys: list[str], start: int, end: int, verb: tuple[str, ...]) -> int:
    """Drop trailing fillers and the verb's closing particle from ``keys[start:end]``."""
    particles = _TRAILING_PARTICLES.get(" ".join(verb), ())
    changed = True
    while changed and end > start:
        changed = False
        for phrase in _TRAILING_FILLERS + tuple((p,) for p in particles):
            n = len(phrase)
            if end - n > start and tuple(keys[end - n:end]) == phrase:
                end -= n
                changed = True
                break
    return end


def _cut_following_action(words: list[str], keys: list[str], start: int, end: int) -> int:
    """End the object before "and put ...", ", then ..." (a second action)."""
    for i in range(start + 1, end):
        if keys[i] == "and" and i + 1 < end and keys[i + 1] in _FOLLOWING_ACTIONS:
            return i
        if keys[i] == "then" and words[i - 1].endswith(","):
            return i
    return end


def _truncate(text: str, max_length: int) -> tuple[str, bool]:
    if len(text) <= max_length:
        return text, False
    cut = text[:max_length]
    space = cut.rfind(" ")
    if space > 0 and not text[max_length].isspace():
        cut = cut[:space]
    return cut.rstrip(), True


def parse_command(text: str, max_length: int = DEFAULT_MAX_LENGTH) -> ParsedCommand:
    """Parse a query: find the command verb, if any, and the referring expression.

    ``text`` that is no command (a bare referring expression) becomes the expression unchanged
    except for surrounding whitespace. The expression is at most ``max_length`` characters, cut at
    a word boundary.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    matches = list(_WORD.finditer(text))
    words = [m.group() for m in matches]
    keys = [_key(w) for w in words]

    i = 0
    while i < len(keys):
        filler = _match(keys, i, _LEADING_FILLERS)
        if filler and filler[-1] == "mind" and i + len(filler) < len(keys):
            after = i + len(filler)
            keys[after] = _GERUNDS.get(keys[after], keys[after])
        verb = _match(keys, i, _STRONG_VERBS + _WEAK_VERBS)
        if verb is not None and (filler is None or len(verb) >= len(filler)):
            break
        if filler is None:
            break
        i += len(filler)
    verb = _match(keys, i, _STRONG_VERBS + _WEAK_VERBS) if i < len(keys) else None
    start = i + len(verb) if verb else i
    is_command = False
    if verb is not None and start < len(keys):
        if verb in _STRONG_VERBS:
            is_command = keys[start] not in _NOT_AN_OBJECT
        else:
            # "hand that is touching the ear" describes a hand; "hand that cup" is a command.
            is_command = keys[start] in _DETERMINERS and (
                start + 1 >= len(keys) or keys[start + 1] not in _COPULAS)
    if not is_command:
        expression, truncated = _truncate(text.strip(), max_length)
        return ParsedCommand(text, expression, "", False, truncated)

    end = _cut_following_action(words, keys, start, len(words))
    end = _strip_trailing(keys, start, end, verb)
    obj_keys = tuple(keys[start:end])
    if obj_keys in _PRONOUN_OBJECTS:
        return ParsedCommand(text, "", " ".join(verb), True, False)
    expression = text[matches[start].start():matches[end - 1].end()]
    expression = expression.strip().rstrip(".,!?;:" + string.whitespace)  # "0\r." -> "0"
    expression, truncated = _truncate(expression, max_length)
    return ParsedCommand(text, expression, " ".join(verb), False, truncated)


def command_to_expression(text: str, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Return the referring expression of a command ("pick up the jar" -> "the jar").

    A bare expression comes back unchanged (surrounding whitespace aside); a command whose object
    is only a pronoun ("pick it up") gives ``""``.
    """
    return parse_command(text, max_length).expression


@dataclass(frozen=True)
class CommandPhrases:
    """The word sequences :func:`parse_command` strips, for a speech recognizer's grammar."""

    leading: tuple[str, ...]    # politeness and fillers before the verb ("could you", "please")
    verbs: tuple[str, ...]      # command verb phrases ("pick up", "hand me", "take")
    trailing: tuple[str, ...]   # fillers and particles after the object ("please", "up")


def command_phrases() -> CommandPhrases:
    """Return the phrases the parser strips around a referring expression, each once, sorted."""
    def joined(phrases) -> tuple[str, ...]:
        return tuple(sorted({" ".join(p) for p in phrases}))
    particles = {p for ps in _TRAILING_PARTICLES.values() for p in ps}
    return CommandPhrases(leading=joined(_LEADING_FILLERS),
                          verbs=joined(_STRONG_VERBS + _WEAK_VERBS),
                          trailing=joined(_TRAILING_FILLERS + tuple((p,) for p in particles)))
