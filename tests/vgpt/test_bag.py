"""ROS 2 bags as video (vgpt.bag): bags written by rosbags itself in both storage formats, every image
encoding, the topic choice, the stamp sampling and each refusal."""

import logging

import numpy as np
import pytest

from tests.bags import NS, START, storage_file, write_bag
from vgpt.bag import IMAGE, BagError, decode_image, image_message, iter_bag_frames, probe_bag, sample_stamps, typestore
from vgpt.synthetic import SceneConfig, render_video

pytest.importorskip("rosbags")
pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def frames():
    return render_video(3, SceneConfig(height=24, width=32, frames=6))  # uint8 [6, 24, 32, 3]


def _jpeg_round_trip(frames):
    import cv2

    bgr = [cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(f[:, :, ::-1]))[1], cv2.IMREAD_COLOR) for f in frames]
    return np.stack(bgr)[..., ::-1]


def _read(path, topic=None, fps=10.0):
    video = probe_bag(path, topic, fps)
    return video, np.stack(list(iter_bag_frames(video)))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [None, "png", "jpeg"])
def test_both_storage_formats_raw_and_compressed_as_a_folder_and_as_its_file(storage, compressed, frames, tmp_path):
    folder = write_bag(tmp_path / "bag", frames, storage=storage, compressed=compressed)
    for path in (folder, storage_file(folder)):
        video, got = _read(path)
        assert video.topic == "/camera/image_raw" and (video.width, video.height) == (32, 24)
        assert video.frames == len(frames) and video.frame_id == "camera"
        assert got.shape == frames.shape and got.dtype == np.uint8
        # Raw and PNG are lossless; JPEG is lossy, so the bag must give what a JPEG round trip of the frames gives.
        np.testing.assert_array_equal(got, _jpeg_round_trip(frames) if compressed == "jpeg" else frames)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC1", "8UC3", "16UC1"])
def test_every_raw_encoding_decodes_to_the_same_rgb(encoding, frames, tmp_path):
    _, got = _read(write_bag(tmp_path / "bag", frames, encoding=encoding))
    # mono: every channel is the first channel; mono16 holds it x 257 and keeps the high byte (exactly it).
    mono = encoding.startswith("mono") or encoding.endswith("C1")
    want = np.repeat(frames[..., :1], 3, axis=3) if mono else frames
    np.testing.assert_array_equal(got, want)


def test_big_endian_16_bit_and_padded_rows_decode():
    types = typestore().types
    pixels = np.array([[0x1234, 0xABCD], [0x00FF, 0xFF00]], ">u2")  # [h=2, w=2], big endian
    rows = np.zeros((2, 6), np.uint8)  # step 6: 4 bytes of pixels and 2 of padding per row
    rows[:, :4] = pixels.view(np.uint8).reshape(2, 4)
    msg = types[IMAGE](header=image_message(np.zeros((1, 1, 3), np.uint8), 0, "").header, height=2, width=2,
                       encoding="mono16", is_bigendian=1, step=6, data=rows.reshape(-1))  # fmt: skip
    got = decode_image(msg, IMAGE, "test")
    np.testing.assert_array_equal(got[..., 0], [[0x12, 0xAB], [0x00, 0xFF]])  # the high bytes
    msg.data = rows.reshape(-1)[:-1]
    with pytest.raises(BagError, match="a 2x2 mono16 image needs 2 rows of at least 4 bytes, the message has step 6 "
                       "and 11 bytes"):  # fmt: skip
        decode_image(msg, IMAGE, "test")


def test_a_bag_with_several_image_topics_needs_a_topic_and_lists_them(frames, tmp_path):
    bag = write_bag(tmp_path / "bag", frames, extra={"/rear/image_raw": "image", "/chatter": "string"})
    with pytest.raises(BagError, match=r"has 2 image topics: /camera/image_raw \(6 messages\), /rear/image_raw "
                       r"\(6 messages\); choose one with --topic"):  # fmt: skip
        probe_bag(bag, None, 10.0)
    _, rear = _read(bag, "/rear/image_raw")
    np.testing.assert_array_equal(rear, 255 - frames)
    with pytest.raises(BagError, match=r"topic /chatter of .* carries std_msgs/msg/String, not images .*its image "
                       "topics: /camera/image_raw"):  # fmt: skip
        probe_bag(bag, "/chatter", 10.0)
    with pytest.raises(BagError, match="has no topic /front/image_raw; its image topics: /camera/image_raw"):
        probe_bag(bag, "/front/image_raw", 10.0)


