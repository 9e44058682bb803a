"""The node's health for /diagnostics: figures over a window, and the level with its reason."""

import pytest

from refseg_node.health import ERROR, MIN_3D_ANSWERS, OK, WARN, WINDOW_S, HealthMonitor


def report(monitor, now, **kwargs):
    args = dict(active=True, model_loaded=True, frame_timeout=5.0, dropped=0,
                numeric_path="fp32+channels_last", device="cpu")
    args.update(kwargs)
    return monitor.report(now, **args)


def values(rep):
    return dict(rep.values)


def test_figures_of_a_working_node():
    monitor = HealthMonitor()
    monitor.activated(0.0)
    for i in range(100):                        # 10 Hz for 10 s; the model answers every 2nd
        t = i * 0.1
        monitor.frame(t)
        tracked = i % 2 == 1
        monitor.answer(t + 0.01, tracked, True, True, True, None if tracked else 0.01 + i * 1e-4)
    rep = report(monitor, 10.0, dropped=3)
    v = values(rep)
    assert rep.level == OK and rep.message == "segmenting"
    assert float(v["input frame rate (Hz)"]) == pytest.approx(10.0, abs=0.2)
    assert float(v["answered rate (Hz)"]) == pytest.approx(10.0, abs=0.2)
    assert float(v["tracked share"]) == pytest.approx(0.5, abs=0.02)
    assert float(v["3D pairing share"]) == 1.0
    assert float(v["model latency p50 (ms)"]) == pytest.approx(15.0, abs=0.2)
    assert float(v["model latency p95 (ms)"]) == pytest.approx(19.5, abs=0.2)
    assert v["dropped frames"] == "3" and v["device"] == "cpu"
    assert v["numeric path"] == "fp32+channels_last" and v["state"] == "active"


def test_old_frames_leave_the_window():
    monitor = HealthMonitor()
    monitor.activated(0.0)
    for i in range(10):
        monitor.frame(i * 0.1)
    assert float(values(report(monitor, 1.0))["input frame rate (Hz)"]) == pytest.approx(10.0)
    later = report(monitor, 1.0 + WINDOW_S + 1.0, frame_timeout=0.0)
    assert values(later)["input frame rate (Hz)"] == "0.00" and later.level == OK


def test_warn_when_no_frame_within_frame_timeout():
    monitor = HealthMonitor()
    monitor.activated(0.0)
    assert report(monitor, 4.0).level == OK            # no frame yet, within 5 s
    rep = report(monitor, 6.0)
    assert rep.level == WARN and "no camera frame for 6 s (frame_timeout 5 s)" in rep.message
    monitor.frame(6.5)
    assert report(monitor, 7.0).level == OK
    assert report(monitor, 12.0).level == WARN
    assert report(monitor, 100.0, frame_timeout=0.0).level == OK     # 0: never warn


def test_warn_when_the_3d_share_falls():
    monitor = HealthMonitor()
    monitor.activated(0.0)
    for i in range(MIN_3D_ANSWERS):
        monitor.frame(i * 0.1)
        monitor.answer(i * 0.1, False, True, i % 3 != 0, True, 0.02)
    rep = report(monitor, 1.0)
    assert rep.level == WARN and "3D point on 60% of the found answers" in rep.message
    # Answers without a depth stream, or that found nothing, do not count.
    monitor = HealthMonitor()
    monitor.activated(0.0)
    for i in range(3 * MIN_3D_ANSWERS):
        monitor.frame(i * 0.1)
        monitor.answer(i * 0.1, False, True, False, False, 0.02)
        monitor.answer(i * 0.1, False, False, False, True, 0.02)
    rep = report(monitor, 3.0)
    assert rep.level == OK and values(rep)["3D pairing share"] == "n/a"


def test_error_when_active_without_a_model_and_ok_when_inactive():
    monitor = HealthMonitor()
    monitor.activated(0.0)
    monitor.frame(0.5)
    rep = report(monitor, 1.0, model_loaded=False)
    assert rep.level == ERROR and "model is not loaded" in rep.message
    monitor.deactivated()
    rep = report(monitor, 100.0, active=False, model_loaded=False)
    assert rep.level == OK and rep.message.startswith("inactive")
    assert values(rep)["state"] == "inactive"
