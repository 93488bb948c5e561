"""vgpt-run never destroys a user's file, checks every write, and keeps what it wrote when the disk fills up."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import remount_read_only
from vgpt.cli.run import run_main
from vgpt.runtime import run as run_module
from vgpt.runtime.sources import FrameSource
from vgpt.video import probe, read_frames


def _run(*args):
    return CliRunner().invoke(run_main, list(args))


def _never_loaded(*args, **kwargs):
    raise AssertionError("the model was loaded before the output paths were checked")


def _dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _filled(disk: Path) -> Path:
    """`disk` with no byte left: a file written until the file system refuses."""
    with open(disk / "filler", "wb", buffering=0) as f, pytest.raises(OSError, match="No space left"):
        while True:
            f.write(b"\0" * 4096)
    return disk


def test_a_frames_dir_holding_other_files_is_refused_unless_forced(model_folder, clip_video, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "notes.txt").write_text("mine")
    common = ["--input", str(clip_video), "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"),
              "--clips", "1", "--frames-dir", str(frames)]  # fmt: skip
    result = _run(*common)
    assert result.exit_code == 1 and "holds 1 entry vgpt did not write (notes.txt)" in result.output
    assert "--force" in result.output and (frames / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "o.mp4").exists(), "refused before anything was written"
    result = _run(*common, "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in frames.iterdir()) == ["000000.png", "000001.png"]
    # A folder of vgpt's own frames is replaced without --force (the run before wrote it).
    result = _run(*common)
    assert result.exit_code == 0, result.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_frames_dir_dot_or_a_folder_holding_an_input_is_refused_even_forced(clip_video, tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "load_predictor", _never_loaded)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(clip_video, work / "in.mp4")
    monkeypatch.chdir(work)
    for args in (["--frames-dir", "."], ["--frames-dir", ".", "--force"], ["--frames-dir", str(tmp_path), "--force"]):
        result = _run("--input", "in.mp4", "--output", "o.mp4", *args)
        assert result.exit_code == 1 and "is the current folder or holds it" in result.output, result.output
        assert "Traceback" not in result.output
    result = _run("--input", str(work / "in.mp4"), "--output", str(tmp_path / "o.mp4"), "--frames-dir",
                  str(tmp_path / "sub" / ".."), "--force")  # fmt: skip
    assert result.exit_code == 1 and "holds" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and os.listdir(work) == ["in.mp4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "in.mp4"], "is the input"),
        (["--latents", "in.mp4"], "name a .npz file"),
        (["--latents", "z.txt"], "name a .npz file"),
        (["--sheet", "in.mp4"], "name a .png file"),
        (["--live", "--stats", "in.mp4"], "is the input"),
        (["--live", "--stats", "o.mp4"], "--output and --stats both name"),
    ],
)
def test_an_output_that_is_an_input_or_another_output_is_refused(args, message, clip_video, tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "load_predictor", _never_loaded)
    video = tmp_path / "in.mp4"
    shutil.copy(clip_video, video)
    before = video.read_bytes()
    paths = [str(tmp_path / a) if not a.startswith("--") else a for a in args]
    result = _run("--input", str(video), "--output", str(tmp_path / "o.mp4"), *paths)
    assert result.exit_code == 1 and message in result.output, result.output
    assert video.read_bytes() == before and not (tmp_path / "o.mp4").exists()


def test_outputs_under_a_missing_or_unwritable_folder_are_refused_before_the_model_loads(clip_video, tmp_path,
                                                                                        monkeypatch):  # fmt: skip
    monkeypatch.setattr(run_module, "load_predictor", _never_loaded)
    missing = tmp_path / "nonexistent" / "deeper"
    for option, name in (("--output", "x.mp4"), ("--sheet", "s.png"), ("--latents", "z.npz"), ("--frames-dir", "f")):
        result = _run("--input", str(clip_video), "--output", str(tmp_path / "o.mp4"), option, str(missing / name))
        assert result.exit_code == 1 and f"the folder {missing} does not exist; create it first" in result.output
    assert not (tmp_path / "nonexistent").exists(), "no folder is made that the user did not ask for"
    if Path("/sys/kernel").is_dir():  # a folder that takes no new files, even for root
        result = _run("--input", str(clip_video), "--output", "/sys/kernel/x.mp4")
        assert result.exit_code == 1 and "/sys/kernel does not take new files" in result.output, result.output


def test_png_frames_on_a_full_disk_are_one_error_and_never_empty_files(model_folder, clip_video, tmp_path,
                                                                       small_disk):  # fmt: skip
    """cv2.imwrite reports success for a PNG it could not write (0 bytes on a full disk); every write is
    checked now, and a full disk is one clear error."""
    from vgpt.runtime.output import PngWriter

    disk = small_disk(64)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # ~12 KB as PNG
    writer = PngWriter(disk / "frames")
    with pytest.raises(OSError, match="No space left"):
        for _ in range(100):
            writer.write(noise)
    written = sorted((disk / "frames").iterdir()) if (disk / "frames").exists() else []
    staged = [p for p in disk.iterdir() if p.name.startswith(".frames.")]
    assert staged and writer.frames >= 1
    assert all(p.stat().st_size > 0 for p in staged[0].iterdir()), "no empty PNG among the written ones"
    assert len(list(staged[0].iterdir())) == writer.frames and not written
    writer.abort()
    assert list(disk.iterdir()) == []
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"),
                  "--clips", "1", "--frames-dir", str(_filled(small_disk(16)) / "frames"))  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "No space left on device: free some space or write somewhere else" in result.output
    assert result.output.count("Error:") == 1


def test_latents_on_a_full_disk_are_one_error(model_folder, clip_video, tmp_path, small_disk):
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"),
                  "--clips", "1", "--latents", str(_filled(small_disk(16)) / "z.npz"))  # fmt: skip
    assert result.exit_code == 1 and "No space left on device" in result.output and "Traceback" not in result.output


def test_a_live_run_that_fills_the_disk_keeps_the_recording(model_folder, small_disk, monkeypatch):
    """Before: the whole recording was deleted. Now the run stops, the video keeps every complete fragment
    (a fragment a second) and plays, the PNG frames and the latents of every whole clip written so far
    stay, exit 1 with the reason."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)  # noise: hard to compress, fills the disk
    monkeypatch.setattr(run_module, "open_source", lambda spec: FrameSource("camera 0", 10.0, True, iter(frames)))
    disk = small_disk(1024)
    out = disk / "live.mp4"
    result = _run("--input", "0", "--engine", str(model_folder), "--output", str(out), "--live", "--queue-size", "400",
                  "--frames-dir", str(disk / "png"), "--latents", str(disk / "z.npz"))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "stopped writing" in result.output and "No space left on device" in result.output, result.output
    assert "Traceback" not in result.output
    kept = read_frames(out)
    assert len(kept) >= 10 and probe(out).frames == len(kept), "a playable file of whole fragments"
    pngs = sorted((disk / "png").iterdir())
    assert pngs and all(p.stat().st_size > 0 for p in pngs)
    latents = np.load(disk / "z.npz")["prediction"]
    assert len(latents) >= 2 and len(latents) % 2 == 0 and latents.shape[1:] == (4, 4, 4)  # whole clips of G = 2
    assert not [p for p in disk.iterdir() if p.name.startswith(".")], "no temporary is left"


