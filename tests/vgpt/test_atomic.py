"""Every output is written atomically and with the usual permissions (not mkstemp's 0600)."""

import os

import numpy as np
import pytest

from vgpt.atomic import atomic_dir, atomic_file, atomic_path


def _usual(path):
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if path.is_dir() else 0o666) & ~umask


def _mode(path):
    return path.stat().st_mode & 0o777


def test_files_and_folders_get_the_usual_permissions(tmp_path):
    with atomic_file(tmp_path / "a.bin") as f:
        f.write(b"x")
    with atomic_dir(tmp_path / "d") as d, atomic_file(d / "inner.json", "w") as f:
        f.write("{}")
    with atomic_path(tmp_path / "p.dat") as p:
        p.write_bytes(b"y")
    for path in (tmp_path / "a.bin", tmp_path / "d", tmp_path / "d" / "inner.json", tmp_path / "p.dat"):
        assert _mode(path) == _usual(path), path


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a.bin") as f:
        f.write(b"half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_videos_and_png_folders_are_readable(tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from vgpt.runtime.output import write_pngs
    from vgpt.video import write_video

    frames = np.zeros((2, 16, 16, 3), np.uint8)
    video = write_video(tmp_path / "v.mp4", frames)
    pngs = write_pngs(tmp_path / "png", frames)
    for path in (video, pngs, *pngs.iterdir()):
        assert _mode(path) == _usual(path), path
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_folder_cannot_replace_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"), atomic_dir(tmp_path / "f", overwrite=True):
        pass


def test_the_next_writer_removes_what_a_killed_writer_left_and_nothing_of_a_running_one(tmp_path):
    import signal
    import subprocess
    import sys

    code = ("import os, signal, sys\nfrom vgpt.atomic import atomic_dir, atomic_path\n"
            "with atomic_dir(sys.argv[1]) as d, atomic_path(sys.argv[2]) as p:\n"
            "    (d / 'x').write_text('half'); p.write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d"), str(tmp_path / "f.bin")])
    assert done.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(name.endswith(".tmp") for name in left), left
    running = tmp_path / f".d.{os.getppid()}-abcdefgh.tmp"  # a writer that is still going
    running.mkdir()
    with atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("whole")
    with atomic_file(tmp_path / "f.bin") as f:
        f.write(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["d", "f.bin", running.name])


def test_the_current_folder_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("x")
    for path in (".", tmp_path, tmp_path / "a" / ".."):
        with pytest.raises(IsADirectoryError, match="current folder"), atomic_dir(path, overwrite=True):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
