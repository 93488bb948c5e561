import numpy as np
import pytest

from vgpt.synthetic import SceneConfig, render_video, write_dataset
from vgpt.video import VideoError, list_videos, probe, read_frames, write_video

pytest.importorskip("av")
pytest.importorskip("cv2")


def test_write_then_read_h264(tmp_path):
    frames = render_video(5, SceneConfig(frames=6))
    path = write_video(tmp_path / "clip.mp4", frames, fps=10)
    info = probe(path)
    assert (info.frames, info.height, info.width, info.fps) == (6, 64, 64, 10.0)
    back = read_frames(path)
    assert back.shape == frames.shape
    # H.264 at crf 18 is lossy: a mean absolute error of a few levels out of 255.
    assert np.abs(back.astype(float) - frames).mean() < 4
    assert np.array_equal(read_frames(path, [4, 1]), back[[4, 1]])
    assert not list(tmp_path.glob(".*")), "no temporary file is left behind"


def test_odd_sizes_are_padded_for_h264(tmp_path):
    frames = np.zeros((2, 33, 47, 3), np.uint8)
    info = probe(write_video(tmp_path / "odd.mp4", frames))
    assert (info.height, info.width) == (34, 48)


def test_bad_videos(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    (tmp_path / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    with pytest.raises(VideoError, match=r"cannot open|no decodable frame"):
        probe(tmp_path / "garbage.mp4")
    with pytest.raises(VideoError, match="cannot decode"):
        read_frames(tmp_path / "garbage.mp4")
    path = write_video(tmp_path / "short.mp4", np.zeros((3, 16, 16, 3), np.uint8))
    with pytest.raises(VideoError, match="has 3 decodable frames, needed frame \\[5\\]"):
        read_frames(path, [0, 5])
    with pytest.raises(VideoError, match=r"frames must be a non-empty uint8 \[F, H, W, 3\] array"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 16, 16), np.uint8))


def test_list_videos_forms(tmp_path):
    paths = write_dataset(tmp_path / "set", range(3), SceneConfig(frames=2))
    assert list_videos(tmp_path / "set") == paths
    assert list_videos(str(tmp_path / "set" / "scene-000000[01].mp4")) == paths[:2]
    listing = tmp_path / "list.txt"
    listing.write_text("# my clips\nset/scene-0000002.mp4\n\n")
    assert list_videos(listing) == [tmp_path / "set" / "scene-0000002.mp4"]
    with pytest.raises(VideoError, match="no such folder, file or glob pattern"):
        list_videos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no videos found"):
        list_videos(tmp_path / "empty")


def test_video_writer_streams_frames_and_leaves_nothing_when_aborted_or_empty(tmp_path):
    pytest.importorskip("av")
    from vgpt.video import VideoWriter

    frames = np.random.default_rng(0).integers(0, 255, (5, 20, 30, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "v.mp4", fps=5) as writer:
        for f in frames:
            writer.write(f)
        assert not (tmp_path / "v.mp4").exists(), "the final name appears only when the file is complete"
    assert probe(tmp_path / "v.mp4").frames == 5
    with VideoWriter(tmp_path / "empty.mp4"):
        pass
    with (
        pytest.raises(VideoError, match=r"frame of 31x20 px in a video of 30x20 px"),
        VideoWriter(tmp_path / "mixed.mp4") as writer,
    ):
        writer.write(frames[0])
        writer.write(np.zeros((20, 31, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