def test_the_next_run_removes_what_a_killed_run_left(model_folder, clip_video, tmp_path):
    """vgpt-run killed mid-video leaves its temporary (`.o.mp4.PID-....mp4.tmp`); the next run writing that
    output removes it, and never a temporary of a run that is still going."""
    dead = tmp_path / f".o.mp4.{_dead_pid()}-abcdefgh.mp4.tmp"
    dead.write_bytes(b"half a video")
    running = tmp_path / f".o.mp4.{os.getppid()}-abcdefgh.mp4.tmp"
    running.write_bytes(b"another run's video")
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"),
                  "--clips", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not dead.exists() and running.exists()


def test_offline_memory_does_not_grow_with_the_clips(model_folder, tmp_path, monkeypatch):
    """A 1080p input peaked at 1.26 GB with --clips 9 and 2.73 GB with --clips 21 (full-size float copies of
    every frame fragmenting the heap, the side-by-side video assembled whole). Counted, not timed: full-size
    frames converted to float (only the history's, one at a time) and side-by-side frames alive at once."""
    import gc
    import weakref

    import vgpt.frames
    from vgpt.runtime import output as output_module

    full_size = []
    as_tensor = vgpt.frames._as_tensor

    def counting(frames):
        frames = np.asarray(frames)
        if frames.shape[-3:-1] == (240, 320):
            full_size.append(len(frames))
        return as_tensor(frames)

    composed, alive = [], []
    side_by_side = output_module.side_by_side

    def tracked(*args):
        frame = side_by_side(*args)
        composed.append(weakref.ref(frame))
        return frame

    def write(self, frame):
        gc.collect()
        alive.append(sum(ref() is not None for ref in composed))

    monkeypatch.setattr(vgpt.frames, "_as_tensor", counting)
    monkeypatch.setattr(output_module, "side_by_side", tracked)
    monkeypatch.setattr(output_module.VideoWriter, "write", write)
    monkeypatch.setattr(output_module.VideoWriter, "close", lambda self: None)
    frames = (np.full((240, 320, 3), i, np.uint8) for i in range(40))
    monkeypatch.setattr(run_module, "open_source", lambda spec: FrameSource("big", 10.0, False, frames))
    result = _run("--input", "big", "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"), "--clips", "9")
    assert result.exit_code == 0, result.output
    assert full_size == [1, 1, 1], "the 3 history frames, one at a time; display frames are fitted as uint8"
    assert len(alive) == 3 + 9 * 2 and max(alive) <= 2, f"{max(alive)} side-by-side frames held at once"


def test_storage_errors_leave_no_traceback_in_training(tmp_path, monkeypatch):
    """ENOSPC while training writes a checkpoint: one Error line (the same handler as every command's)."""
    import errno

    from vgpt.cli import train as train_cli

    def full(config):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "checkpoints"))

    monkeypatch.setattr("vgpt.training.loop.train", full)
    result = CliRunner().invoke(train_cli.train_main, ["--config", "bundled", "--out", str(tmp_path / "run"),
                                                        "--codec", "x"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert re.search(r"Error: .*checkpoints: No space left on device: free some space", result.output)
    assert "Traceback" not in result.output


def test_a_read_only_cache_is_used_for_reading(model_folder, clip_video, tmp_path, small_disk, monkeypatch):
    cache = small_disk(16384)
    monkeypatch.setenv("VGPT_CACHE", str(cache))
    common = ["--input", str(clip_video), "--engine", str(model_folder), "--clips", "1"]
    assert _run(*common, "--output", str(tmp_path / "a.mp4")).exit_code == 0
    remount_read_only(cache)
    result = _run(*common, "--output", str(tmp_path / "b.mp4"))
    assert result.exit_code == 0, result.output
    assert probe(tmp_path / "b.mp4").frames == probe(tmp_path / "a.mp4").frames
    # Another model's export cannot be made there: one error that says what to do.
    result = _run(*common, "--output", str(tmp_path / "c.mp4"), "--steps", "2")
    assert result.exit_code == 1 and "cannot be written" in result.output and "VGPT_CACHE" in result.output