def test_a_bag_without_image_topics_is_refused_with_its_topics(frames, tmp_path):
    bag = write_bag(tmp_path / "bag", frames, topic=None, extra={"/chatter": "string"})
    with pytest.raises(BagError, match=r"has no image topic \(sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage"
                       r"\); its topics: /chatter \(std_msgs/msg/String\)"):  # fmt: skip
        probe_bag(bag, None, 10.0)
    with pytest.raises(BagError, match=r"carries std_msgs/msg/String, not images .*; the bag has no image topic"):
        probe_bag(bag, "/chatter", 10.0)
    with pytest.raises(BagError, match=r"topic /camera/image_raw of .* has no messages"):
        probe_bag(write_bag(tmp_path / "empty", frames[:0]), None, 10.0)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_truncated_bag_is_one_clear_error(storage, frames, tmp_path):
    file = storage_file(write_bag(tmp_path / "bag", frames, storage=storage))
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    fix = "`mcap recover` rescues" if storage == "mcap" else "sqlite3's .recover rescues"
    with pytest.raises(BagError, match=f"cannot read the bag .*a truncated or corrupt recording; {fix}"):
        probe_bag(file, None, 10.0)


def test_a_wrong_encoding_names_it_and_what_is_supported(frames, tmp_path):
    with pytest.raises(BagError, match=r"message 0: image encoding 'yuv422' is not supported \(supported: rgb8, bgr8"):
        probe_bag(write_bag(tmp_path / "bag", frames, encoding="yuv422"), None, 10.0)
    with pytest.raises(BagError, match="compressed format 'compressedDepth' is not supported"):
        probe_bag(write_bag(tmp_path / "depth", frames, compressed="compressedDepth"), None, 10.0)


def test_a_faster_recording_is_sampled_by_its_stamps_not_thinned_at_random(frames, tmp_path):
    # 30 fps with jitter of up to 4 ms: at 10 fps every third frame, whatever the jitter.
    jitter = [0, 3, -2, 4, -4, 1]
    stamps = [START + round(i * NS / 30) + j * 1_000_000 for i, j in zip(range(6), jitter, strict=True)]
    video, got = _read(write_bag(tmp_path / "bag", frames, stamps=stamps))
    assert video.timeline.picks.tolist() == [0, 3] and video.timeline.notes() == []
    np.testing.assert_array_equal(got, frames[[0, 3]])
    assert video.timeline.times.tolist() == [stamps[0], stamps[0] + NS // 10]


def test_gaps_out_of_order_stamps_and_repeats_are_reported(frames, tmp_path, caplog):
    # Header stamps in s: 0, 0.1, 0.3 (recorded before 0.2), 0.2, then a 0.6 s hole, 0.9; recorded in that order.
    order = [0.0, 0.1, 0.3, 0.2, 0.9]
    stamps = [START + round(t * NS) for t in order]
    logged = [START + i * NS // 10 for i in range(5)]
    with caplog.at_level(logging.WARNING):
        video, got = _read(write_bag(tmp_path / "bag", frames[:5], stamps=stamps, log_times=logged))
    t = video.timeline
    assert t.out_of_order == 1 and t.gaps == ((0.3, 0.6),)
    # Grid 0 .. 0.9 s: the stamps' order (0, 0.1, 0.2, 0.3), then the nearest frame across the hole (0.6 s is
    # as near 0.3 as 0.9: the earlier wins).
    assert t.picks.tolist() == [0, 1, 3, 2, 2, 2, 2, 4, 4, 4] and t.repeated == 5
    np.testing.assert_array_equal(got, frames[[0, 1, 3, 2, 2, 2, 2, 4, 4, 4]])
    text = caplog.text
    assert "1 message stamped before a message recorded earlier" in text
    assert "1 gap in the stamps (0.60 s at 0.30 s)" in text and "5 sampling times of 10 repeat" in text


def test_zero_header_stamps_fall_back_to_the_recording_time(frames, tmp_path, caplog):
    logged = [START + i * NS // 5 for i in range(len(frames))]  # recorded at 5 fps, headers never filled in
    bag = write_bag(tmp_path / "bag", frames, stamps=[0] * len(frames), log_times=logged)
    with caplog.at_level(logging.WARNING):
        video = probe_bag(bag, None, 5.0)
    assert video.stamp_source == "log time" and "every header stamp is zero" in caplog.text
    assert video.timeline.picks.tolist() == list(range(len(frames)))
    assert video.timeline.times.tolist() == logged


def test_sampling_a_slower_recording_repeats_frames_at_the_grid():
    t = sample_stamps([0, 200_000_000, 400_000_000], 10.0)  # 5 fps at 10 fps
    assert t.picks.tolist() == [0, 0, 1, 1, 2] and t.repeated == 2 and t.gaps == ()
