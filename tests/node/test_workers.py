"""The node's worker and tracker threads (``refseg_node.workers``) without a ROS graph.

A real tiny checkpoint, real ``sensor_msgs/Image`` messages, real threads; the node's publish
and warn callables are plain lists here.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from refseg_model import Segmenter
from refseg_node.model_thread import ModelThread
from refseg_node.parameters import PARAMETERS, Settings
from refseg_node.perception.pipeline import NotActiveError
from refseg_node.ros_io.image_conversion import compressed_msg, rgb8_msg
from refseg_node.timings import header_seconds
from refseg_node.workers import Workers
from tests.harness import make_checkpoint, wait_until


def settings(**values) -> Settings:
    return dataclasses.replace(Settings.from_values({p.name: p.default for p in PARAMETERS}),
                               **values)


def frame(i: int, seed: int = 0, compressed: bool = False):
    rgb = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    header = Header(stamp=Time(sec=10 + i, nanosec=500_000_000), frame_id="cam")
    return compressed_msg(rgb, "png", header) if compressed else rgb8_msg(rgb, header)


class Recorder:
    def __init__(self, s: Settings):
        self.settings = s
        self.published, self.warnings, self.debug = [], [], []
        self.published_on: set[int] = set()       # the threads that published
        self.lock = threading.Lock()

    def publish(self, result, rgb):
        with self.lock:
            self.published.append(result)
            self.published_on.add(threading.get_ident())

    def workers(self) -> Workers:
        return Workers(lambda: self.settings, lambda k, t: self.warnings.append((k, t)),
                       self.publish, self.debug.append)


def test_header_seconds():
    assert header_seconds(frame(0).header) == pytest.approx(10.5)


def test_without_a_model_nothing_is_segmented():
    rec = Recorder(settings())
    workers = rec.workers()
    with pytest.raises(NotActiveError):
        workers.segment(frame(0), "the cup", "the cup")
    assert workers.latest_frame() is None and workers.previous_expression() is None
    workers.add_frame(frame(0))
    assert workers.latest_frame() is not None and workers.totals() == (1, 0, 0)
    workers.reset()
    assert workers.latest_frame() is None and workers.totals() == (0, 0, 0)


def test_the_worker_segments_frames_after_the_query_and_releases_the_model(tmp_path):
    path = make_checkpoint(tmp_path / "tiny.pt", bias=6.0)   # segments the whole image
    rec = Recorder(settings(device="cpu", tracking=False))
    workers = rec.workers()
    segmenter = Segmenter.from_checkpoint(path, device="cpu")
    workers.add_frame(frame(0))                              # before the query: not served
    workers.start(segmenter)
    try:
        assert not workers.set_query("pick up the red cup", "the red cup")
        assert workers.set_query("pick up the red cup", "the red cup")          # repeated
        assert workers.previous_expression() == "the red cup"
        time.sleep(0.2)
        assert rec.published == []                           # frame 0 came before the query
        workers.add_frame(frame(1))
        wait_until(lambda: rec.published, 30.0, "the worker's answer")
        result = rec.published[0]
        assert result.expression == "the red cup" and result.target.found
        assert result.mask.shape == (48, 64) and result.mask.all() and not result.tracked
        assert result.header.stamp.sec == 11
        wait_until(lambda: rec.debug, 5.0, "the timings line")
        assert rec.debug[0].startswith("frame timings ms: ")
        # Every stage of the answer took a time >= 0 (a stage measured between the wrong two
        # clock readings comes out negative).
        stages = [float(v) for v in re.findall(r"-?\d+\.\d", rec.debug[0])]
        assert len(stages) == 6 and min(stages) >= 0.0, rec.debug[0]
        assert workers.totals() == (2, 1, 1)     # frame 0, replaced unsegmented, is dropped
        assert workers.take_counts().processed == 1 and workers.take_counts().processed == 0
        # The worker's loop runs on the model thread: one wake-up from a frame to the model.
        assert rec.published_on == {workers.model.call(threading.get_ident)}
        direct, rgb = workers.segment(frame(2), "the cup", "the cup")   # the service's path
        assert direct.target.found and rgb.shape == (48, 64, 3)
    finally:
        workers.stop()
    with pytest.raises(NotActiveError):
        workers.segment(frame(3), "the cup", "the cup")      # the model is released
    assert rec.warnings == []


def test_live_settings_are_read_for_every_frame(tmp_path):
    path = make_checkpoint(tmp_path / "tiny.pt", bias=6.0)
    rec = Recorder(settings(device="cpu", tracking=False, mode="once"))
    workers = rec.workers()
    workers.start(Segmenter.from_checkpoint(path, device="cpu"))
    try:
        workers.set_query("the cup", "the cup")
        workers.add_frame(frame(0))
        wait_until(lambda: len(rec.published) == 1, 30.0, "the first answer")
        workers.add_frame(frame(1))                          # mode once: not segmented
        time.sleep(0.3)
        assert len(rec.published) == 1
        rec.settings = dataclasses.replace(rec.settings, mode="continuous")  # a live change
        workers.add_frame(frame(2))
        wait_until(lambda: len(rec.published) == 2, 30.0, "the answer in continuous mode")
    finally:
        workers.stop()


def test_model_thread_runs_every_call_on_one_thread():
    """Calls from any thread run on the one model thread; its errors reach the caller."""
    model = ModelThread()
    try:
        ran_on = {model.call(threading.get_ident)}
        others = [threading.Thread(target=lambda: ran_on.add(model.call(threading.get_ident)))
                  for _ in range(3)]
        for thread in others:
            thread.start()
        for thread in others:
            thread.join()
        assert len(ran_on) == 1
        assert threading.get_ident() not in ran_on
        assert model.call(divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            model.call(divmod, 1, 0)
        # A long call (the worker's loop) runs the calls queued meanwhile with run_pending.
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                model.run_pending()
                with model.cv:
                    if not model.pending():
                        model.cv.wait(0.5)
            return "loop done"

        running = model.submit(loop)
        assert model.call(threading.get_ident) in ran_on        # served by the loop
        assert model.call(lambda: model.call(divmod, 9, 4)) == (2, 1)  # re-entrant: no deadlock
        stop.set()
        assert running.result(timeout=5.0) == "loop done"
    finally:
        model.close()
    with pytest.raises(RuntimeError, match="closed"):
        model.call(divmod, 1, 1)


@pytest.mark.parametrize("user_value", [None, "5"])
def test_the_node_package_sets_libgomps_spin_before_torch_loads(user_value):
    """Importing refseg_node first sets GOMP_SPINCOUNT (a value the user set is kept)."""
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if user_value is not None:
        env["GOMP_SPINCOUNT"] = user_value
    code = ("import os, refseg_node, torch; torch.ones(4).sum();"
            "print(os.environ['GOMP_SPINCOUNT'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == (user_value or "30000")


def test_the_image_callback_hands_a_frame_to_the_idle_model_before_returning(tmp_path):
    """add_frame (the executor's callback) returns once the model thread has the frame.

    Only when the model is free to take it: without a query (or with the model busy) it returns
    at once. The hand-over's timeout is raised here so that the first case cannot pass by luck.
    """
    path = make_checkpoint(tmp_path / "tiny.pt", bias=6.0)
    rec = Recorder(settings(device="cpu", tracking=False, min_inference_time=0.5))
    workers = rec.workers()
    workers.handover_timeout = 30.0
    workers.start(Segmenter.from_checkpoint(path, device="cpu"))
    try:
        workers.add_frame(frame(0))                          # no query: nobody takes it
        with workers.cv:
            assert not workers.scheduler.busy and workers.scheduler.processed == 0
        workers.set_query("the cup", "the cup")
        workers.add_frame(frame(1))
        with workers.cv:                                     # taken before add_frame returned
            assert workers.scheduler.busy or workers.scheduler.processed == 1
        workers.add_frame(frame(2))                          # the model is busy (0.5 s)
        wait_until(lambda: len(rec.published) == 2, 30.0, "both answers")
    finally:
        workers.stop()
    assert rec.warnings == []


def test_the_tracker_answers_compressed_frames_with_the_one_decoder(tmp_path):
    """Compressed camera frames reach the model and the tracker alike (one frame decoder).

    The model is held 1 s per answer, so the frames that arrive meanwhile go to the tracker,
    which carries the model's mask onto them.
    """
    path = make_checkpoint(tmp_path / "tiny.pt", bias=6.0)
    rec = Recorder(settings(device="cpu", tracking=True, min_inference_time=1.0))
    workers = rec.workers()
    workers.start(Segmenter.from_checkpoint(path, device="cpu"))
    try:
        workers.set_query("the cup", "the cup")
        workers.add_frame(frame(0, compressed=True))
        wait_until(lambda: rec.published, 30.0, "the model's answer")
        for i in range(1, 4):
            workers.add_frame(frame(i, compressed=True))
        wait_until(lambda: any(r.tracked for r in rec.published), 30.0, "a tracked answer")
    finally:
        workers.stop()
    tracked = next(r for r in rec.published if r.tracked)
    assert tracked.target.found and tracked.mask.shape == (48, 64) and tracked.tracked_age >= 1
    assert tracked.header.stamp.sec > 10 and tracked.expression == "the cup"
    assert rec.warnings == []

