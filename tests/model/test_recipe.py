"""Tests of the released code's training recipe: presets, the det stage, weight transfer, freezing.

The end-to-end runs train on the ReferIt-layout fixture (tests/fixtures/referit, split ``test``,
with its box files) with a tiny network that has the paper's recipe settings.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from refseg_model.checkpoint import load_checkpoint, model_from_checkpoint
from refseg_model.cli.train import main as train_cli
from refseg_model.config import ConfigError, TrainConfig, load_config
from refseg_model.data import DataSpec, open_source
from refseg_model.ddp import ResumableBatchSampler
from refseg_model.detection import (
    BoxDataset,
    RegionScorer,
    box_features,
    box_iou,
    build_box_samples,
    mask_box,
)
from refseg_model.loss import weighted_logistic_loss
from refseg_model.network import bilinear_kernel, build_model, parameter_groups
from refseg_model.text import Vocabulary
from refseg_model.train import begin_stage, build_dataset, seed_everything

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "referit"

RECIPE = {  # the paper's recipe on the tiny network
    "model": {"backbone": "tiny", "input_size": 64, "stride": 8, "feat_dim": 16, "text_dim": 16,
              "embed_dim": 16, "cls_dim": 16, "spatial": "xy8", "width": 8,
              "freeze_backbone": True, "lstm_forget_bias": 1.0, "learned_pad": True,
              "binarize": "threshold_then_resize"},
    "train": {"lr": 0.05, "batch_size": 4, "det_iters": 6, "lowres_iters": 6,
              "highres_iters": 4, "lr_decay_step": 1000, "checkpoint_every": 0,
              "embedding_weight_decay": False, "det_crop_size": 32,
              "stages": {"det": {"batch_size": 8, "w_fg": 1.0, "w_bg": 1.0, "freeze_head": True},
                         "lowres": {"w_fg": 1.0, "w_bg": 1.0},
                         "highres": {"w_fg": 1.0, "w_bg": 1.0 / 3}}},
}


def _recipe(tmp_path, **train):
    data = json.loads(json.dumps(RECIPE))
    data["train"].update(train)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _train(config, out, *extra):
    return train_cli(["--dataset", "referit", "--data-root", str(FIXTURE), "--split", "test",
                      "--out", str(out), "--config", str(config), "--device", "cpu",
                      "--threads", "1", *extra])


def _state(path):
    return load_checkpoint(path)["state_dict"]


def _same(a, b, prefix):
    keys = [k for k in a if k.startswith(prefix)]
    assert keys, prefix
    return all(torch.equal(a[k], b[k]) for k in keys)


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- configuration ---------------------------------------------------------------------------
def test_paper_preset_resolves_to_the_released_recipe():
    run = load_config("paper")
    model, train = run.model, run.train
    assert model.freeze_backbone and model.pretrained
    assert (model.lstm_forget_bias, model.learned_pad) == (1.0, True)
    assert model.binarize == "threshold_then_resize"
    assert not train.embedding_weight_decay
    expected = {  # stage: (batch, iterations, lr, decay step, w_fg, w_bg, head fixed)
        "det": (50, 25000, 0.01, 10000, 1.0, 1.0, True),
        "lowres": (10, 30000, 0.01, 10000, 1.0, 1.0, False),
        "highres": (10, 18000, 0.01, 6000, 1.0, 1.0 / 3, False),
    }
    for stage, values in expected.items():
        s = train.for_stage(stage)
        got = (s.batch_size, s.stage_iters(stage), s.lr, s.lr_decay_step, s.w_fg, s.w_bg,
               s.freeze_head)
        assert got == pytest.approx(values), stage
        assert (s.momentum, s.weight_decay, s.lr_decay_rate) == (0.9, 0.0005, 0.1)
        assert s.stages == {}
    det = train.for_stage("det")
    assert (det.det_crop_size, det.det_pos_iou, det.det_neg_iou, det.det_neg_ratio) == (
        224, 0.7, 1e-6, 1.0)


def test_tabletop_presets_have_no_stage_overrides_and_the_old_defaults():
    for name in ("tabletop", "tabletop_mobilenet", "tabletop_concat"):
        run = load_config(name)
        assert run.train.stages == {}
        assert run.train.for_stage("lowres") == run.train
        assert run.train.embedding_weight_decay and not run.train.freeze_head
        assert (run.model.lstm_forget_bias, run.model.learned_pad) == (0.0, False)
        assert run.model.binarize == "resize_then_threshold"


def test_stage_overrides_are_checked():
    with pytest.raises(ConfigError, match="unknown stage 'mid'"):
        TrainConfig(stages={"mid": {"lr": 0.1}})
    with pytest.raises(ConfigError, match=r"unknown key.*learning_rate.*train.stages.det"):
        TrainConfig(stages={"det": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match="lr must be positive"):
        TrainConfig(stages={"highres": {"lr": -1.0}})


def test_paper_network_trains_what_the_released_code_trains():
    cfg = load_config("paper").model
    cfg.pretrained, cfg.vocab_size = False, 8803
    train = load_config("paper").train
    with torch.device("meta"):  # VGG-16's shapes and names without its 500 MB of weights
        model = build_model(cfg)
    trained = {}
    for stage in ("det", "lowres", "highres"):
        begin_stage(model, stage, train.for_stage(stage), fresh_model=False, weights_from=None)
        trained[stage] = {n.split(".")[0] + "." + n.split(".")[1]
                          for n, p in model.named_parameters() if p.requires_grad}
    assert trained["det"] == {"expression_encoder.embedding", "expression_encoder.lstm",
                              "classifier.mlp1", "classifier.mlp2", "upsample.deconv"}
    assert trained["lowres"] == trained["highres"] == trained["det"] | {"backbone.head"}
    assert not any(p.requires_grad for p in model.backbone.body.parameters())  # conv1-conv5
    groups = parameter_groups(model, 0.0005, embedding_decay=False)
    decayed = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
    named = dict(model.named_parameters())
    assert id(named["expression_encoder.embedding.weight"]) not in decayed
    for name in ("expression_encoder.lstm.weight_ih_l0", "classifier.mlp1.weight",
                 "backbone.head.0.weight", "upsample.deconv.weight"):
        assert id(named[name]) in decayed, name
    assert not any(id(p) in decayed for n, p in named.items() if n.endswith("bias")
                   or ".bias_" in n)


def test_lstm_forget_bias_and_learned_pad():
    cfg = load_config("tiny").model
    cfg.vocab_size = 10
    plain = build_model(cfg).expression_encoder
    assert plain.embedding.padding_idx == 0
    cfg.lstm_forget_bias, cfg.learned_pad = 1.0, True
    encoder = build_model(cfg).expression_encoder
    assert encoder.embedding.padding_idx is None
    h = encoder.lstm.hidden_size
    total = encoder.lstm.bias_ih_l0 + encoder.lstm.bias_hh_l0
    assert torch.equal(total[h:2 * h], torch.ones(h))  # one forget bias, not two
    out = encoder(torch.tensor([[0, 0, 5], [0, 7, 5]]))
    out.sum().backward()
    assert encoder.embedding.weight.grad[0].abs().sum() > 0  # <pad> is trained


# -- boxes and the det stage -----------------------------------------------------------------
def test_box_iou_and_features_follow_the_released_formulas():
    boxes = np.array([[0, 0, 9, 9], [5, 5, 14, 14], [20, 20, 29, 29]])
    np.testing.assert_allclose(box_iou(boxes, [0, 0, 9, 9]), [1.0, 25 / 175, 0.0])
    feats = box_features(np.array([[0, 10, 49, 29]]), width=100, height=40)
    # x1 = 0*2/100-1, y1 = 10*2/40-1, x2 = 49*2/100-1, y2 = 29*2/40-1, centre, x2-x1, y2-y1
    np.testing.assert_allclose(feats[0], [-1, -0.5, -0.02, 0.45, -0.51, -0.025, 0.98, 0.95],
                               atol=1e-6)
    assert box_features(np.array([[0, 10, 49, 29]]), 100, 40, "xy2").shape == (1, 2)
    assert mask_box(np.zeros((4, 4), bool)) is None
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == (3, 2, 8, 4)


def test_centre_cell_of_the_padded_fc6_is_the_fully_connected_layer():
    fc6 = torch.nn.Conv2d(8, 4, kernel_size=7, padding=3)
    pool5 = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(fc6(pool5)[:, :, 3, 3],
                               F.conv2d(pool5, fc6.weight, fc6.bias)[:, :, 0, 0])


def _box_rules_hold(source, index, boxes, labels, tcfg):
    gt = json.loads((FIXTURE / "referit_bbox.json").read_text())
    for k in range(len(labels)):
        sample = source.samples[int(index[k])]
        iou = box_iou(boxes[k:k + 1], gt[f"{sample.image_id}_{sample.region_id}"])[0]
        if labels[k]:
            assert iou >= tcfg.det_pos_iou
        else:
            assert iou < tcfg.det_neg_iou


def test_det_samples_from_proposal_files_follow_the_iou_rules():
    source = open_source("referit", FIXTURE, "test")
    tcfg = TrainConfig()
    index, boxes, labels, note = build_box_samples(source, tcfg, seed=0)
    assert "referit_edgeboxes_top100" in note and "referit_bbox.json" in note
    _box_rules_hold(source, index, boxes, labels, tcfg)
    positives = int(labels.sum())
    assert positives >= len(source)  # the ground-truth box of every expression, at least
    assert len(labels) - positives == positives  # 1:1 (the fixture has enough negatives)
    gt = json.loads((FIXTURE / "referit_bbox.json").read_text())
    first = source.samples[0]
    rows = boxes[(index == 0) & (labels == 1)].tolist()
    assert gt[f"{first.image_id}_{first.region_id}"] in rows


def test_det_samples_without_proposals_are_sampled_by_the_same_rules():
    source = open_source("referit", FIXTURE, "test")
    tcfg = TrainConfig(det_proposals="no_such_folder", det_random_boxes=20, det_jitter_boxes=20)
    index, boxes, labels, note = build_box_samples(source, tcfg, seed=1)
    assert "sampled candidates" in note
    _box_rules_hold(source, index, boxes, labels, tcfg)
    positives = int(labels.sum())
    assert positives > len(source)  # jittered boxes with IoU >= 0.7 besides the ground truth
    assert len(labels) - positives == positives


def test_box_dataset_items_and_region_scorer():
    cfg = load_config("tiny").model
    source = open_source("referit", FIXTURE, "test")
    vocab = Vocabulary.build(source.expressions())
    cfg.vocab_size = len(vocab)
    tcfg = load_config("tiny").train
    dataset = BoxDataset(source, vocab, cfg, tcfg)
    item = dataset[0]
    assert item["image"].shape == (3, 32, 32) and item["spatial"].shape == (8,)
    assert item["mask"].shape == (1, 1) and item["mask"].item() in (0.0, 1.0)
    sample = source.samples[int(dataset.sample_index[0])]
    image = source.load_image(sample)
    np.testing.assert_allclose(item["spatial"].numpy(), box_features(
        dataset.boxes[0], image.shape[1], image.shape[0])[0], rtol=1e-6)
    model = build_model(cfg).eval()
    batch = torch.utils.data.default_collate([dataset[k] for k in range(3)])
    logits = RegionScorer(model)(batch["image"], batch["tokens"], spatial=batch["spatial"])
    assert logits.shape == (3, 1, 1, 1)
    # the same classifier scores the full-image map: a 1x1 "cell" of the crop
    with pytest.raises(ValueError, match="box features"):
        RegionScorer(model)(batch["image"], batch["tokens"], spatial=None)


# -- end to end ------------------------------------------------------------------------------
def test_all_stages_on_the_referit_fixture_freeze_and_transfer(tmp_path):
    config = _recipe(tmp_path)
    out = tmp_path / "run"
    assert _train(config, out, "--stage", "all") == 0
    for name in ("det.pt", "lowres.pt", "last.pt", "config.yaml", "loss_curve.png"):
        assert (out / name).is_file(), name
    stages = [r["stage"] for r in _records(out) if "loss" in r]
    assert stages == ["det"] * 6 + ["lowres"] * 6 + ["highres"] * 4

    # the freshly built model of the run (same seed, same vocabulary)
    run = load_config(config)
    source = open_source("referit", FIXTURE, "test")
    run.model.vocab_size = len(Vocabulary.build(source.expressions()))
    seed_everything(run.train.seed)
    initial = {k: v.detach().clone() for k, v in build_model(run.model).state_dict().items()}
    det, low, high = _state(out / "det.pt"), _state(out / "lowres.pt"), _state(out / "last.pt")
    # conv layers never move; the head (fc6-fc8) is fixed in det and trained afterwards
    assert _same(initial, det, "backbone.body.") and _same(det, high, "backbone.body.")
    assert _same(initial, det, "backbone.head.")
    assert not _same(det, low, "backbone.head.")
    # det trains the text encoder and classifier (from the released initialisation)
    for prefix in ("expression_encoder.embedding.", "expression_encoder.lstm.", "classifier."):
        assert not _same(initial, det, prefix), prefix
    # the deconvolution is only trained in highres, from bilinear upsampling
    kernel = bilinear_kernel(8).view(1, 1, 16, 16)
    assert torch.equal(low["upsample.deconv.weight"], kernel)
    assert not torch.equal(high["upsample.deconv.weight"], kernel)


def _first_batch_loss(model, dataset, tcfg, stage):
    sampler = ResumableBatchSampler(len(dataset), tcfg.batch_size, tcfg.seed, 0, 1, 0)
    batch = torch.utils.data.default_collate([dataset[i] for i in next(iter(sampler))])
    model.eval()
    with torch.no_grad():
        if stage == "det":
            logits = RegionScorer(model)(batch["image"], batch["tokens"],
                                         spatial=batch["spatial"])
        else:
            logits = model(batch["image"], batch["tokens"], stage=stage)
    return logits, batch["mask"]


@pytest.mark.parametrize("stage, weights", [("lowres", (1.0, 1.0)), ("highres", (1.0, 1 / 3))])
def test_stage_starts_from_the_previous_weights_with_its_loss_weights(tmp_path, stage, weights):
    """A stage with a learning rate of 1e-30 keeps its starting weights: compare them."""
    base = tmp_path / "base"
    previous = "det" if stage == "lowres" else "lowres"
    assert _train(_recipe(tmp_path), base, "--stage", previous) == 0
    start = base / f"{previous}.pt"
    frozen = _recipe(tmp_path, stages={**RECIPE["train"]["stages"],
                                       stage: {**RECIPE["train"]["stages"][stage], "lr": 1e-30}})
    out = tmp_path / stage
    assert _train(frozen, out, "--stage", stage, "--init", str(start),
                  f"--{stage}-iters", "1") == 0
    begin, end = _state(start), _state(out / "last.pt")
    for key in begin:
        if key != "upsample.deconv.weight":
            torch.testing.assert_close(end[key], begin[key], rtol=0, atol=1e-20)
    # highres starts from bilinear upsampling (init_referit_seg_highres_from_lowres.py)
    torch.testing.assert_close(end["upsample.deconv.weight"],
                               bilinear_kernel(8).view(1, 1, 16, 16), rtol=0, atol=1e-20)

    # the loss of the first step used the stage's weights
    payload = load_checkpoint(out / "last.pt")
    model = model_from_checkpoint(payload)
    run = load_config(frozen)
    tcfg = run.train.for_stage(stage)
    assert (tcfg.w_fg, tcfg.w_bg) == pytest.approx(weights)
    vocab = Vocabulary.from_list(payload["vocabulary"])
    dataset = build_dataset(model.config, tcfg, stage, vocab, open_source(
        "referit", FIXTURE, "test"))
    logits, labels = _first_batch_loss(model, dataset, tcfg, stage)
    recorded = [r["loss"] for r in _records(out) if "loss" in r][0]
    assert recorded == pytest.approx(
        weighted_logistic_loss(logits, labels, *weights).item(), rel=1e-4)
    if weights != (3.0, 1.0):
        assert recorded != pytest.approx(
            weighted_logistic_loss(logits, labels, 3.0, 1.0).item(), rel=1e-3)


def test_det_stage_resumes_and_continues_into_lowres(tmp_path):
    config = _recipe(tmp_path)
    out = tmp_path / "run"
    assert _train(config, out, "--stage", "all", "--det-iters", "3", "--lowres-iters", "0",
                  "--highres-iters", "0") == 0
    assert load_checkpoint(out / "last.pt")["stage"] == "det"
    assert _train(config, out, "--stage", "all", "--resume", "--lowres-iters", "2") == 0
    assert load_checkpoint(out / "last.pt")["stage"] == "lowres"
    stages = [(r["stage"], r["step"]) for r in _records(out) if "loss" in r]
    assert stages == [("det", 1), ("det", 2), ("det", 3), ("lowres", 1), ("lowres", 2)]


# -- test binarisation -----------------------------------------------------------------------
def test_released_binarisation_thresholds_then_resizes():
    from refseg_model.inference import released_mask
    from refseg_model.preprocess import Letterbox

    meta = Letterbox.compute(96, 128, 64)  # content 48x64 on the 64x64 input, 2x up to 96x128
    prob = np.zeros((64, 64), np.float32)
    prob[meta.pad_top + 10, 20] = 1.0
    released = released_mask(prob, meta)
    ys, xs = np.nonzero(released)
    # 0/1 map resized bilinearly (half-pixel centres), every value > 0 kept: a 4x4 block
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (19, 22, 39, 42)
    from refseg_model.preprocess import unletterbox

    resized_first = unletterbox(prob, meta) >= 0.5  # probabilities resized, then >= 0.5
    assert resized_first.sum() == 4 and released.sum() == 16


def test_segmenter_uses_the_checkpoint_binarisation(tmp_path):
    from refseg_model.inference import Segmenter, released_mask
    from refseg_model.preprocess import letterbox

    cfg = load_config("tiny").model
    cfg.vocab_size = 8
    cfg.binarize = "threshold_then_resize"
    model = build_model(cfg)
    vocab = Vocabulary.from_list(["<pad>", "<go>", "<eos>", "<unk>", "a", "b", "c", "d"])
    segmenter = Segmenter(model, vocab, cfg, stage="lowres", device="cpu", precision="fp32")
    rgb = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    pred = segmenter.predict(rgb, "a b")
    _, meta = letterbox(rgb, cfg.input_size)
    square = segmenter.model.predict_logits(
        torch.from_numpy(segmenter._image(rgb)[0])[None], torch.tensor([vocab.encode("a b")]),
        stage="lowres")
    expected = released_mask(torch.sigmoid(square[0, 0]).detach().numpy(), meta)
    assert np.array_equal(pred.mask, expected)


# -- the refer layout in refseg-train --------------------------------------------------------
def _write_refcoco_plus(root: Path) -> Path:
    import pickle

    image_dir = root / "images" / "mscoco" / "images" / "train2014"
    image_dir.mkdir(parents=True)
    images, annotations, refs = [], [], []
    for i in range(4):
        name = f"COCO_train2014_{i:012d}.jpg"
        image = np.full((40, 48, 3), 120, np.uint8)
        image[8:24, 6 + 4 * i:22 + 4 * i] = (200, 40, 40)
        cv2.imwrite(str(image_dir / name), image)
        images.append({"id": i, "file_name": name, "height": 40, "width": 48})
        x0 = 6 + 4 * i
        annotations.append({"id": 10 + i, "image_id": i,
                            "segmentation": [[x0, 8, x0 + 16, 8, x0 + 16, 24, x0, 24]]})
        refs.append({"ref_id": 100 + i, "ann_id": 10 + i, "image_id": i, "split": "train",
                     "sentences": [{"raw": "red block", "sent": "red block"},
                                   {"raw": "the red one", "sent": "the red one"}]})
    (root / "refcoco+").mkdir()
    (root / "refcoco+" / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations}))
    with open(root / "refcoco+" / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    return root


def test_refseg_train_reads_the_refer_layout(tmp_path, capsys):
    root = _write_refcoco_plus(tmp_path / "refer")
    out = tmp_path / "run"
    rc = train_cli(["--dataset", "refer", "--refer-dataset", "refcoco+", "--data-root",
                    str(root), "--split", "train", "--out", str(out), "--config", "tiny",
                    "--device", "cpu", "--threads", "1", "--max-iters", "2"])
    assert rc == 0
    assert "refer/refcoco+ train (8 samples" in capsys.readouterr().out
    payload = load_checkpoint(out / "last.pt")
    assert payload["stage"] == "highres" and "red" in payload["vocabulary"]
    spec = DataSpec("refer", root, "train", refer_dataset="refcoco+")
    assert len(spec.open()) == 8
