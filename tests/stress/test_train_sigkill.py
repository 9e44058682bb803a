"""Training killed with SIGKILL at random moments and resumed ends where an unkilled run ends.

While it runs, every checkpoint on disk is loadable at every moment (atomic writes).
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from refseg_model.checkpoint import CheckpointError, load_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from refseg_model.synth.writer import write_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, 10, seed=4, width=96, height=72, progress=False)
    return root


def _cmd(root, out, resume):
    return [sys.executable, "-m", "refseg_model.cli.train", "--dataset", "synthetic",
            "--data-root", str(root), "--out", str(out), "--config", "tiny", "--device", "cpu",
            "--threads", "1", "--stage", "both", "--lowres-iters", "14", "--highres-iters", "8",
            "--checkpoint-every", "3", "--batch-size", "2", *(["--resume"] if resume else [])]


class CheckpointWatcher(threading.Thread):
    """Load every ``*.pt`` of a run folder over and over; record any that fails to load."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.failures, self.loads = folder, [], 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for path in list(self.folder.glob("*.pt")):
                try:
                    load_checkpoint(path)
                    self.loads += 1
                except CheckpointError as err:
                    if path.exists():  # (a file replaced between glob and open is fine)
                        self.failures.append(str(err))
            time.sleep(0.01)


def test_sigkilled_training_resumes_to_the_same_end(synthetic_root, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    reference = tmp_path / "reference"
    done = subprocess.run(_cmd(synthetic_root, reference, False), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    run = tmp_path / "killed"
    run.mkdir()
    watcher = CheckpointWatcher(run)
    watcher.start()
    rng = random.Random(7)
    kills = 0
    try:
        for _attempt in range(12):
            proc = subprocess.Popen(_cmd(synthetic_root, run, (run / "last.pt").exists()),
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if kills < 4:
                # a random moment once training is under way (after start-up imports)
                start = time.monotonic()
                while proc.poll() is None and not (run / "metrics.jsonl").exists() and (
                        time.monotonic() - start < 120):
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 1.5))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    for path in run.glob("*.pt"):  # loadable right after the kill
                        load_checkpoint(path)
                    continue
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-2000:]
            if kills >= 4 or proc.returncode == 0:
                break
    finally:
        watcher.stop.set()
        watcher.join()
    assert kills >= 3, "the runs ended before they could be killed"
    assert not watcher.failures, watcher.failures[:3]
    assert watcher.loads > 0

    final, ref = load_checkpoint(run / "last.pt"), load_checkpoint(reference / "last.pt")
    assert final["stage"] == ref["stage"] == "highres"
    assert final["train_state"]["step"] == ref["train_state"]["step"] == 8
    for key, value in ref["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][key], value, atol=1e-5, rtol=1e-4)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [(r["stage"], r["step"]) for r in records if "loss" in r]
    assert steps == [("lowres", s) for s in range(1, 15)] + [("highres", s) for s in range(1, 9)]
    assert load_checkpoint(run / "lowres.pt")["stage"] == "lowres"
