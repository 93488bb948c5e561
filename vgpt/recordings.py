"""Recordings as data: video files and ROS 2 bags (one image topic each) behind one interface, so that
training and evaluation take either with the same rejection rules and counts.

A bag's frames are its topic sampled at `fps` from the header stamps (vgpt.bag); a video's are its
decoded frames. Probing a bag reads its stamps once and keeps the sampling (`BagVideo`), so reading
frames later does not re-derive it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vgpt.bag import BAG_SUFFIXES, BagVideo, is_bag, iter_bag_frames, probe_bag
from vgpt.default_model import Defaults
from vgpt.video import VIDEO_SUFFIXES, VideoError, VideoInfo, list_videos, probe, read_frames


def sampling_rate(fps: float | None) -> float:
    """The rate a bag is sampled at: `fps`, or the one the bundled model was trained at."""
    return Defaults().fps if fps is None else fps


def list_recordings(source: str | os.PathLike) -> list[Path]:
    """Videos and bags (.mcap, .db3 files and bag folders) from a folder (recursively: a bag folder counts
    once, not its storage files), a glob pattern, a list file or one path."""
    path = Path(source)
    if is_bag(path):
        return [path]
    if not path.is_dir() or any(c in str(source) for c in "*?["):
        return list_videos(source)
    bags = sorted(p.parent for p in path.rglob("metadata.yaml"))
    found = [*bags]
    for p in sorted(path.rglob("*")):
        inside_bag = any(b == p.parent or b in p.parents for b in bags)
        if not inside_bag and p.is_file() and p.suffix.lower() in (*VIDEO_SUFFIXES, *BAG_SUFFIXES):
            found.append(p)
    if not found:
        raise VideoError(f"{source}: no videos or bags found (looked for {', '.join((*VIDEO_SUFFIXES, *BAG_SUFFIXES))} "
                         "and bag folders with a metadata.yaml)")  # fmt: skip
    return sorted(found)


@functools.lru_cache(maxsize=64)
def _bag(path: Path, topic: str | None, fps: float) -> BagVideo:
    return probe_bag(path, topic, fps)


def probe_recording(path: str | os.PathLike, topic: str | None = None, fps: float | None = None) -> VideoInfo:
    """Frames, size and rate of a video, or of a bag's image topic sampled at `fps`."""
    path = Path(path)
    if not is_bag(path):
        return probe(path)
    video = _bag(path, topic, sampling_rate(fps))
    return VideoInfo(frames=video.frames, height=video.height, width=video.width, fps=video.timeline.fps)


def read_recording(path: str | os.PathLike, indices: Iterable[int] | None = None, topic: str | None = None,
                   fps: float | None = None) -> np.ndarray:  # fmt: skip
    """The frames at `indices` (all if None) as uint8 [F, H, W, 3], as `vgpt.video.read_frames`."""
    path = Path(path)
    if not is_bag(path):
        return read_frames(path, indices)
    video = _bag(path, topic, sampling_rate(fps))
    order = list(range(video.frames)) if indices is None else list(indices)
    beyond = [i for i in order if not 0 <= i < video.frames]
    if beyond or not order:
        raise VideoError(f"{path} {video.topic}: has {video.frames} frames at {video.timeline.fps:g} fps, needed "
                         f"frame {beyond[:1] or [0]}")  # fmt: skip
    return np.stack(list(iter_bag_frames(video, video.timeline.picks[order])))


def recording_key(path: Path, topic: str | None, fps: float | None) -> str:
    """What names a recording's frames in a cache: the path; for a bag also the topic and the rate."""
    if not is_bag(path):
        return str(path.resolve())
    return f"{path.resolve()}#{topic or ''}@{sampling_rate(fps):g}"
