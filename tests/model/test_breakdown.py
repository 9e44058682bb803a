"""Expression kinds in the synthetic dataset and ``refseg-eval --by kind / size`` on real files."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from refseg_model.breakdown import (
    GROUPINGS,
    NO_TARGET,
    SIZE_EDGES,
    GroupedMetrics,
    markdown_group_table,
    size_band,
    size_bands,
)
from refseg_model.cli import evaluate as cli
from refseg_model.data.base import DataError
from refseg_model.data.synthetic import SyntheticSource
from refseg_model.evaluate import evaluate
from refseg_model.synth import generate_scene, make_demo_scene
from refseg_model.synth.expressions import EXPRESSION_KINDS, NO_TARGET_KINDS, kind_of_strategy
from refseg_model.synth.scene import GENERATOR_VERSION
from refseg_model.synth.writer import SPLITS, write_dataset

REPO = Path(__file__).resolve().parents[2]
SEED, N, W, H = 4, 6, 160, 120
EDGES = (400, 1500)  # pixels, for 160x120 pictures
# sha256 of the text files (JSON, image lists) that existed before the kinds file, for
# write_dataset(SEED, N, W, H), computed with the generator before kinds were recorded: recording
# them must not change what the generator draws. PNG bytes are left out (they depend on the zlib
# of OpenCV's build). A new generator version records its own digest here.
OLD_FILES_DIGEST = {"1": "addc646bdabfc4e229d5cf38b16243bad114a8296951e6a035c62c0fa06e121a",
                    "2": "5b4d6fdad1f1c46ce6ac6fd71d0176c382234544f68c1fc8a837ab63223ea929",
                    "3": "0b08febf8b0676392119e6496b5c9eb92836081d7d4f0c9df15f893c1e324aba"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_kinds")
    write_dataset(root, N, seed=SEED, width=W, height=H, val_frac=0.0, test_frac=0.5,
                  progress=False)
    return root


def _old_files_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.suffix in (".json", ".txt") and not rel.startswith("synthetic_kinds_"):
            h.update(rel.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def test_every_strategy_has_a_kind_and_scenes_record_one_per_expression():
    seen = Counter()
    for s in range(12):
        for region in generate_scene((9, s), W, H).regions:
            assert len(region.strategies) == len(region.expressions)
            for text, strategy in zip(region.expressions, region.strategies):
                kind = kind_of_strategy(strategy)
                seen[kind] += 1
                assert (region.kind == "group") == (kind == "plural"), (text, strategy)
                assert (region.kind == "stuff") == (kind == "stuff"), (text, strategy)
                if kind == "stuff":
                    assert strategy == region.region_id
                if strategy == "colour_only":
                    assert re.search(r"the \w+ (one|object|thing)$", text), text
                if strategy == "relation":
                    assert re.search(r"next to|beside|near|left of|right of|in front of|behind",
                                     text), text
                if strategy == "category":
                    assert not re.search(r"left|right|middle|front|back|next", text), text
    assert set(seen) == set(EXPRESSION_KINDS), seen
    with pytest.raises(ValueError, match="unknown expression strategy"):
        kind_of_strategy("telepathy")


def test_demo_expression_is_an_absolute_position():
    scene, _, region = make_demo_scene(seed=1, width=W, height=H)
    k = region.expressions.index("the red cup on the left")
    assert kind_of_strategy(region.strategies[k]) == "position"
    for r in scene.regions:
        assert len(r.strategies) == len(r.expressions)


def test_kinds_file_runs_parallel_to_the_queries(dataset):
    for split in SPLITS:
        queries = json.loads((dataset / f"synthetic_query_{split}.json").read_text())
        kinds = json.loads((dataset / f"synthetic_kinds_{split}.json").read_text())
        assert kinds.keys() == queries.keys()
        for key, entries in kinds.items():
            assert len(entries) == len(queries[key])
            for e in entries:
                assert e["kind"] == kind_of_strategy(e["strategy"])
    source = SyntheticSource(dataset, "train")
    assert source.has_expression_kinds()
    image_id, region_id = source.samples[0].image_id, source.samples[0].region_id
    scene = generate_scene((SEED, int(image_id)), W, H)
    region = scene.region(region_id)
    for sample in source.samples:
        if (sample.image_id, sample.region_id) == (image_id, region_id):
            k = int(sample.sample_id.rsplit("_", 1)[1])
            kind = source.expression_kind(sample)
            assert kind.strategy == region.strategies[k]
            assert kind.kind == kind_of_strategy(region.strategies[k])


def test_old_files_are_unchanged(dataset):
    assert _old_files_digest(dataset) == OLD_FILES_DIGEST[GENERATOR_VERSION], (
        "the files a dataset had before synthetic_kinds_<split>.json changed: bump "
        "GENERATOR_VERSION and record the new digest")


def test_dataset_without_kinds_still_reads_and_says_so(dataset, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    for path in old.glob("synthetic_kinds_*.json"):
        path.unlink()
    source = SyntheticSource(old, "test", on_error="raise")
    assert len(source) == len(SyntheticSource(dataset, "test"))
    assert not source.has_expression_kinds()
    assert source.expression_kind(source.samples[0]) is None
    with pytest.raises(DataError, match="no expression kinds"):
        GroupedMetrics(source, ["kind"])
    code = cli.main(["--baseline", "whole-image", "--dataset", "synthetic", "--data-root",
                     str(old), "--by", "kind", "--no-progress"])
    assert code == 2 and "synthetic_kinds_<split>.json" in capsys.readouterr().err
    metrics = evaluate(lambda rgb, e: np.ones(rgb.shape[:2], bool), source, progress=False,
                       by=["size"], size_edges=EDGES)
    assert sum(m["num_samples"] for m in metrics["by_size"].values()) == len(source)


def test_kinds_only_adds_the_kinds_to_an_old_dataset_and_nothing_else(dataset, tmp_path, capsys):
    from refseg_model.cli import synth

    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    for path in old.glob("synthetic_kinds_*.json"):
        path.unlink()
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in old.rglob("*") if p.is_file()}
    assert synth.main(["--out", str(old), "--kinds-only", "--quiet", "--workers", "2"]) == 0
    assert "wrote the expression kinds" in capsys.readouterr().out
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in old.rglob("*") if p.is_file()}
    added = sorted(p.name for p in set(after) - set(before))
    assert added == [f"synthetic_kinds_{s}.json" for s in sorted(SPLITS)]
    assert all(after[p] == before[p] for p in before)
    for name in added:
        assert (old / name).read_bytes() == (dataset / name).read_bytes()
    queries = json.loads((old / "synthetic_query_test.json").read_text())
    key = next(iter(queries))
    queries[key] = ["the edited expression"] + queries[key][1:]
    (old / "synthetic_query_test.json").write_text(json.dumps(queries))
    assert synth.main(["--out", str(old), "--kinds-only", "--quiet"]) == 2
    assert "synthetic_query_test.json differs" in capsys.readouterr().err
    assert synth.main(["--out", str(tmp_path / "nowhere"), "--kinds-only", "--quiet"]) == 2
    assert "meta.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path / "x")])  # --num-images is needed to write scenes


def test_malformed_kinds_file_is_named(dataset, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    kinds = json.loads((bad / "synthetic_kinds_test.json").read_text())
    key = next(iter(kinds))
    kinds[key] = kinds[key] + kinds[key]
    (bad / "synthetic_kinds_test.json").write_text(json.dumps(kinds))
    source = SyntheticSource(bad, "test")  # training never reads the kinds file
    with pytest.raises(DataError, match=rf"synthetic_kinds_test.json: {key} has"):
        source.has_expression_kinds()
    (bad / "synthetic_kinds_test.json").write_text(json.dumps({key: "category"}))
    with pytest.raises(DataError, match="synthetic_kinds_test.json: expected"):
        SyntheticSource(bad, "test").has_expression_kinds()


def test_size_bands():
    assert size_bands() == ["<2000", "2000-8000", ">=8000"] and SIZE_EDGES == (2000, 8000)
    assert [size_band(a) for a in (0, 1999, 2000, 7999, 8000, 10 ** 6)] == [
        "<2000", "<2000", "2000-8000", "2000-8000", ">=8000", ">=8000"]
    assert size_bands([10]) == ["<10", ">=10"]
    for bad in ([], [0, 5], [5, 5], [8, 3], ["x"]):
        with pytest.raises(ValueError, match="size edges"):
            size_bands(bad)


def _oracle(source: SyntheticSource, kinds: set[str]):
    """Return the ground truth for expressions of ``kinds``, an empty mask for the others."""
    truth = {}
    for sample in source.samples:
        image, gt = source.load_checked(sample)
        right = source.expression_kind(sample).kind in kinds
        truth[(image.tobytes(), sample.expression)] = gt if right else np.zeros_like(gt)
    return lambda rgb, expression: truth[(rgb.tobytes(), expression)]


def test_by_kind_and_size_match_hand_computation(dataset):
    source = SyntheticSource(dataset, "test", on_error="raise")
    right = {"colour", "stuff", "relation"}
    metrics = evaluate(_oracle(source, right), source, progress=False,
                       by=["kind", "strategy", "size"], size_edges=EDGES)
    kinds = [source.expression_kind(s).kind for s in source.samples]
    areas = [int(source.load_mask(s).sum()) for s in source.samples]
    by_kind = metrics["by_kind"]
    assert list(by_kind) == [k for k in EXPRESSION_KINDS if k in kinds]
    for kind, m in by_kind.items():
        assert m["num_samples"] == kinds.count(kind)
        # an empty prediction is the right answer to an expression with no target
        expected = 1.0 if kind in right or kind in NO_TARGET_KINDS else 0.0
        assert m["prec@0.5"] == m["mean_iou"] == m["overall_iou"] == expected
        assert m["found_share"] == (1.0 if kind in right else 0.0)
    strategies = Counter(source.expression_kind(s).strategy for s in source.samples)
    assert {k: m["num_samples"] for k, m in metrics["by_strategy"].items()} == strategies
    def band_of(area):
        return size_band(area, EDGES) if area else NO_TARGET

    assert list(metrics["by_size"]) == [b for b in [*size_bands(EDGES), NO_TARGET]
                                        if any(band_of(a) == b for a in areas)]
    assert NO_TARGET in metrics["by_size"]
    for band, m in metrics["by_size"].items():
        if band == NO_TARGET:
            assert m["num_samples"] == areas.count(0) and m["prec@0.5"] == 1.0
            continue
        members = [i for i, a in enumerate(areas) if band_of(a) == band]
        hits = [i for i in members if kinds[i] in right]
        assert m["num_samples"] == len(members)
        assert m["prec@0.5"] == pytest.approx(len(hits) / len(members))
        assert m["overall_iou"] == pytest.approx(sum(areas[i] for i in hits) /
                                                 sum(areas[i] for i in members))
    assert sum(m["num_samples"] for m in metrics["by_size"].values()) == metrics["num_samples"]
    assert "by_kind" not in evaluate(_oracle(source, right), source, progress=False, limit=2)


def test_cli_by_kind_and_size_whole_image(dataset, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = cli.main(["--baseline", "whole-image", "--dataset", "synthetic", "--data-root",
                     str(dataset), "--by", "kind", "--by", "size", "--size-edges",
                     ",".join(map(str, EDGES)), "--json", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    source = SyntheticSource(dataset, "test")
    # whole image: IoU = target area / picture area
    ious = {}
    for sample in source.samples:
        ious.setdefault(source.expression_kind(sample).kind, []).append(
            source.load_mask(sample).sum() / (W * H))
    assert set(data["by_kind"]) == set(ious)
    for kind, values in ious.items():
        m = data["by_kind"][kind]
        assert m["mean_iou"] == pytest.approx(np.mean(values))
        assert m["prec@0.5"] == pytest.approx(np.mean(np.asarray(values) >= 0.5))
        assert m["num_samples"] == len(values)
    assert sum(m["num_samples"] for m in data["by_size"].values()) == data["num_samples"]
    assert "expression kind" in printed and "target area (pixels)" in printed
    assert "absolute position" in printed or "position" not in data["by_kind"]
    for band, m in data["by_size"].items():
        row = next(line for line in printed.splitlines() if line.startswith(band + " "))
        assert f"{100 * m['prec@0.5']:.2f}%" in row and row.split()[-2] == str(m["num_samples"])
        assert row.split()[-1] == f"{100 * m['found_share']:.1f}%"
    assert cli.main(["--baseline", "whole-image", "--dataset", "synthetic", "--data-root",
                     str(dataset), "--by", "size", "--size-edges", "9,3", "--no-progress"]) == 2
    choices = next(a.choices for a in cli.build_parser()._actions if a.dest == "by")
    assert tuple(choices) == GROUPINGS

    # the markdown the lead pastes into docs/RESULTS.md
    md = subprocess.run([sys.executable, str(REPO / "tools" / "breakdown_table.py"),
                         f"whole={out}", f"again={out}", "--by", "kind"],
                        capture_output=True, text=True, check=True).stdout
    lines = md.strip().splitlines()
    assert lines[0] == "**By expression kind**"
    assert lines[2].startswith("| expression kind | whole prec@0.5 | whole mean IoU | again")
    assert len(lines) == 4 + len(data["by_kind"])
    single = markdown_group_table("size", {"whole": data["by_size"]}).splitlines()
    assert single[0] == "| target area (pixels) | prec@0.5 | mean IoU | overall IoU | samples |"
    band, m = next(iter(data["by_size"].items()))
    assert single[2] == (f"| {band} | {100 * m['prec@0.5']:.1f} | {100 * m['mean_iou']:.1f} | "
                         f"{100 * m['overall_iou']:.1f} | {m['num_samples']} |")
    bad = subprocess.run([sys.executable, str(REPO / "tools" / "breakdown_table.py"),
                          str(tmp_path / "missing.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.json" in bad.stderr
