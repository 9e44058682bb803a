"""Limits on logging: how many query lines a flood of queries writes, how often a warning repeats.

Pure (the caller passes monotonic ``now``): :class:`TokenBucket` lets a burst through, then a
steady rate; :class:`Throttle` lets one event of each kind through per period.
"""

from __future__ import annotations


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
