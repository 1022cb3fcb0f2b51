"""Progress file, watermark and acked log."""

from userpipeline.jobs.producer.progress import AckLog, Progress, Watermark, read_ack_log


def test_watermark_is_the_lowest_unacknowledged_index():
    mark = Watermark(10)
    for index in (12, 11, 14):
        mark.ack(index)
    assert mark.next == 10
    mark.ack(10)
    assert mark.next == 13
    mark.ack(13)
    assert mark.next == 15
    mark.ack(3)
    assert mark.next == 15


def test_progress_round_trip_and_unreadable_file(tmp_path):
    path = tmp_path / "progress.json"
    assert Progress.load(path) is None
    Progress(source="synthetic", seed=3, produced=5, acked=4, nextIndex=4, state="running").write(path)
    loaded = Progress.load(path)
    assert (loaded.seed, loaded.produced, loaded.acked, loaded.nextIndex, loaded.state) == (3, 5, 4, 4, "running")
    assert loaded.updatedAt.endswith("Z")
    path.write_text("{not json")
    assert Progress.load(path) is None


def test_ack_log_lines_and_a_torn_last_line(tmp_path):
    path = tmp_path / "acked.log"
    log = AckLog(path)
    log.write(0, b"0b1f8c7e-5d0a-4c8e-9a55-3f1d2e4b6a70")
    log.write(1, None)
    log.close()
    with open(path, "a") as f:
        f.write("2\t0b1f8c7e-5d0a")
    assert read_ack_log(path) == [(0, "0b1f8c7e-5d0a-4c8e-9a55-3f1d2e4b6a70"), (1, None)]
