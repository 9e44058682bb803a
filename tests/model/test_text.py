"""Tests of the tokenizer and the vocabulary against the released code's rules and real files."""

import json
from pathlib import Path

import pytest

from refseg_model.text import SPECIAL_TOKENS, Vocabulary, VocabularyError, tokenize

SHARED = Path("/work/shared/referit")
REFERIT_VOCAB = SHARED / "vocabulary_referit.txt"
needs_shared = pytest.mark.skipif(not REFERIT_VOCAB.is_file(), reason="shared ReferIt files absent")


@pytest.mark.parametrize(
    ("expression", "tokens"),
    [
        ("Sky above the bridge", ["sky", "above", "the", "bridge"]),
        ("bush/tree on left corner", ["bush", "/", "tree", "on", "left", "corner"]),
        ("you got the hard ones - water", ["you", "got", "the", "hard", "ones", "-", "water"]),
        ("-bridge", ["-", "bridge"]),
        ("the man on the left.", ["the", "man", "on", "the", "left"]),
        ("  The  CUP.  ", ["the", "cup"]),
        ("left..", ["left", ".."]),  # only a lone trailing "." token is dropped
        ("a, b", ["a", ",", "b"]),  # separator run ", " stripped to ","
        ("", []),
        ("   ", []),
        (".", []),
    ],
)
def test_tokenize_follows_released_code(expression, tokens):
    assert tokenize(expression) == tokens


def test_build_is_deterministic_and_ordered_by_frequency_then_alphabet():
    exprs = ["the red cup", "the blue cup", "The cup on the left", "zebra", "apple"]
    vocab = Vocabulary.build(exprs)
    assert vocab.to_list()[:4] == list(SPECIAL_TOKENS)
    # the: 4, cup: 3, then count-1 words alphabetically
    assert vocab.to_list()[4:] == ["the", "cup", "apple", "blue", "left", "on", "red", "zebra"]
    assert Vocabulary.build(reversed(exprs)) == vocab
    assert Vocabulary.build(exprs, min_count=2).to_list()[4:] == ["the", "cup"]


def test_encode_left_pads_truncates_and_maps_unknown():
    vocab = Vocabulary.build(["the red cup"])
    ids = vocab.encode("The red mug.")
    assert len(ids) == 20
    assert ids[:17] == [0] * 17
    assert ids[17:] == [vocab.token_id("the"), vocab.token_id("red"), vocab.unk_id]
    assert vocab.unk_id == 3 and vocab.pad_id == 0
    long = " ".join(["red"] * 25 + ["cup"])
    assert vocab.encode(long) == [vocab.token_id("red")] * 20  # first 20 tokens kept
    assert vocab.encode("cup", max_len=3) == [0, 0, vocab.token_id("cup")]
    assert vocab.encode("") == [0] * 20
    assert vocab.unknown_words("the green mug on the red cup") == ["green", "mug", "on"]


def test_round_trip_list_and_file(tmp_path):
    vocab = Vocabulary.build(["a b c", "b c", "c"])
    assert Vocabulary.from_list(json.loads(json.dumps(vocab.to_list()))) == vocab
    vocab.save(tmp_path / "v.txt")
    assert Vocabulary.from_file(tmp_path / "v.txt") == vocab
    assert len(vocab) == 7


def test_bad_vocabularies_are_named(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("a\nb\n")
    with pytest.raises(VocabularyError, match="bad.txt"):
        Vocabulary.from_file(bad)
    with pytest.raises(VocabularyError, match="missing.txt"):
        Vocabulary.from_file(tmp_path / "missing.txt")
    with pytest.raises(VocabularyError, match="duplicate"):
        Vocabulary([*SPECIAL_TOKENS, "x", "x"])


@needs_shared
def test_real_referit_vocabulary_and_expressions():
    vocab = Vocabulary.from_file(REFERIT_VOCAB)
    assert len(vocab) == 8803
    assert vocab.to_list()[:4] == list(SPECIAL_TOKENS)
    queries = json.loads((SHARED / "referit_query_test.json").read_text())
    ids = vocab.encode(queries["38100_2"][0])  # "Sky above the bridge"
    assert [vocab.token(i) for i in ids if i] == ["sky", "above", "the", "bridge"]
    assert vocab.unknown_words("sky above the bridge") == []
    assert vocab.unknown_words("qwzxv sky") == ["qwzxv"]
