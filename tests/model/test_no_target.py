"""Expressions with no referent: the generator writes them, evaluation scores "not found"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refseg_model.data import open_source
from refseg_model.evaluate import evaluate
from refseg_model.synth import generate_scene
from refseg_model.synth.expressions import NO_TARGET_KINDS, kind_of_strategy
from refseg_model.synth.objects import NOUNS
from refseg_model.synth.writer import write_dataset

NOUN_TO_CATEGORY = {n: c for c, names in NOUNS.items() for n in names}
COMMAND_WORDS = ("pick up ", "grab ", "take ", "hand me ", "give me ", "point at ", "find ")


def _words(expression: str) -> list[str]:
    for command in COMMAND_WORDS:
        if expression.startswith(command):
            expression = expression[len(command):]
    return [w for w in expression.split() if w != "the"]


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene((2027, i), 160, 120) for i in range(40)]


def test_every_no_target_kind_is_drawn_with_an_empty_mask(scenes):
    seen = set()
    for scene in scenes:
        for region in scene.regions:
            kinds = {kind_of_strategy(s) for s in region.strategies}
            if region.kind == "absent":
                assert not region.mask.any() and region.object_ids == ()
                assert kinds <= set(NO_TARGET_KINDS)
                seen |= kinds
            else:
                assert not kinds & set(NO_TARGET_KINDS)
    assert seen == set(NO_TARGET_KINDS)


def test_no_target_expressions_name_nothing_in_the_scene(scenes):
    for scene in scenes:
        objects = [o for o in scene.objects if o.area > 0]
        pairs = {(o.colour, o.category) for o in objects}
        for region in (r for r in scene.regions if r.kind == "absent"):
            for text, strategy in zip(region.expressions, region.strategies):
                words = _words(text)
                if strategy == "absent_category":  # "the jar", "the jar on the left"
                    nouns = [w for w in words if w in NOUN_TO_CATEGORY]
                    assert len(nouns) == 1, text
                    assert NOUN_TO_CATEGORY[nouns[0]] not in {o.category for o in objects}, text
                elif strategy == "absent_colour_only":  # "the purple one"
                    assert words[-1] in ("one", "object", "thing"), text
                    assert words[-2] not in {o.colour for o in objects}, text
                elif strategy == "absent_colour":
                    colour, category = words[-2], NOUN_TO_CATEGORY[words[-1]]
                    assert (colour, category) not in pairs, text
                    # the hard case: both words occur in the picture
                    assert colour in {o.colour for o in objects}, text
                    assert category in {o.category for o in objects}, text
                else:
                    head = NOUN_TO_CATEGORY[words[0]]
                    assert head in {o.category for o in objects}, text
                    landmark = words[-1]
                    category = NOUN_TO_CATEGORY[landmark]
                    colour = words[-2] if words[-2] not in ("to", "of", "next", "beside",
                                                            "near", "behind", "front") else None
                    named = [o for o in objects if o.category == category and
                             (colour is None or o.colour == colour)]
                    assert not named, (text, colour, category)


def test_evaluation_scores_not_found_and_reports_the_found_share(tmp_path):
    write_dataset(tmp_path / "ds", 6, seed=3, width=96, height=72, val_frac=0.0, test_frac=0.5,
                  progress=False)
    source = open_source("synthetic", tmp_path / "ds", "test")
    kinds = json.loads((tmp_path / "ds" / "synthetic_kinds_test.json").read_text())
    absent = [s for s in source.samples
              if kinds[f"{s.image_id}_{s.region_id}"][0]["kind"] in NO_TARGET_KINDS]
    assert absent, "the test split should hold no-target expressions"

    def says_nothing(rgb, expression):
        return np.zeros(rgb.shape[:2], bool)

    def says_everything(rgb, expression):
        return np.ones(rgb.shape[:2], bool)

    quiet = evaluate(says_nothing, source, progress=False, by=["kind", "size"])
    loud = evaluate(says_everything, source, progress=False, by=["kind", "size"])
    n_absent = len(absent)
    assert quiet["no_target"] == {"num_samples": n_absent, "found_share": 0.0}
    assert loud["no_target"] == {"num_samples": n_absent, "found_share": 1.0}
    assert quiet["present"]["num_samples"] == len(source) - n_absent
    assert quiet["present"]["prec@0.5"] == 0.0  # nothing found where something is
    assert quiet["prec@0.5"] == pytest.approx(n_absent / len(source))  # right on "absent"
    for kind in NO_TARGET_KINDS:
        if kind in quiet["by_kind"]:
            assert quiet["by_kind"][kind]["found_share"] == 0.0
            assert loud["by_kind"][kind]["found_share"] == 1.0
            assert quiet["by_kind"][kind]["prec@0.5"] == 1.0
    # an empty target is not a small one: it has a size group of its own
    assert quiet["by_size"]["no target"]["num_samples"] == n_absent
    assert sum(m["num_samples"] for band, m in quiet["by_size"].items()
               if band != "no target") == len(source) - n_absent


def test_found_rule_is_chosen_over_present_and_absent_targets():
    from refseg_model.calibrate import SampleRecord, best_found_rule, found_rule_sweep

    grid = [0.5]
    records = (
        # present targets: strong, large answers, right
        [SampleRecord((2000,), (1800,), (2100,), 0.99, 100_000, True)] * 6
        # absent targets: weak or tiny answers ("found" would be wrong)
        + [SampleRecord((30,), (0,), (30,), 0.97, 100_000, False)] * 2
        + [SampleRecord((3000,), (0,), (3000,), 0.75, 100_000, False)] * 2)
    sweep = found_rule_sweep(records, grid, 0.5)
    assert sweep[(0.0, 0.0, 0.0)] == pytest.approx(0.6)  # no rule: every absent one answered found
    rule = best_found_rule(sweep)
    assert sweep[rule] == pytest.approx(1.0)
    assert rule[0] >= 0.0005 and 0.75 < rule[1] <= 0.95  # both kinds of weak answer rejected
    assert rule[2] == 0.0  # no relation in the split: the landmark part stays off (mildest)


def test_found_rule_checks_the_landmark_of_a_relation():
    from refseg_model.calibrate import SampleRecord, best_found_rule, found_rule_sweep

    hit = SampleRecord((2000,), (1800,), (2100,), 0.99, 100_000, True, 0.95)
    records = (
        [hit] * 5                                                          # landmark seen
        + [SampleRecord((2000,), (1800,), (2100,), 0.99, 100_000, True)] * 3  # no landmark
        # "the cup next to the yellow bowl", no yellow bowl: a confident cup, a weak landmark
        + [SampleRecord((2000,), (0,), (2000,), 0.99, 100_000, False, 0.2)] * 3)
    sweep = found_rule_sweep(records, [0.5], 0.5)
    assert sweep[(0.0, 0.0, 0.0)] == pytest.approx(8 / 11)
    rule = best_found_rule(sweep)
    assert sweep[rule] == pytest.approx(1.0)
    assert rule == (0.0, 0.0, 0.3)  # the mildest landmark threshold that rejects 0.2


def test_segmenter_applies_the_found_rule():
    import torch

    from refseg_model.config import load_config
    from refseg_model.inference import Segmenter
    from refseg_model.network import build_model
    from refseg_model.text import Vocabulary

    cfg = load_config("tiny").model
    cfg.vocab_size = 8
    torch.manual_seed(0)
    model = build_model(cfg)
    vocab = Vocabulary.from_list(["<pad>", "<go>", "<eos>", "<unk>", "cup"])
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    plain = Segmenter(model, vocab, cfg, compile="off", precision="fp32", threshold=0.05)
    assert plain.predict(rgb, "cup").found  # an untrained net: probabilities near 0.5
    for rule in ({"min_peak": 1.01}, {"min_area": 1.01}):
        strict = Segmenter(model, vocab, cfg, compile="off", precision="fp32", threshold=0.05,
                           found_rule=rule)
        prediction = strict.predict(rgb, "cup")
        assert not prediction.found and prediction.score == 0.0
    mild = Segmenter(model, vocab, cfg, compile="off", precision="fp32", threshold=0.05,
                     found_rule={"min_peak": 0.0, "min_area": 0.0})
    np.testing.assert_array_equal(mild.predict(rgb, "cup").mask, plain.predict(rgb, "cup").mask)


def test_found_rule_keeps_every_no_target_kind_under_the_cap_when_it_can():
    from refseg_model.calibrate import (
        SampleRecord,
        best_found_rule,
        found_rule_sweep,
        worst_found_shares,
    )

    present = SampleRecord((2000,), (1800,), (2100,), 0.99, 100_000, True, kind="category")
    weak_right = SampleRecord((2000,), (1800,), (2100,), 0.75, 100_000, True, kind="size")
    # right answers to relations whose landmark is seen at 0.65 only
    relation = SampleRecord((2000,), (1800,), (2100,), 0.99, 100_000, True, 0.65,
                            kind="relation")
    records = (
        [present] * 40 + [weak_right] * 3 + [relation] * 3
        # "the cup next to the yellow bowl": a confident cup, and a landmark seen at 0.6
        + [SampleRecord((2000,), (0,), (2000,), 0.99, 100_000, False, 0.6,
                        kind="absent_relation")] * 2
        + [SampleRecord((2000,), (0,), (2000,), 0.99, 100_000, False, 0.01,
                        kind="absent_relation")] * 18
        + [SampleRecord((20,), (0,), (20,), 0.99, 100_000, False, kind="absent_category")] * 20)
    sweep = found_rule_sweep(records, [0.5], 0.5)
    worst = worst_found_shares(records, [0.5], 0.5, sweep)
    assert worst[(0.0, 0.0, 0.0)] == 1.0          # no rule: every absent category found
    unbound, capped = best_found_rule(sweep), best_found_rule(sweep, worst)
    # without the cap 3 right relations outweigh 2 of 20 absent relations answered found
    assert unbound[2] < 0.6 and worst[unbound] == pytest.approx(0.1)
    # with it, the landmark must reach 0.7: no kind over 5%, at the price of one answer
    assert capped[2] >= 0.7 and worst[capped] == 0.0
    assert sweep[capped] < sweep[unbound]
    # a cap no rule can meet: the best rule over all
    assert best_found_rule(sweep, worst, max_found_share=-1.0) == unbound
