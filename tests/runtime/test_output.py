import numpy as np
import pytest

from vgpt.runtime.output import LatentWriter, Outputs, compose, side_by_side


def test_latent_writer_spools_clips_into_one_array(tmp_path):
    clips = [np.random.default_rng(i).standard_normal((3, 4, 8, 8)).astype(np.float32) for i in range(4)]
    writer = LatentWriter(tmp_path / "z.npz")
    for clip in clips:
        writer.write(clip)
    assert not (tmp_path / "z.npz").exists()
    writer.close()
    np.testing.assert_array_equal(np.load(tmp_path / "z.npz")["prediction"], np.concatenate(clips))
    with pytest.raises(ValueError, match=r"latents of shape \(4, 4, 4\) after \(4, 8, 8\)"):
        writer = LatentWriter(tmp_path / "y.npz")
        writer.write(clips[0])
        writer.write(np.zeros((1, 4, 4, 4), np.float32))


def test_outputs_abort_on_an_error_and_leave_nothing(tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(RuntimeError, match="boom"), Outputs(str(tmp_path / "v.mp4"), str(tmp_path / "png"),
                                                            str(tmp_path / "z.npz"), 10.0) as outputs:  # fmt: skip
        outputs.show([side_by_side(frame, frame, "a", "b")])
        outputs.predicted(frame[None], np.zeros((1, 4, 2, 2), np.float32))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with Outputs(str(tmp_path / "v.mp4"), str(tmp_path / "png"), str(tmp_path / "z.npz"), 10.0) as outputs:
        outputs.show(compose([frame] * 2, 2, np.stack([frame] * 3)))
        outputs.predicted(np.stack([frame] * 3), np.zeros((3, 4, 2, 2), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["png", "v.mp4", "z.npz"]
    assert len(list((tmp_path / "png").iterdir())) == 3


def test_compose_shows_context_then_true_future_or_a_blank_beside_the_prediction():
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (50, 100, 150)]
    video = list(compose(frames, 2, np.full((2, 8, 8, 3), 200, np.uint8)))
    half = video[0].shape[1] // 2
    left = [int(np.median(v[:, :half])) for v in video]
    right = [int(np.median(v[:, half:])) for v in video]
    # Left: what the camera saw (2 context frames, 1 true future frame, then a blank: no input there);
    # right: the context, then the prediction. Medians ignore the labels drawn over the panels.
    assert left == [50, 100, 150, 0] and right == [50, 100, 200, 200]


def test_latent_writer_on_a_full_disk_keeps_every_whole_clip(small_disk):
    """The archive is finished in place (no second copy of the data): a full disk keeps the clips written."""
    import zipfile

    path = small_disk(40) / "z.npz"
    writer, written = LatentWriter(path), []
    with pytest.raises(OSError, match="No space left"):
        for i in range(100):
            clip = np.random.default_rng(i).standard_normal((4, 8, 8, 8)).astype(np.float32)  # 8 KiB a clip
            writer.write(clip)
            written.append(clip)
    assert writer.close() == path
    assert zipfile.ZipFile(path).testzip() is None  # the CRC covers what is there
    np.testing.assert_array_equal(np.load(path)["prediction"], np.concatenate(written))
    assert len(written) >= 3 and [p.name for p in path.parent.iterdir()] == ["z.npz"]


def test_a_labels_shadow_stays_under_its_text():
    # The shadow was drawn with a thicker stroke, whose glyph advances are wider: by the end of
    # "observed (future)" it ran a few pixels past the text ("observed (future))").
    grey = np.full((64, 64, 3), 120, np.uint8)
    panel = side_by_side(grey, grey, "observed (future)", "predicted +1")[:40, :256]  # [H, W, 3] left label
    text_columns = np.flatnonzero((panel.min(axis=2) > 200).any(axis=0))
    shadow_columns = np.flatnonzero((panel.max(axis=2) < 40).any(axis=0))
    assert len(text_columns) and len(shadow_columns)
    # A one-pixel shadow each way; anti-aliasing may darken one more pixel.
    assert shadow_columns.max() <= text_columns.max() + 2 and shadow_columns.min() >= text_columns.min() - 2
