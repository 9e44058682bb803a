"""From a received command to the expression the model is given, prepared once per query.

Pure: :func:`resolve_query` turns a command into an expression (or says why there is none);
:func:`prepare_query` looks the expression's words up in the model's vocabulary once, when the
query is set, so no frame redoes it: a :class:`PreparedQuery` holds the command, the expression,
its words, those the model does not know and whether it knows none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from refseg_model.text import tokenize
from refseg_node.language.command_parser import parse_command


@dataclass(frozen=True)
class Resolved:
    """The expression of a command (None: nothing to segment) and warnings ``(kind, text)``."""

    expression: str | None
    warnings: tuple[tuple[str, str], ...] = ()


def resolve_query(text: str, max_length: int, previous_expression: str | None) -> Resolved:
    """Return the expression of command ``text``.

    A command longer than ``max_length`` characters is cut (with a warning); a command that
    names no object ("pick it up") keeps ``previous_expression``, or has none (warned) when
    there is no earlier query.
    """
    parsed = parse_command(text, max_length)
    warnings = []
    if parsed.truncated:
        warnings.append(("long_query", f"query of {len(text)} characters cut to {max_length}: "
                                       f"{parsed.expression!r}"))
    if parsed.anaphoric:
        if previous_expression is None:
            warnings.append(("anaphoric", f"query {text!r} names no object and there is no "
                                          "earlier query it could refer to; ignored"))
            return Resolved(None, tuple(warnings))
        return Resolved(previous_expression, tuple(warnings))
    if not parsed.expression:
        warnings.append(("no_object", f"query {text!r} names no object to segment; ignored"))
        return Resolved(None, tuple(warnings))
    return Resolved(parsed.expression, tuple(warnings))


@dataclass(frozen=True)
class PreparedQuery:
    """A query as the model sees it, computed once when the query is set.

    ``words``: the expression's tokens that carry letters or digits (punctuation dropped);
    ``unknown_words``: those not in the model's vocabulary, in order; ``nothing_known``: the model
    knows none of them (then nothing is segmented).
    """

    command: str
    expression: str
    words: tuple[str, ...]
    unknown_words: tuple[str, ...]

    @property
    def nothing_known(self) -> bool:
        """Return True when every word of the expression is unknown to the model."""
        return all(w in self.unknown_words for w in self.words)


def prepare_query(command: str, expression: str,
                  unknown_words: Callable[[str], tuple[str, ...]]) -> PreparedQuery:
    """Return the :class:`PreparedQuery` of ``command`` -> ``expression``.

    ``unknown_words(expression)`` is the model's vocabulary look-up
    (``Segmenter.unknown_words``).
    """
    words = tuple(t for t in tokenize(expression) if any(c.isalnum() for c in t))
    return PreparedQuery(command, expression, words, tuple(unknown_words(expression)))

