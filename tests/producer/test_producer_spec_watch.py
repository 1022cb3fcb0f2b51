"""The YAML watcher the running producer polls: changes arrive within one poll interval."""

from producer.kit import write_spec
from userpipeline.jobs.producer.spec_watch import SpecWatcher


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_change_is_seen_at_the_next_poll_interval(tmp_path):
    path = write_spec(tmp_path / "p.yaml", "users.raw", **{"producer.ratePerSecond": 10})
    clock = FakeClock()
    watcher = SpecWatcher(path, interval=1.0, clock=clock)
    assert watcher.current.spec.producer.rate_per_second == 10
    write_spec(path, "users.raw", **{"producer.ratePerSecond": 25, "producer.paused": True})
    clock.now = 0.5
    assert watcher.poll() is None, "not before the interval"
    clock.now = 1.0
    changed = watcher.poll()
    assert changed is not None and changed.spec.producer.rate_per_second == 25 and changed.spec.producer.paused
    clock.now = 2.0
    assert watcher.poll() is None, "reported once"


def test_touching_without_changing_content_is_not_a_change(tmp_path):
    path = write_spec(tmp_path / "p.yaml", "users.raw")
    clock = FakeClock()
    watcher = SpecWatcher(path, interval=1.0, clock=clock)
    write_spec(path, "users.raw")
    clock.now = 1.0
    assert watcher.poll() is None


def test_an_invalid_edit_keeps_the_last_valid_spec(tmp_path):
    path = write_spec(tmp_path / "p.yaml", "users.raw", **{"producer.ratePerSecond": 10})
    clock = FakeClock()
    watcher = SpecWatcher(path, interval=1.0, clock=clock)
    path.write_text("spec: {producer: {ratePerSecond: -5}}\nmetadata: {name: x}\n")
    clock.now = 1.0
    assert watcher.poll() is None
    path.unlink()
    clock.now = 2.0
    assert watcher.poll() is None
    assert watcher.current.spec.producer.rate_per_second == 10
    write_spec(path, "users.raw", **{"producer.ratePerSecond": 30})
    clock.now = 3.0
    assert watcher.poll().spec.producer.rate_per_second == 30
