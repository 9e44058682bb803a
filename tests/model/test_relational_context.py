"""The relational context block: a second reasoning step that lets each location see the map."""

from __future__ import annotations

import numpy as np
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


def test_the_landmark_peaks_are_reported_per_row():
    model = _landmark_model(4)
    seen = []
    model.landmark.peaks.register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    tokens = torch.tensor([_encode("the cup"), _encode("the cup next to the blue bowl"),
                           _encode("the jar left of the cup")])
    with torch.no_grad():
        model(torch.randn(3, 3, 64, 64), tokens)
    (peaks,) = seen
    assert peaks.shape == (3,) and peaks[0] == -1.0     # no landmark named
    assert 0.0 < peaks[1] <= 1.0 and 0.0 < peaks[2] <= 1.0
    # the peak is that of the landmark's own map: grounding "the blue bowl" alone agrees
    seen.clear()
    with torch.no_grad():
        alone = torch.sigmoid(model(torch.zeros(1, 3, 64, 64), torch.tensor(
            [_encode("the blue bowl")]), stage="lowres")).amax()
        model(torch.zeros(1, 3, 64, 64), torch.tensor([_encode("the cup next to the blue bowl")]))
    torch.testing.assert_close(seen[0][0], alone)
    seen.clear()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64), torch.tensor([_encode("the cup")]))
    assert seen == []                                   # no row names one: no second pass


def test_segmenter_answers_not_found_when_the_landmark_is_missing():
    from refseg_model.inference import Segmenter
    from refseg_model.text import Vocabulary

    model = _landmark_model(5)
    cfg = _config("landmark")
    cfg.vocab_size = len(WORDS)
    rgb = torch.randint(0, 255, (48, 64, 3), dtype=torch.uint8).numpy()
    kw = dict(compile="off", precision="fp32", threshold=0.05)
    vocab = Vocabulary.from_list(WORDS)
    plain = Segmenter(model, vocab, cfg, **kw)
    relation, simple = plain.predict(rgb, "the cup next to the bowl"), plain.predict(rgb, "cup")
    assert relation.found and relation.reason == "" and 0.0 < relation.landmark_peak <= 1.0
    assert simple.landmark_peak is None
    strict = Segmenter(model, vocab, cfg, found_rule={"min_landmark_peak": 1.01}, **kw)
    answer = strict.predict(rgb, "the cup next to the bowl")
    assert not answer.found and answer.score == 0.0
    assert answer.reason.startswith("'the bowl' is not in the picture (its peak probability")
    # a command without a landmark is not touched by the landmark part of the rule
    np.testing.assert_array_equal(strict.predict(rgb, "cup").mask, simple.mask)
    # batches: each row keeps its own landmark peak
    batch = strict.predict_batch([rgb, rgb], ["cup", "the cup next to the bowl"])
    assert batch[0].found and batch[0].landmark_peak is None and not batch[1].found


def test_a_segmenter_and_its_network_can_still_be_copied_and_pickled():
    import copy
    import pickle

    from refseg_model.inference import Segmenter
    from refseg_model.text import Vocabulary

    cfg = _config("landmark")
    cfg.vocab_size = len(WORDS)
    segmenter = Segmenter(_landmark_model(6), Vocabulary.from_list(WORDS), cfg, compile="off",
                          precision="fp32", threshold=0.05)
    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    expected = segmenter.predict(rgb, "the cup next to the bowl").landmark_peak
    network = copy.deepcopy(segmenter.model)                # the hook travels with it
    assert isinstance(pickle.loads(pickle.dumps(network)), torch.nn.Module)
    twin = copy.deepcopy(segmenter)
    assert twin.predict(rgb, "the cup next to the bowl").landmark_peak == pytest.approx(expected)
    assert twin.predict(rgb, "cup").landmark_peak is None   # nothing left over from the last call
