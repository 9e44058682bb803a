"""Expression text: tokenization and the word vocabulary.

The tokenizer follows the released code of the paper (``util/text_processing.py`` of
``ronghanghu/text_objseg``): split the stripped expression on runs of non-word characters
(keeping them as tokens), lowercase, drop empty and whitespace-only tokens, drop a trailing
``"."``. An expression is encoded as its first ``max_len`` (20) token ids, left padded with
``<pad>`` so the LSTM reads the words last.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from refseg_model.fileio import atomic_write

PAD = "<pad>"
GO = "<go>"
EOS = "<eos>"
UNK = "<unk>"
SPECIAL_TOKENS = (PAD, GO, EOS, UNK)
MAX_LEN = 20

_SPLIT = re.compile(r"(\W+)")


def tokenize(expression: str) -> list[str]:
    """Split an expression into lowercase tokens exactly as the released code does.

    Punctuation runs are tokens of their own (``"bush/tree"`` -> ``bush``, ``/``, ``tree``); a
    trailing ``"."`` is dropped. An empty or whitespace-only expression gives ``[]``. Each token is
    stripped of surrounding whitespace (``"ones - water"`` gives ``-``), as the tokens of the
    released ``vocabulary_referit.txt`` are; the released ``sentence2vocab_indices`` kept that
    whitespace, which turned such separators into ``<unk>``.
    """
    words = [w.strip().lower() for w in _SPLIT.split(expression.strip()) if w.strip()]
    if words and words[-1] == ".":
        words = words[:-1]
    return words


class VocabularyError(ValueError):
    """A vocabulary file or token list that cannot be used."""


class Vocabulary:
    """Map between tokens and integer ids; ids 0..3 are ``<pad> <go> <eos> <unk>``."""

    def __init__(self, tokens: Iterable[str]):
        """Build from an ordered token list whose first four entries are the special tokens."""
        self._tokens = list(tokens)
        if tuple(self._tokens[:4]) != SPECIAL_TOKENS:
            raise VocabularyError(
                f"a vocabulary must start with {' '.join(SPECIAL_TOKENS)}, "
                f"got {self._tokens[:4]!r}"
            )
        self._ids: dict[str, int] = {}
        for i, token in enumerate(self._tokens):
            if token in self._ids:
                raise VocabularyError(f"duplicate token {token!r} at lines {self._ids[token] + 1} "
                                      f"and {i + 1}")
            self._ids[token] = i

    # construction -----------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary file with one token a line (e.g. ``vocabulary_referit.txt``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VocabularyError(f"cannot read vocabulary file {path}: {exc}") from exc
        tokens = [line.strip() for line in text.splitlines()]
        while tokens and not tokens[-1]:
            tokens.pop()
        try:
            return cls(tokens)
        except VocabularyError as exc:
            raise VocabularyError(f"{path}: {exc}") from None

    @classmethod
    def build(cls, expressions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Build a vocabulary from training expressions, deterministically.

        Special tokens come first, then every token seen at least ``min_count`` times, by
        decreasing frequency, ties broken alphabetically.
        """
        counts = Counter(tok for expr in expressions for tok in tokenize(expr))
        words = [w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS]
        words.sort(key=lambda w: (-counts[w], w))
        return cls([*SPECIAL_TOKENS, *words])

    @classmethod
    def from_list(cls, tokens: Iterable[str]) -> Vocabulary:
        """Rebuild a vocabulary saved with :meth:`to_list` (e.g. from a checkpoint)."""
        return cls(tokens)

    def to_list(self) -> list[str]:
        """Return the ordered token list (JSON-able)."""
        return list(self._tokens)

    def save(self, path: str | os.PathLike) -> None:
        """Write one token a line, atomically."""
        atomic_write(path, "".join(t + "\n" for t in self._tokens))

    # lookup ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Return the number of tokens, special tokens included."""
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        """Tell whether ``token`` has its own id."""
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        """Two vocabularies are equal when their token lists are."""
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        """Show the size."""
        return f"Vocabulary({len(self)} tokens)"

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (0)."""
        return self._ids[PAD]

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>`` (3)."""
        return self._ids[UNK]

    def token_id(self, token: str) -> int:
        """Return the id of ``token``, ``<unk>``'s id when it is unknown."""
        return self._ids.get(token, self.unk_id)

    def token(self, token_id: int) -> str:
        """Return the token with id ``token_id``."""
        return self._tokens[token_id]

    def encode(self, expression: str, max_len: int = MAX_LEN) -> list[int]:
        """Encode an expression as ``max_len`` ids: first ``max_len`` tokens, left padded.

        Unknown tokens map to ``<unk>``; padding (``<pad>``, id 0) goes before the words, as in
        the released code, so the LSTM's final state follows the last word.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        ids = [self.token_id(t) for t in tokenize(expression)][:max_len]
        return [self.pad_id] * (max_len - len(ids)) + ids

    def unknown_words(self, expression: str) -> list[str]:
        """Return the tokens of ``expression`` that are not in the vocabulary, in order."""
        return [t for t in tokenize(expression) if t not in self._ids]
