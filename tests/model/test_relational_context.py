"""The relational context block: a second reasoning step that lets each location see the map."""

from __future__ import annotations

import pytest
import torch

from refseg_model.config import ConfigError, load_config
from refseg_model.network import RelationalContext, build_model


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
