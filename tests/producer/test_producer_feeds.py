"""The synthetic feeds: the parallel one gives the same messages, in index order, as the in-thread one."""

from datetime import date

from producer.kit import wait_for
from userpipeline.jobs.producer.feeds import ParallelSyntheticFeed, SyntheticFeed
from userpipeline.jobs.producer.sanitize import Message, to_message
from userpipeline.jobs.producer.synthetic import SyntheticSource, utc_today

SOURCE = SyntheticSource(seed=5, minor_ratio=0.1, broken_ratio=0.1, today=utc_today())


def drain(feed, limit: int = 100_000) -> list:
    items = []
    while not feed.exhausted and len(items) < limit:  # take() is None while nothing is ready: poll
        items.append(wait_for(feed.take, 60, "the next record", interval=0.01))
    return items


def test_parallel_feed_gives_the_same_messages_in_order_from_any_start():
    expected = [(i, to_message(SOURCE.record(i).payload)) for i in range(130, 1170)]
    feed = ParallelSyntheticFeed(SOURCE, 130, 1170, workers=2, chunk=100)
    try:
        items = drain(feed)
    finally:
        feed.close()
    assert items == expected
    assert all(isinstance(message, Message) for _, message in items)
    assert feed.take() is None and feed.exhausted


def test_parallel_feed_without_an_end_keeps_a_bounded_number_of_chunks_waiting():
    feed = ParallelSyntheticFeed(SOURCE, 0, None, workers=1, chunk=50, ahead=3)
    try:
        items = drain(feed, limit=400)
        assert [i for i, _ in items] == list(range(400)) and not feed.exhausted
        assert len(feed._pending) <= 3
    finally:
        feed.close()


def test_both_feeds_follow_the_calendar_and_agree():
    old = SyntheticSource(seed=5, today=date(2020, 1, 1))
    serial, parallel = SyntheticFeed(old, 0, 3), ParallelSyntheticFeed(old, 0, 3, workers=1)
    try:
        current = [to_message(SyntheticSource(seed=5).record(i).payload) for i in range(3)]
        assert [to_message(p) for _, p in drain(serial)] == [m for _, m in drain(parallel)] == current
    finally:
        parallel.close()
