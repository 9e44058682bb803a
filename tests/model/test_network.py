"""Tests of the network: shapes, expression encoder, spatial channels, bilinear deconvolution."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from refseg_model.config import ConfigError, ModelConfig, load_config
from refseg_model.network import (
    BilinearDeconv,
    build_model,
    parameter_groups,
    spatial_coordinates,
)


def test_forward_shapes_both_stages(tiny_config):
    model = build_model(tiny_config)
    images, tokens = torch.randn(2, 3, 64, 64), torch.randint(0, 20, (2, 20))
    assert model(images, tokens, stage="lowres").shape == (2, 1, 8, 8)
    assert model(images, tokens, stage="highres").shape == (2, 1, 64, 64)
    assert model.predict_logits(images, tokens, stage="lowres").shape == (2, 1, 64, 64)


def test_backward_reaches_every_part(tiny_config):
    model = build_model(tiny_config)
    out = model(torch.randn(2, 3, 64, 64), torch.randint(1, 20, (2, 20)), stage="highres")
    out.mean().backward()
    for name in ("backbone.head.weight", "expression_encoder.lstm.weight_ih_l0",
                 "classifier.mlp1.weight", "upsample.deconv.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_bilinear_deconv_equals_bilinear_upsampling_in_interior():
    for stride in (2, 8, 16, 32):
        deconv = BilinearDeconv(stride)
        coarse = torch.randn(1, 1, 5, 6)
        ours = deconv(coarse)
        ref = F.interpolate(coarse, scale_factor=stride, mode="bilinear", align_corners=False)
        assert ours.shape == ref.shape == (1, 1, 5 * stride, 6 * stride)
        inner = (..., slice(stride, -stride), slice(stride, -stride))
        torch.testing.assert_close(ours[inner], ref[inner], atol=1e-5, rtol=1e-5)


def test_expression_encoder_is_unit_norm_and_reads_last_word(tiny_config):
    model = build_model(tiny_config).eval()
    enc = model.expression_encoder
    a = torch.tensor([[0] * 17 + [3, 4, 5]])
    b = torch.tensor([[0] * 17 + [3, 4, 6]])
    va, vb = enc(a), enc(b)
    torch.testing.assert_close(va.norm(dim=1), torch.ones(1))
    assert not torch.allclose(va, vb)  # the last step sees the last real word


def test_spatial_coordinates_corners():
    xy2 = spatial_coordinates(4, 5, "xy2")
    assert xy2.shape == (2, 4, 5)
    assert xy2[:, 0, 0].tolist() == [-1.0, -1.0] and xy2[:, -1, -1].tolist() == [1.0, 1.0]
    xy8 = spatial_coordinates(2, 4, "xy8")
    # released code: xmin, ymin, xmax, ymax, xctr, yctr, 1/W, 1/H of the upper-left cell
    assert xy8[:, 0, 0].tolist() == pytest.approx([-1, -1, -0.5, 0, -0.75, -0.5, 0.25, 0.5])


def test_bad_inputs_give_clear_errors(tiny_config):
    model = build_model(tiny_config)
    with pytest.raises(ValueError, match="multiple of the stride"):
        model(torch.randn(1, 3, 60, 64), torch.zeros(1, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown stage"):
        model(torch.randn(1, 3, 64, 64), torch.zeros(1, 20, dtype=torch.long), stage="mid")
    with pytest.raises(ConfigError, match="unknown backbone"):
        ModelConfig(backbone="alexnet")


def test_weight_decay_only_on_weights(tiny_config):
    groups = parameter_groups(build_model(tiny_config), weight_decay=0.01)
    for group in groups:
        dims = {p.dim() for p in group["params"]}
        assert (group["weight_decay"] > 0) == (min(dims) > 1)


@pytest.mark.parametrize("name,stride,size", [("mobilenet_v3_small", 16, 64),
                                              ("mobilenet_v3_small", 8, 64),
                                              ("resnet18", 16, 64), ("convnet", 8, 64),
                                              ("convnet", 16, 64)])
def test_light_backbones_output_stride(name, stride, size):
    cfg = ModelConfig(backbone=name, input_width=size, stride=stride, feat_dim=8, text_dim=8,
                      embed_dim=8, cls_dim=8)
    out = build_model(cfg, 10).eval()(torch.randn(1, 3, size, size),
                                  torch.zeros(1, 20, dtype=torch.long), stage="lowres")
    assert out.shape == (1, 1, size // stride, size // stride)


def test_generic_dilation_matches_torchvision_at_stride_16():
    import torchvision

    from refseg_model.backbones import _dilate_to_stride

    reference = torchvision.models.mobilenet_v3_small(dilated=True).features
    ours = torchvision.models.mobilenet_v3_small().features
    _dilate_to_stride(ours, 16)

    def geometry(features):
        return [(c.stride, c.dilation, c.padding) for c in features.modules()
                if isinstance(c, torch.nn.Conv2d)]
    assert geometry(ours) == geometry(reference)


def test_convnet_is_checked():
    with pytest.raises(ConfigError, match="power-of-two stride >= 4"):
        build_model(ModelConfig(backbone="convnet", input_width=60, stride=12), 10)
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        build_model(ModelConfig(backbone="convnet", input_width=64, stride=8, pretrained=True),
                    10)


def test_presets_describe_the_paper_and_the_default():
    paper = load_config("paper").model
    assert (paper.backbone, paper.input_width, paper.stride) == ("vgg16", 512, 32)
    assert (paper.feat_dim, paper.text_dim, paper.cls_dim) == (1000, 1000, 500)
    table = load_config("tabletop").model
    assert (table.backbone, table.input_width, table.stride) == ("convnet", 320, 8)
    assert load_config("tabletop_mobilenet").model.backbone == "mobilenet_v3_small"


def test_vgg16_fully_convolutional_maps_512_to_16():
    from refseg_model.backbones import build_backbone

    cfg = load_config("paper").model
    cfg.pretrained = False
    backbone = build_backbone(cfg)
    fc6 = backbone.head[0]
    assert fc6.kernel_size == (7, 7) and fc6.padding == (3, 3)
    with torch.inference_mode():  # body only at 512 (fc layers are big): 512 / 32 = 16
        assert backbone.body(torch.zeros(1, 3, 512, 512)).shape == (1, 512, 16, 16)


def test_missing_backbone_weights_file_is_a_clear_error(tmp_path):
    from refseg_model.backbones import BackboneWeightsError, build_backbone

    cfg = ModelConfig(backbone="mobilenet_v3_small", input_width=64, stride=16,
                      backbone_weights=str(tmp_path / "nope.pth"))
    with pytest.raises(BackboneWeightsError, match="nope.pth"):
        build_backbone(cfg)


def test_backbone_weights_file_is_loaded(tmp_path):
    import torchvision

    from refseg_model.backbones import build_backbone

    reference = torchvision.models.mobilenet_v3_small()
    torch.save(reference.state_dict(), tmp_path / "mv3s.pth")
    cfg = ModelConfig(backbone="mobilenet_v3_small", input_width=64, stride=16,
                      backbone_weights=str(tmp_path / "mv3s.pth"))
    backbone = build_backbone(cfg)
    torch.testing.assert_close(backbone.body[0][0].weight, reference.features[0][0].weight)


def test_concat_product_fusion_adds_the_product_channels(tiny_config):
    concat = build_model(tiny_config)
    tiny_config.text_dim = tiny_config.feat_dim
    tiny_config.fusion = "concat_product"
    model = build_model(tiny_config)
    # The classifier reads [visual, spatial, text, visual * text]: one more block of feat_dim.
    extra = model.classifier.mlp1.in_channels - concat.classifier.mlp1.in_channels
    assert extra == tiny_config.feat_dim + (tiny_config.text_dim - concat.config.text_dim)
    images, tokens = torch.randn(2, 3, 64, 64), torch.randint(1, 20, (2, 20))
    out = model(images, tokens, stage="highres")
    assert out.shape == (2, 1, 64, 64)
    # The response map is the classifier applied to [visual, spatial, text, D * visual * text].
    model.eval()
    with torch.no_grad():
        visual = F.normalize(model.backbone(images), dim=1)
        text = model.expression_encoder(tokens)[:, :, None, None].expand_as(visual)
        spatial = spatial_coordinates(8, 8, tiny_config.spatial).expand(2, -1, -1, -1)
        parts = [visual, spatial, text, visual * text * tiny_config.feat_dim]
        expected = model.classifier(torch.cat(parts, dim=1))
        assert torch.allclose(model(images, tokens, stage="lowres"), expected, atol=1e-5)


def test_fusion_is_checked():
    with pytest.raises(ConfigError, match="fusion"):
        ModelConfig(fusion="attention")
    with pytest.raises(ConfigError, match="feat_dim == text_dim"):
        ModelConfig(fusion="concat_product", feat_dim=128, text_dim=256)


def test_lstm_forget_bias_and_learned_pad():
    cfg = load_config("tiny").model
    plain = build_model(cfg, 10).expression_encoder
    assert plain.embedding.padding_idx == 0
    encoder = build_model(dataclasses.replace(cfg, lstm_forget_bias=1.0, learned_pad=True),
                          10).expression_encoder
    assert encoder.embedding.padding_idx is None
    h = encoder.lstm.hidden_size
    total = encoder.lstm.bias_ih_l0 + encoder.lstm.bias_hh_l0
    assert torch.equal(total[h:2 * h], torch.ones(h))  # one forget bias, not two
    out = encoder(torch.tensor([[0, 0, 5], [0, 7, 5]]))
    out.sum().backward()
    assert encoder.embedding.weight.grad[0].abs().sum() > 0  # <pad> is trained


def test_build_model_sets_the_vocabulary_size_on_a_copy_of_the_config():
    cfg = load_config("tiny").model
    model = build_model(cfg, 37)
    assert model.config.vocab_size == 37 and model.expression_encoder.embedding.num_embeddings == 37
    assert cfg.vocab_size == 0  # the caller's configuration is not changed
    with pytest.raises(ConfigError, match="vocab_size must be set"):
        build_model(cfg)


# -- the skip decoder and shared backbone passes ------------------------------------------------
SMALL_SKIP = ModelConfig(backbone="convnet", width=8, input_width=64, input_height=48, stride=8,
                         feat_dim=16, text_dim=16, embed_dim=16, cls_dim=16,
                         fusion="concat_product", decoder="skip", decoder_dim=8)


def test_untrained_skip_decoder_is_the_bilinear_upsampling_of_the_response_map():
    torch.manual_seed(0)
    model = build_model(SMALL_SKIP, 20).eval()
    images = torch.randn(2, 3, 48, 64) * 50
    tokens = torch.randint(0, 20, (2, 6))
    with torch.no_grad():
        fine, coarse = model(images, tokens, return_coarse=True)
        assert fine.shape == (2, 1, 48, 64) and coarse.shape == (2, 1, 6, 8)
        up = F.interpolate(coarse, size=(24, 32), mode="bilinear", align_corners=False)
        expected = F.interpolate(up, size=(48, 64), mode="bilinear", align_corners=False)
        torch.testing.assert_close(fine, expected)
        torch.testing.assert_close(model.response_map(images, tokens), coarse)


def test_image_index_shares_one_backbone_pass_between_expressions():
    torch.manual_seed(1)
    model = build_model(SMALL_SKIP, 20).eval()
    torch.nn.init.normal_(model.decoder.out.weight)  # a non-trivial decoder
    images = torch.randn(2, 3, 48, 64) * 50
    tokens = torch.randint(0, 20, (5, 6))
    index = torch.tensor([0, 0, 1, 1, 1])
    with torch.no_grad():
        shared = model(images, tokens, image_index=index, return_coarse=True)
        repeated = model(images[index], tokens, return_coarse=True)
        lowres = model(images, tokens, stage="lowres", image_index=index)
    for a, b in zip(shared, repeated):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(lowres, repeated[1])
    with pytest.raises(ValueError, match="one entry per expression"):
        model(images, tokens, image_index=torch.tensor([0, 1]))


@pytest.mark.parametrize("fusion,spatial", [("concat", "xy8"), ("concat_product", "xy8"),
                                            ("concat_product", "none"), ("concat", "xy2")])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_folded_classifier_layer_is_the_layer_on_the_fused_map(tiny_config, fusion, spatial,
                                                                   channels_last):
    """The folded mlp1 gives the values and gradients of the 1x1 convolution on the fused map.

    ``_classifier_hidden`` never builds the concatenated [visual, spatial, text, product] map.
    """
    tiny_config.text_dim = tiny_config.feat_dim
    tiny_config.fusion, tiny_config.spatial = fusion, spatial
    torch.manual_seed(3)
    model = build_model(tiny_config)
    torch.nn.init.normal_(model.classifier.mlp1.bias)
    features = torch.randn(3, tiny_config.feat_dim, 5, 7, requires_grad=True)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    tokens = torch.randint(1, 20, (3, 20))
    folded = model._classifier_hidden(features, tokens)
    reference = F.relu(model.classifier.mlp1(model._fused(features, tokens)))
    torch.testing.assert_close(folded, reference, rtol=1e-5, atol=1e-5)
    assert folded.is_contiguous(memory_format=torch.channels_last)
    weights = torch.randn_like(reference)
    grads = [torch.autograd.grad((out * weights).sum(), (features,
                                 model.classifier.mlp1.weight, model.classifier.mlp1.bias))
             for out in (model._classifier_hidden(features, tokens),
                         F.relu(model.classifier.mlp1(model._fused(features, tokens))))]
    for folded_grad, reference_grad in zip(*grads):
        torch.testing.assert_close(folded_grad, reference_grad, rtol=1e-4, atol=1e-5)


def test_the_network_runs_on_the_meta_device(tiny_config):
    """The network runs on ``meta`` tensors: the LSTM's autocast guard must allow it."""
    model = build_model(tiny_config).to("meta").eval()
    images = torch.empty(2, 3, 64, 64, device="meta")
    tokens = torch.zeros(2, 20, dtype=torch.long, device="meta")
    with torch.no_grad():
        out = model(images, tokens, stage="highres")
    assert out.shape == (2, 1, 64, 64) and out.device.type == "meta"
