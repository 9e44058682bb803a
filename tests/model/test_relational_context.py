"""The relational context block: a second reasoning step that lets each location see the map."""

from __future__ import annotations

import pytest
import torch

from refseg_model.config import ConfigError, load_config
from refseg_model.network import LandmarkGrounding, RelationalContext, build_model


def _config(context: str):
    cfg = load_config("tiny").model
    cfg.vocab_size, cfg.context = 12, context
    return cfg


def test_a_warm_start_from_weights_without_the_block_answers_exactly_as_before():
    torch.manual_seed(0)
    plain = build_model(_config("none")).eval()
    with_block = build_model(_config("relational")).eval()
    missing, unexpected = with_block.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("context.") for k in missing)
    images, tokens = torch.randn(2, 3, 64, 64), torch.randint(4, 12, (2, 20))
    with torch.no_grad():
        for stage in ("lowres", "highres"):
            torch.testing.assert_close(with_block(images, tokens, stage=stage),
                                       plain(images, tokens, stage=stage), rtol=0, atol=0)


def test_the_block_carries_information_across_the_whole_map():
    torch.manual_seed(1)
    block = RelationalContext(8, dim=4)
    torch.nn.init.normal_(block.out.weight)  # trained: no longer zero
    hidden = torch.rand(1, 8, 30, 40)
    moved = hidden.clone()
    moved[:, :, 0, 0] += 5.0  # change the top-left corner only
    out, out_moved = block(hidden), block(moved)
    assert out.shape == hidden.shape
    # the far corner answers differently: the context reached it (dilated stack + pooling)
    assert not torch.allclose(out[:, :, -1, -1], out_moved[:, :, -1, -1])
    out.sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_unknown_context_is_refused():
    cfg = load_config("tiny").model
    cfg.context = "telepathy"
    with pytest.raises(ConfigError, match="unknown context 'telepathy'"):
        cfg.__post_init__()


# The landmark grounding (context: landmark): the landmark of a relation grounded on its own.

WORDS = ["<pad>", "<go>", "<eos>", "<unk>", "the", "cup", "next", "to", "bowl", "blue", "left",
         "of", "behind", "on", "jar"]


def _encode(text: str, length: int = 10) -> list[int]:
    ids = [WORDS.index(w) for w in text.split()]
    return [0] * (length - len(ids)) + ids


def _landmark_model(seed: int = 0):
    torch.manual_seed(seed)
    cfg = _config("landmark")
    cfg.vocab_size = len(WORDS)
    return build_model(cfg, vocabulary=WORDS).eval()


def test_the_landmark_is_the_words_after_the_last_relation_word():
    model = _landmark_model()
    tokens = torch.tensor([_encode("the cup next to the blue bowl"),
                           _encode("the cup left of the bowl"),
                           _encode("the jar on the left"),      # a position: no landmark
                           _encode("the cup next to"),          # nothing named after it
                           _encode("the cup behind the jar")])
    landmark, has = model.landmark.split(tokens)
    assert has.tolist() == [True, True, False, False, True]
    assert landmark[0].tolist() == _encode("the blue bowl")
    assert landmark[1].tolist() == _encode("the bowl")
    assert landmark[4].tolist() == _encode("the jar")


def test_a_warm_start_from_the_relational_context_answers_exactly_as_before():
    torch.manual_seed(0)
    cfg = _config("relational")
    cfg.vocab_size = len(WORDS)
    plain = build_model(cfg).eval()
    grounded = _landmark_model()
    missing, unexpected = grounded.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("landmark.") for k in missing)
    images = torch.randn(2, 3, 64, 64)
    tokens = torch.tensor([_encode("the cup next to the bowl"), _encode("the blue cup")])
    with torch.no_grad():
        for stage in ("lowres", "highres"):
            torch.testing.assert_close(grounded(images, tokens, stage=stage),
                                       plain(images, tokens, stage=stage), rtol=0, atol=0)


def test_a_trained_block_changes_only_the_commands_that_name_a_landmark():
    model = _landmark_model(2)
    torch.nn.init.normal_(model.context.out.weight)   # a trained context block
    images = torch.randn(1, 3, 64, 64).expand(3, -1, -1, -1)
    tokens = torch.tensor([_encode("the cup next to the bowl"), _encode("the blue cup"),
                           _encode("the cup next to the jar")])
    with torch.no_grad():
        before = model(images, tokens)
        torch.nn.init.normal_(model.landmark.inject.weight)
        after = model(images, tokens)
    assert not torch.allclose(after[0], before[0])
    torch.testing.assert_close(after[1], before[1], rtol=0, atol=0)
    assert not torch.allclose(after[0], after[2])     # which landmark is named matters


def test_the_landmark_channels_say_where_it_is():
    prob = torch.zeros(1, 1, 5, 9)
    prob[0, 0, 2, 6] = 1.0                             # the landmark, row 2, column 6
    ch = LandmarkGrounding.channels(prob)[0]
    assert ch.shape[0] == LandmarkGrounding.CHANNELS
    here, near, left, right, above, below, peak, flag = ch
    assert near[2, 3] == 1 and near[2, 2] == 0          # within 3 cells
    assert left[2, 8] == 1 and left[2, 5] == 0          # landmark at or to the left of column 8
    assert right[2, 0] == 1 and right[2, 7] == 0        # landmark to the right of column 0
    assert above[4, 6] == 1 and above[1, 6] == 0
    assert below[0, 6] == 1 and below[3, 6] == 0
    assert peak.min() == 1 and flag.min() == 1


def test_the_landmark_grounding_trains_end_to_end():
    model = _landmark_model(3).train()
    torch.nn.init.normal_(model.context.out.weight)
    images = torch.randn(2, 3, 64, 64)
    tokens = torch.tensor([_encode("the cup next to the bowl"), _encode("the cup")])
    model(images, tokens).sum().backward()
    assert model.landmark.inject.weight.grad.abs().sum() > 0


def test_the_landmark_grounding_needs_the_vocabulary():
    cfg = _config("landmark")
    with pytest.raises(ConfigError, match="needs the vocabulary"):
        build_model(cfg)
    cfg.vocab_size = 3
    with pytest.raises(ConfigError, match="none of the relation words"):
        build_model(cfg, vocabulary=["<pad>", "cup", "bowl"])
