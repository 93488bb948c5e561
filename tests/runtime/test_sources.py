import threading
import time

import numpy as np
import pytest

from vgpt.runtime.sources import DropOldestQueue, SourceError, open_source, paced


def test_a_folder_of_images_of_different_sizes_is_refused_by_name(tmp_path):
    cv2 = pytest.importorskip("cv2")
    for i, size in enumerate((32, 32, 48)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.zeros((size, size, 3), np.uint8))
    source = open_source(str(tmp_path))
    with pytest.raises(SourceError, match=r"002.png is 48x48 px but 000.png is 32x32 px"):
        list(source)


def test_empty_folders_and_missing_inputs_say_what_to_give(tmp_path):
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))
    with pytest.raises(SourceError, match=r"does not exist .*camera index or a stream URL"):
        open_source(str(tmp_path / "nothing.mp4"))


def test_the_live_queue_drops_the_oldest_frames_and_hands_over_the_source_error():
    done = threading.Event()

    def camera():
        yield from range(10)
        done.set()
        raise SourceError("camera 0 stopped")

    queue = DropOldestQueue(camera(), maxsize=3)
    assert done.wait(timeout=30)
    got = []
    with pytest.raises(SourceError, match="camera 0 stopped"):
        for frame in queue:
            got.append(frame)
    # The consumer never read while the camera ran: only the newest 3 survive; the end marker waits for
    # room instead of dropping a frame.
    assert got == [7, 8, 9] and queue.dropped == 7
    queue.close()
    assert not queue._thread.is_alive()


def test_closing_the_live_queue_joins_a_capture_thread_that_is_still_reading():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    queue = DropOldestQueue(endless(), maxsize=2)
    next(iter(queue))
    queue.close(timeout=10)
    assert not queue._thread.is_alive(), "a capture thread left running would abort the interpreter at exit"


def test_a_recording_read_without_dropping_hands_over_every_frame_to_a_slow_consumer():
    queue = DropOldestQueue(iter(range(10)), maxsize=2, drop=False)
    got = []
    for frame in queue:
        got.append(frame)
        time.sleep(0.01)  # slower than the reader
    assert got == list(range(10)) and queue.dropped == 0
    queue.close()


def test_a_file_is_stamped_at_its_rate_and_paced_at_its_recorded_pace(tmp_path):
    pytest.importorskip("av")
    from vgpt.video import write_video

    write_video(tmp_path / "v.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=20)
    stamps = [stamp for stamp, _ in open_source(str(tmp_path / "v.mp4")).timed()]
    assert stamps == [0, 50_000_000, 100_000_000, 150_000_000]  # frame i at i / 20 s
    start = time.monotonic()
    assert [s for s, _ in paced(iter([(s, None) for s in stamps]))] == stamps
    # The last frame comes 0.15 s after the first; a sleep returns no earlier than asked.
    assert time.monotonic() - start >= 0.15
