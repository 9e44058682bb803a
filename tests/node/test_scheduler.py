"""The frame scheduler: latest frame wins, queries served by later frames, once, rate limit."""

from refseg_node.scheduler import FrameScheduler, Job


def scheduler_with(frames=0, query=None):
    s = FrameScheduler()
    if query:
        s.set_query(query, query)
    for i in range(frames):
        s.add_frame(f"frame{i}", received=100.0 + i)
    return s


def test_nothing_to_do_without_a_query_or_a_frame():
    assert FrameScheduler().next_job(0.0) is None
    assert scheduler_with(frames=3).next_job(0.0) is None
    assert scheduler_with(query="sky").next_job(0.0) is None


def test_a_query_is_served_by_frames_after_it_only():
    s = scheduler_with(frames=2)
    s.set_query("pick up the cup", "the cup")
    assert s.next_job(0.0) is None                 # frames before the query do not count
    s.add_frame("new", received=7.0)
    job = s.next_job(0.0)
    assert isinstance(job, Job)
    assert (job.frame, job.received, job.number) == ("new", 7.0, 3)
    assert (job.query.command, job.query.expression) == ("pick up the cup", "the cup")
    assert s.next_job(0.0) is None                 # the same frame is never taken twice


def test_latest_frame_wins_and_drops_are_counted():
    s = scheduler_with(query="sky")
    for i in range(5):
        s.add_frame(i, received=float(i))
    job = s.next_job(0.0)
    assert job.frame == 4
    s.job_done()
    assert (s.processed, s.dropped) == (1, 4)
    s.add_frame(5, received=5.0)                   # the previous one was taken: no drop
    assert s.dropped == 4


def test_no_drops_counted_without_a_query():
    s = scheduler_with(frames=10)
    assert s.dropped == 0


def test_take_counts_reports_each_period_once():
    s = scheduler_with(query="sky")
    s.add_frame(0, 0.0)
    s.add_frame(1, 0.0)
    s.next_job(0.0)
    s.job_done()
    first = s.take_counts()
    assert (first.processed, first.dropped) == (1, 1)
    again = s.take_counts()
    assert (again.processed, again.dropped) == (0, 0)   # nothing new: nothing to report
    s.add_frame(2, 0.0)
    s.next_job(0.0)
    s.job_done()
    assert (s.take_counts().processed, s.dropped) == (1, 1)


def test_mode_once_serves_one_frame_per_query():
    s = scheduler_with(query="sky")
    s.add_frame("a", 0.0)
    assert s.next_job(0.0, mode="once").frame == "a"
    s.add_frame("b", 0.0)
    assert s.next_job(0.0, mode="once") is None
    s.set_query("the jar", "the jar")
    s.add_frame("c", 0.0)
    assert s.next_job(0.0, mode="once").frame == "c"
    s.add_frame("d", 0.0)
    assert s.next_job(0.0, mode="continuous").frame == "d"   # switching back serves again


def test_max_rate_returns_the_time_to_wait():
    s = scheduler_with(query="sky")
    s.add_frame("a", 0.0)
    assert s.next_job(10.0, max_rate_hz=4.0).frame == "a"
    s.add_frame("b", 0.0)
    wait = s.next_job(10.1, max_rate_hz=4.0)
    assert wait == 0.25 - 0.1 or abs(wait - 0.15) < 1e-9
    assert s.next_job(10.25, max_rate_hz=4.0).frame == "b"


def test_clear_and_repeat_query():
    s = FrameScheduler()
    assert not s.clear_query()
    assert not s.set_query("sky", "sky")
    assert s.set_query("sky", "sky")               # the same command again
    assert not s.set_query("the jar", "the jar")
    assert s.clear_query() and s.query is None


def test_reset_forgets_everything():
    s = scheduler_with(frames=3, query="sky")
    s.reset()
    assert (s.query, s.frame, s.frame_count, s.processed, s.dropped) == (None, None, 0, 0, 0)


def test_takes_now_and_model_waits_tell_where_a_new_frame_goes():
    s = scheduler_with(query="sky")
    assert not s.takes_now(0.0) and not s.model_waits(0.0)   # no frame after the query yet
    s.add_frame("a", 0.0)
    assert s.takes_now(0.0) and not s.model_waits(0.0)       # the idle model takes it
    job = s.next_job(0.0, max_rate_hz=2.0)
    assert job.frame == "a" and not s.takes_now(0.0)         # taken: nothing new for it
    s.add_frame("b", 0.1)
    assert s.model_waits(0.1) and not s.takes_now(0.1)       # busy: the tracker's frame
    s.finish_job()
    assert s.model_waits(0.2) and not s.takes_now(0.2)       # the rate limit holds it back
    assert s.takes_now(0.5) and not s.model_waits(0.5)
    s.clear_query()
    assert not s.takes_now(0.5)                              # no query: nobody takes it
