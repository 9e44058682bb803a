"""The speech recognizer's grammar: what the loaded model understands, shaped like a command.

A spoken command is decoded against a finite-state grammar built at run time from the words of
the active checkpoint's vocabulary (``payload["vocabulary"]``, so the grammar follows the model
that is loaded) and the command verbs, politeness and closing words that
:mod:`refseg_node.language.command_parser` strips ("pick up", "could you", "please"). Two shapes:

- ``command`` (the default): ``[leading] verb expression [trailing]`` or a bare ``expression``,
  the expression shaped like the synthetic world's referring expressions
  (:mod:`refseg_model.synth.expressions`)::

      [the | all the | both] [two | three] [position] [size] [colour] [modifier]* head [tail]
      tail = on the [far] left [side] | in the middle | in front | at the back
           | in the top left [corner] | relation [the] [colour] noun  (next to, behind, ...)

  or a bare corner ("bottom right"). The word classes (nouns, plurals, colours, sizes,
  relations, command verbs) come from the generator's word lists, each word kept only when the
  vocabulary has it; vocabulary words of no class (a model trained on other data) may be
  modifiers and heads, so every vocabulary word can still be heard.
- ``words``: ``[leading] verb words [trailing]`` or bare ``words``, ``words`` being any sequence of
  vocabulary words (looser: it also takes word salad).

Only words the recognizer can pronounce (those in its pronunciation dictionary) go in; the others
are reported so a caller can say which words of the model cannot be heard. Nothing here imports
pocketsphinx.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from refseg_node.language.command_parser import command_phrases

GRAMMAR_NAME = "refseg_command"
GRAMMAR_SHAPES = ("command", "words")
# Probability that an optional slot of the "command" shape (a colour, a size, a tail) is empty.
SKIP = 0.5
# Weight of the bare corners ("bottom right") against 1 for each of the four noun phrase shapes.
CORNER_SHARE = 0.25
# Weights of a bare expression, a verb first and politeness first, at the start of a command.
START_WEIGHTS = (1.0, 1.0, 0.5)
# Probability of a closing word after the expression ("... please").
TRAILING_SHARE = 0.2
# A word a grammar may hold: lowercase letters, inner apostrophes ("don't"); no punctuation
# tokens ("/", "-"), no special tokens ("<unk>"), no digits (the dictionary spells numbers out).
_WORD = re.compile(r"^[a-z]+(?:'[a-z]+)*$")


class GrammarError(ValueError):
    """No grammar can be built (no vocabulary word can be pronounced)."""


@dataclass(frozen=True)
class CommandGrammar:
    """A finite-state grammar (states and word transitions) and what went into it."""

    start: int                       # start state
    final: int                       # final state
    transitions: tuple[tuple, ...]   # (from, to, probability, word); no word = a null transition
    words: tuple[str, ...]           # the vocabulary words of the expression, in vocabulary order
    unpronounceable: tuple[str, ...]  # vocabulary words left out: not in the dictionary
    verbs: tuple[str, ...]           # command verb phrases in the grammar
    leading: tuple[str, ...]         # fillers before a verb
    trailing: tuple[str, ...]        # fillers after the expression
    shape: str = "words"             # one of GRAMMAR_SHAPES
    unclassified: tuple[str, ...] = ()  # "command" shape: vocabulary words of no word class

    def accepts(self, text: str) -> bool:
        """Say whether the grammar can produce ``text`` (words separated by spaces)."""
        words: dict[int, list[tuple[str, int]]] = {}
        nulls: dict[int, list[int]] = {}
        for t in self.transitions:
            if len(t) == 4:
                words.setdefault(t[0], []).append((t[3], t[1]))
            else:
                nulls.setdefault(t[0], []).append(t[1])
        states = _closure({self.start}, nulls)
        for word in text.split():
            states = _closure({b for a in states for w, b in words.get(a, ()) if w == word},
                              nulls)
            if not states:
                return False
        return self.final in states


def _closure(states: set[int], nulls: dict[int, list[int]]) -> set[int]:
    """Return ``states`` and every state their null transitions reach."""
    todo, seen = list(states), set(states)
    while todo:
        for nxt in nulls.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def expression_words(vocabulary: Iterable[str], pronounceable: Callable[[str], bool]
                     ) -> tuple[list[str], list[str]]:
    """Split a vocabulary into words a grammar can hold and pronounceable words it cannot.

    Returns ``(words, unpronounceable)``: ``words`` in vocabulary order, once each; special tokens
    and punctuation tokens are in neither list.
    """
    words, missing, seen = [], [], set()
    for token in vocabulary:
        word = token.strip().lower()
        if not _WORD.match(word) or word in seen:
            continue
        seen.add(word)
        (words if pronounceable(word) else missing).append(word)
    return words, missing


class _Builder:
    """States and transitions of a grammar under construction.

    Each arc has a weight (1 unless given); a state's outgoing probabilities are its arcs'
    weights over their sum.
    """

    def __init__(self):
        self.count = 0
        self.arcs: list[tuple[int, int, str | None, float]] = []

    def state(self) -> int:
        self.count += 1
        return self.count - 1

    def null(self, source: int, target: int, weight: float = 1.0) -> None:
        """Add a transition that says no word."""
        self.arcs.append((source, target, None, weight))

    def phrases(self, sources: Iterable[int], phrases: Iterable[str], target: int) -> None:
        """Add a path of word transitions from every source to ``target`` for each phrase."""
        for source in sources:
            for phrase in phrases:
                words = phrase.split()
                here = source
                for word in words[:-1]:
                    nxt = self.state()
                    self.arcs.append((here, nxt, word, 1.0))
                    here = nxt
                self.arcs.append((here, target, words[-1], 1.0))

    def weighted(self, source: int, weight: float) -> int:
        """Add a null transition of ``weight`` to a new state; return it."""
        target = self.state()
        self.null(source, target, weight)
        return target

    def optional(self, source: int, phrases: tuple[str, ...], skip: float) -> int:
        """Add a slot: one of ``phrases`` or nothing (probability ``skip``); return its end."""
        target = self.state()
        self.phrases([source], phrases, target)
        self.null(source, target, len(phrases) * skip / (1.0 - skip) if phrases else 1.0)
        return target

    def transitions(self) -> tuple[tuple, ...]:
        total: dict[int, float] = {}
        for source, _, _, weight in self.arcs:
            total[source] = total.get(source, 0.0) + weight
        return tuple((a, b, p / total[a]) if w is None else (a, b, p / total[a], w)
                     for a, b, w, p in self.arcs)


# The referring expressions' word classes, from the synthetic world's generator (its word lists)
# and the shapes of its templates (refseg_model.synth.expressions). Each is filtered by the
# checkpoint's vocabulary when the grammar is built.
def _generator_classes() -> dict[str, tuple[str, ...]]:
    from refseg_model.synth.expressions import COMMANDS, ONE, RELATION_FORMS, STUFF_COMMANDS
    from refseg_model.synth.objects import COLOURS, COMPARATIVES, NOUNS, PLURALS, SIZE_WORDS

    relations = []
    for forms in RELATION_FORMS.values():
        for form in forms:
            # "the {d} to the left of the {l}" -> "to the left of"
            middle = form.split("{d}", 1)[1].split("{l}", 1)[0].split()
            relations.append(" ".join(middle[:-1] if middle[-1:] == ["the"] else middle))
    nouns = tuple(n for names in NOUNS.values() for n in names)
    return {
        "determiners": ("the",),
        # "the two green balls", "both cups", "all the red jars"
        "plural determiners": ("the", "both", "all the") + tuple(ONE.values())
        + tuple(f"the {n}" for n in ONE.values()),
        # before the noun: "the left cup", "the leftmost cup", "far left object", "top left cup"
        "positions": ("left", "right", "leftmost", "rightmost", "middle", "front", "back",
                      "closest", "nearest", "farthest", "far left", "far right", "top left",
                      "top right", "bottom left", "bottom right"),
        "sizes": tuple(w for words in SIZE_WORDS.values() for w in words)
        + tuple(COMPARATIVES.values()),
        "colours": tuple(COLOURS),
        "modifiers": ("wooden", "background"),        # "the wooden table", "the background wall"
        "nouns": nouns,
        "heads": nouns + ("one", "object", "thing"),
        "plurals": tuple(PLURALS.values()),
        "stuff": ("table", "tabletop", "table surface", "wall", "floor"),
        # after the noun: "on the left", "on the far right side", "in the bottom left corner"
        "places": ("on the left", "on the right", "on left", "on right", "on the left side",
                   "on the right side", "on the far left", "on the far right", "in the middle",
                   "in the center", "in middle", "in front", "in the front", "at the back",
                   "in the back", "in back", "in the top left", "in the top right",
                   "in the bottom left", "in the bottom right", "in the top left corner",
                   "in the top right corner", "in the bottom left corner",
                   "in the bottom right corner"),
        # the generator's relations, "the floor under the table", "the jar on the table"
        "relations": tuple(dict.fromkeys(relations)) + ("under", "on"),
        "corners": ("top left", "top right", "bottom left", "bottom right"),
        "verbs": tuple(dict.fromkeys(COMMANDS + STUFF_COMMANDS)),
    }


def _sayable(candidates: Iterable[str], allowed: Callable[[str], bool]) -> tuple[str, ...]:
    """Keep the phrases whose every word is a grammar word that ``allowed`` accepts."""
    return tuple(dict.fromkeys(p for p in candidates
                               if all(_WORD.match(w) and allowed(w) for w in p.split())))


def command_grammar(vocabulary: Iterable[str], pronounceable: Callable[[str], bool],
                    with_fillers: bool = True, shape: str = "command") -> CommandGrammar:
    """Build the command grammar of ``vocabulary`` (a checkpoint's token list).

    ``pronounceable(word)`` says whether the recognizer's dictionary has ``word``. With
    ``with_fillers`` the politeness before a verb and the fillers after the expression that the
    command parser strips are allowed too; without, only the verbs. ``shape`` is ``command``
    (expressions shaped like the synthetic world's) or ``words`` (any sequence of vocabulary
    words). Raises :class:`GrammarError` when no vocabulary word is pronounceable.
    """
    if shape not in GRAMMAR_SHAPES:
        raise GrammarError(f"grammar shape must be one of {GRAMMAR_SHAPES}, got {shape!r}")
    words, missing = expression_words(vocabulary, pronounceable)
    if not words:
        raise GrammarError("no word of the vocabulary is in the pronunciation dictionary, so no "
                           "grammar can be built; use the general language model instead")
    phrases = command_phrases()
    classes = _generator_classes() if shape == "command" else {}
    verbs = _sayable(phrases.verbs + classes.get("verbs", ()), pronounceable)
    leading = _sayable(phrases.leading, pronounceable) if with_fillers and verbs else ()
    trailing = _sayable(phrases.trailing, pronounceable) if with_fillers else ()
    g = _Builder()
    start, polite, verb, expression, end, final = (g.state() for _ in range(6))
    # A bare expression, a verb, or politeness and a verb: weighted as a whole (START_WEIGHTS),
    # not by how many phrases each has, so that "the jar on the table" is not made unlikely by
    # the forty verbs.
    bare, commanded, polite_first = START_WEIGHTS
    g.null(start, expression, bare)
    if verbs:
        g.phrases([g.weighted(start, commanded)], verbs, verb)
    if leading:
        g.phrases([g.weighted(start, polite_first)], leading, polite)
        g.phrases([polite], verbs, verb)
    g.null(verb, expression)
    unclassified: tuple[str, ...] = ()
    if shape == "words":
        g.phrases([expression, end], words, end)
    else:
        spoken = {w for p in verbs + leading + trailing for w in p.split()}
        unclassified = _expression(g, classes, set(words), spoken, expression, end)
    g.null(end, final)
    if trailing:     # a closing word ("please") in TRAILING_SHARE of commands
        g.phrases([g.weighted(end, TRAILING_SHARE / (1.0 - TRAILING_SHARE))], trailing, final)
    return CommandGrammar(start, final, g.transitions(), tuple(words), tuple(missing), verbs,
                          leading, trailing, shape, unclassified)


def _expression(g: _Builder, classes: dict, vocabulary: set[str], spoken: set[str], begin: int,
                end: int) -> tuple[str, ...]:
    """Add the referring expression from ``begin`` to ``end``; return the unclassified words.

    ``spoken`` are the words of the command phrases around the expression (not unclassified).
    Four branches: a singular or a plural noun phrase, each with a position before the noun
    ("the left cup") or none (a place may then follow: "the cup on the left"). In each, a chain
    of optional slots (skipped with probability :data:`SKIP`) ends in a head and an optional
    tail. Every word class is cut down to the phrases whose words are all in ``vocabulary``.
    """
    def known(name):
        return _sayable(classes[name], vocabulary.__contains__)
    used = spoken | {w for phrases in classes.values() for p in phrases for w in p.split()}
    other = tuple(w for w in sorted(vocabulary) if w not in used)
    landmarks = known("nouns") + known("stuff") + other
    relation = None
    if known("relations") and landmarks:
        relation = g.state()
        landmark = g.optional(relation, ("the",) if "the" in vocabulary else (), SKIP)
        landmark = g.optional(landmark, known("colours"), SKIP)
        g.phrases([landmark], landmarks, end)
    for plural in (False, True):
        heads = (known("plurals") if plural else known("heads") + known("stuff")) + other
        if not heads:
            continue
        for positioned in (False, True):
            if positioned and not known("positions"):
                continue
            branch = g.state()
            g.null(begin, branch)
            here = g.optional(branch, known("plural determiners" if plural else "determiners"),
                              SKIP)
            if positioned:
                nxt = g.state()
                g.phrases([here], known("positions"), nxt)
                here = nxt
            for name in ("sizes", "colours", "modifiers"):
                here = g.optional(here, known(name), SKIP)
            if other:       # words the generator does not use: any number of modifiers
                g.phrases([here], other, here)
            head = g.state()
            g.phrases([here], heads, head)
            places = () if positioned else known("places")
            relations = known("relations") if relation is not None else ()
            g.phrases([head], places, end)
            g.phrases([head], relations, relation)
            g.null(head, end, (len(places) + len(relations)) * SKIP / (1.0 - SKIP) or 1.0)
    corners = known("corners")
    for corner in corners:      # a bare corner ("bottom right"): rare, CORNER_SHARE in all
        g.phrases([g.weighted(begin, CORNER_SHARE / len(corners))], (corner,), end)
    return other
