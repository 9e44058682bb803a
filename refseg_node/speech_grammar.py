"""The speech recognizer's grammar: what the loaded model understands, shaped like a command.

A spoken command is decoded against a finite-state grammar built at run time from

- the words of the active checkpoint's vocabulary (``payload["vocabulary"]``, so the grammar
  follows the model that is loaded), as the referring expression: any sequence of them;
- the command verbs, politeness and closing words that :mod:`refseg_node.command_parser` strips
  ("pick up", "could you", "please"), around it.

The grammar accepts ``[leading] verb expression [trailing]`` or a bare ``expression``: exactly the
shapes the node's command parser turns into the model's expression. Only words the recognizer can
pronounce (those in its pronunciation dictionary) go in; the others are reported so a caller can
say which words of the model cannot be heard. Nothing here imports pocketsphinx.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from refseg_node.command_parser import command_phrases

GRAMMAR_NAME = "refseg_command"
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

    def accepts(self, text: str) -> bool:
        """Say whether the grammar can produce ``text`` (words separated by spaces)."""
        states = self._closure({self.start})
        for word in text.split():
            states = self._closure({t[1] for t in self.transitions
                                    if t[0] in states and len(t) == 4 and t[3] == word})
            if not states:
                return False
        return self.final in states

    def _closure(self, states: set[int]) -> set[int]:
        todo, seen = list(states), set(states)
        while todo:
            state = todo.pop()
            for t in self.transitions:
                if t[0] == state and len(t) == 3 and t[1] not in seen:
                    seen.add(t[1])
                    todo.append(t[1])
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
    """States and transitions of a grammar under construction; probabilities made uniform."""

    def __init__(self):
        self.count = 0
        self.arcs: list[tuple[int, int, str | None]] = []

    def state(self) -> int:
        self.count += 1
        return self.count - 1

    def phrases(self, sources: Iterable[int], phrases: Iterable[str], target: int) -> None:
        """Add a path of word transitions from every source to ``target`` for each phrase."""
        for source in sources:
            for phrase in phrases:
                words = phrase.split()
                here = source
                for word in words[:-1]:
                    nxt = self.state()
                    self.arcs.append((here, nxt, word))
                    here = nxt
                self.arcs.append((here, target, words[-1]))

    def transitions(self) -> tuple[tuple, ...]:
        fan_out: dict[int, int] = {}
        for source, _, _ in self.arcs:
            fan_out[source] = fan_out.get(source, 0) + 1
        return tuple((a, b, 1.0 / fan_out[a]) if w is None else (a, b, 1.0 / fan_out[a], w)
                     for a, b, w in self.arcs)


def command_grammar(vocabulary: Iterable[str], pronounceable: Callable[[str], bool],
                    with_fillers: bool = True) -> CommandGrammar:
    """Build the command grammar of ``vocabulary`` (a checkpoint's token list).

    ``pronounceable(word)`` says whether the recognizer's dictionary has ``word``. With
    ``with_fillers`` the politeness before a verb and the fillers after the expression that the
    command parser strips are allowed too; without, only the verbs. The states: start, after
    the politeness, after the verb, in the expression (a loop over the vocabulary words), after
    the closing filler, final. Raises :class:`GrammarError` when no vocabulary word is
    pronounceable.
    """
    words, missing = expression_words(vocabulary, pronounceable)
    if not words:
        raise GrammarError("no word of the vocabulary is in the pronunciation dictionary, so no "
                           "grammar can be built; use the general language model instead")
    phrases = command_phrases()

    def sayable(candidates):
        return tuple(p for p in candidates
                     if all(_WORD.match(w) and pronounceable(w) for w in p.split()))
    verbs = sayable(phrases.verbs)
    leading = sayable(phrases.leading) if with_fillers and verbs else ()
    trailing = sayable(phrases.trailing) if with_fillers else ()
    g = _Builder()
    start, polite, verb, expression, final = (g.state() for _ in range(5))
    if leading:
        g.phrases([start], leading, polite)
    g.phrases([start, polite] if leading else [start], verbs, verb)
    g.phrases([start, verb, expression] if verbs else [start, expression], words, expression)
    g.arcs.append((expression, final, None))
    if trailing:
        g.phrases([expression], trailing, final)
    return CommandGrammar(start, final, g.transitions(), tuple(words), tuple(missing), verbs,
                          leading, trailing)
