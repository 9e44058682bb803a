"""The log limiters: a burst of query lines, one warning of a kind per period."""

from refseg_node.log_limits import Throttle, TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(burst=3, rate=2.0, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.allow(0.4)
    assert bucket.allow(0.5)            # 0.5 s * 2/s = one token back
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_throttle_once_per_period_and_kind():
    t = Throttle()
    assert t.allow("a", 0.0, 5.0) and not t.allow("a", 4.9, 5.0) and t.allow("a", 5.0, 5.0)
    assert t.allow("b", 1.0, 5.0)
    assert t.allow("c", 0.0, 0.0) and t.allow("c", 0.0, 0.0)
