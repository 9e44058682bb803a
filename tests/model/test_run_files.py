"""Tests of ``refseg_model.run_files``: ``metrics.jsonl`` and the loss curve of a run folder."""

import json

import cv2

from refseg_model.ddp import DistInfo
from refseg_model.run_files import FLUSH_EVERY, RunFiles


def test_metrics_are_queued_flushed_and_read_back(tmp_path):
    files = RunFiles(tmp_path / "run", DistInfo())
    for step in range(1, FLUSH_EVERY):
        files.add_metrics({"stage": "lowres", "step": step, "loss": 1.0 / step})
    assert not files.metrics.exists()  # queued
    files.add_metrics({"stage": "lowres", "step": FLUSH_EVERY, "loss": 0.01})
    assert len(files.read_metrics()) == FLUSH_EVERY  # written once the queue is full
    files.add_metrics({"stage": "highres", "step": 1, "loss": 0.5})
    files.flush_metrics()
    assert files.read_metrics()[-1] == {"stage": "highres", "step": 1, "loss": 0.5}


def test_a_torn_last_line_is_ignored_and_resume_truncates_later_records(tmp_path):
    files = RunFiles(tmp_path / "run", DistInfo())
    records = [{"stage": "det", "step": 3}, {"stage": "lowres", "step": 1},
               {"stage": "lowres", "step": 2}, {"stage": "highres", "step": 1}]
    files.metrics.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"stage": "hi')
    assert files.read_metrics() == records
    files.truncate_metrics(1, 1)  # resuming at lowres step 1 (TRAIN_STAGES index 1)
    assert files.read_metrics() == records[:2]


def test_loss_curve_is_a_png_of_every_stage(tmp_path):
    files = RunFiles(tmp_path / "run", DistInfo())
    for stage in ("lowres", "highres"):
        for step in range(1, 30):
            files.add_metrics({"stage": stage, "step": step, "loss": 1.0 / step})
    files.add_metrics({"stage": "highres", "step": 30, "val_overall_iou": 0.5})  # no loss
    files.flush_metrics()
    files.write_loss_curve()
    image = cv2.imread(str(tmp_path / "run" / "loss_curve.png"))
    assert image is not None and image.shape == (400, 700, 3)


def test_other_ranks_write_nothing(tmp_path):
    files = RunFiles(tmp_path / "run", DistInfo(rank=1, world_size=2))
    files.add_metrics({"stage": "lowres", "step": 1, "loss": 1.0})
    files.flush_metrics()
    files.write_loss_curve()
    assert not (tmp_path / "run").exists()
