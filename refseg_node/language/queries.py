"""From a received command to the expression the model is given, and the limits on logging.

Pure: :func:`resolve_query` turns a command into an expression (or says why there is none),
:func:`nothing_known` tells whether the model knows any word of it, :class:`TokenBucket` limits
how many query lines a flood of queries writes to the log and :class:`Throttle` how often one
kind of warning repeats.
"""

from __future__ import annotations

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


def nothing_known(expression: str, unknown: tuple[str, ...]) -> bool:
    """Return True when every word of ``expression`` is in ``unknown`` (punctuation ignored)."""
    words = [t for t in tokenize(expression) if any(c.isalnum() for c in t)]
    return all(w in unknown for w in words)


class TokenBucket:
    """Allow a burst of ``burst`` events, then ``rate`` a second."""

    def __init__(self, burst: float = 20.0, rate: float = 10.0, now: float = 0.0) -> None:
        """Start full at monotonic time ``now`` (seconds)."""
        self.burst, self.rate = float(burst), float(rate)
        self._tokens, self._time = float(burst), now

    def allow(self, now: float) -> bool:
        """Spend one token if there is one (refilled up to ``now``); return whether it was."""
        self._tokens = min(self.burst, self._tokens + self.rate * max(0.0, now - self._time))
        self._time = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Throttle:
    """At most one event of each kind per period."""

    def __init__(self) -> None:
        """Start with no event seen."""
        self._last: dict[str, float] = {}

    def allow(self, kind: str, now: float, period: float) -> bool:
        """Return True (and remember ``now``) unless ``kind`` was allowed under ``period`` ago."""
        last = self._last.get(kind)
        if last is None or now - last >= period:
            self._last[kind] = now
            return True
        return False
