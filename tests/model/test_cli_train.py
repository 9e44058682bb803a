"""Tests of ``refseg-train``'s command line (``refseg_model.cli.train``)."""

import json
from pathlib import Path

import cv2
import numpy as np

from refseg_model.checkpoint import load_checkpoint
from refseg_model.cli.train import build_parser, main, resolve_run_config, stage_iters
from refseg_model.data import DataSpec

FLAGS = ["--dataset", "referit", "--data-root", "data", "--out", "run"]


def test_overrides_apply_to_every_stage_and_iterations_go_apart():
    args = build_parser().parse_args(FLAGS + ["--config", "paper", "--batch-size", "4",
                                              "--lr", "0.5", "--no-pretrained",
                                              "--max-iters", "7", "--det-iters", "2"])
    run = resolve_run_config(args)
    assert not run.model.pretrained
    for stage in ("det", "lowres", "highres"):
        scfg = run.train.for_stage(stage)
        assert (scfg.batch_size, scfg.lr) == (4, 0.5)  # the det stage's 50 is replaced too
    assert stage_iters(args) == {"det": 2, "lowres": 7, "highres": 7}


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
    rc = main(["--dataset", "refer", "--refer-dataset", "refcoco+", "--data-root",
               str(root), "--split", "train", "--out", str(out), "--config", "tiny",
               "--device", "cpu", "--threads", "1", "--max-iters", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "refseg-train: refer/refcoco+ train (8 samples" in printed
    assert "refseg-train: [highres 2/2] loss" in printed  # progress: one logger, on stdout
    payload = load_checkpoint(out / "last.pt")
    assert payload["stage"] == "highres" and "red" in payload["vocabulary"]
    spec = DataSpec("refer", root, "train", refer_dataset="refcoco+")
    assert len(spec.open()) == 8
