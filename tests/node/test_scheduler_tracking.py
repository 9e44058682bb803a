"""The frame scheduler's hand-off to the tracker: frames the model is too busy to take."""

from refseg_node.scheduler import FrameScheduler


def test_frames_go_to_the_tracker_only_while_the_model_is_busy():
    s = FrameScheduler()
    s.set_query("the cup", "the cup")
    s.add_frame("f1", 1.0)
    assert s.take_for_tracker(0.0) is None          # the model is idle: f1 is the model's
    job = s.next_job(0.0)
    assert job.frame == "f1" and s.busy
    assert s.take_for_tracker(0.0) is None          # nothing new yet
    s.add_frame("f2", 2.0)
    tracked = s.take_for_tracker(0.0)
    assert tracked.frame == "f2" and tracked.number == 2
    assert s.take_for_tracker(0.0) is None          # one answer per frame
    s.add_frame("f3", 3.0)
    assert s.take_for_tracker(0.0).frame == "f3"
    s.job_done()                                    # answered; its answer is being published
    assert s.busy and s.processed == 1
    s.add_frame("f3b", 3.5)                         # comes while the worker publishes
    assert s.take_for_tracker(0.0).frame == "f3b"   # the worker cannot take it: the tracker
    s.finish_job()
    assert not s.busy
    assert s.next_job(0.0) is None                  # f3b is answered: the model waits for f4
    s.add_frame("f4", 4.0)
    assert s.take_for_tracker(0.0) is None and s.next_job(0.0).frame == "f4"
    assert s.dropped == 0                           # tracked frames are not dropped ones


def test_rate_limited_frames_go_to_the_tracker():
    s = FrameScheduler()
    s.set_query("the cup", "the cup")
    s.add_frame("f1", 1.0)
    s.next_job(10.0, max_rate_hz=1.0)
    s.finish_job()
    s.add_frame("f2", 2.0)
    assert abs(s.next_job(10.2, max_rate_hz=1.0) - 0.8) < 1e-9   # seconds to wait
    assert s.take_for_tracker(10.2).frame == "f2"   # the model may not run before 11.0
    s.add_frame("f3", 3.0)
    assert s.take_for_tracker(11.0) is None         # now the model may: f3 is its
    assert s.next_job(11.0, max_rate_hz=1.0).frame == "f3"


def test_no_tracking_without_a_query_in_once_mode_or_for_older_frames():
    s = FrameScheduler()
    s.add_frame("f1", 1.0)
    s.busy = True
    assert s.take_for_tracker(0.0) is None          # no query
    s.set_query("the cup", "the cup")
    assert s.take_for_tracker(0.0) is None          # f1 came before the query
    s.add_frame("f2", 2.0)
    assert s.take_for_tracker(0.0, mode="once") is None
    assert s.take_for_tracker(0.0).frame == "f2"


def test_a_frame_the_tracker_cannot_answer_goes_back_to_the_model():
    s = FrameScheduler()
    s.set_query("the cup", "the cup")
    s.add_frame("f1", 1.0)
    s.next_job(0.0)
    s.add_frame("f2", 2.0)
    job = s.take_for_tracker(0.0)
    s.give_back(job)
    s.job_done()
    assert s.next_job(0.0).frame == "f2"            # the model takes it after all
    s.add_frame("f3", 3.0)
    old = s.take_for_tracker(0.0)
    s.add_frame("f4", 4.0)
    s.give_back(old)                                # f3 is no longer the latest: no change
    assert s.take_for_tracker(0.0).frame == "f4"
