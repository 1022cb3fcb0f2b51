"""Token bucket with a fake clock: rate, burst, pause, live changes."""

import math

from userpipeline.jobs.producer.rate import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(bucket: TokenBucket, clock: FakeClock, seconds: float, step: float = 0.01) -> int:
    taken = 0
    for _ in range(round(seconds / step)):
        clock.advance(step)
        taken += bucket.take(10_000)
    return taken


def test_long_run_average_is_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(50, clock=clock)
    assert bucket.take() == 0, "starts empty: no burst at start-up"
    assert abs(drain(bucket, clock, 20) - 1000) <= 1


def test_burst_is_bounded_after_idle_time():
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)
    clock.advance(60)
    assert bucket.take(10_000) == 100, "at most 0.1 s worth after a long idle period"
    assert TokenBucket(2, clock=clock, burst=5).burst == 5


def test_wait_time_tells_when_the_next_token_comes():
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock)
    assert bucket.wait_time() == 0.25
    clock.advance(0.25)
    assert bucket.wait_time() == 0 and bucket.take() == 1


def test_paused_sends_nothing_and_does_not_save_up():
    clock = FakeClock()
    bucket = TokenBucket(100, paused=True, clock=clock)
    assert drain(bucket, clock, 5) == 0
    assert math.isinf(bucket.wait_time())
    bucket.configure(100, paused=False)
    assert bucket.take(10_000) == 0, "paused time earns no tokens"
    assert abs(drain(bucket, clock, 1) - 100) <= 1


def test_rate_change_applies_immediately():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    assert abs(drain(bucket, clock, 2) - 20) <= 1
    bucket.configure(500, paused=False)
    assert abs(drain(bucket, clock, 2) - 1000) <= 1
    bucket.configure(0, paused=False)
    assert drain(bucket, clock, 2) == 0 and math.isinf(bucket.wait_time())


def test_unused_tokens_can_be_given_back():
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock)
    clock.advance(0.1)
    assert bucket.take(10) == 10
    bucket.refund(4)
    assert bucket.take(10) == 4
