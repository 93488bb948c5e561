"""Frame sources for vgpt-run: a video file, a camera index, a stream URL, a folder of images or a ROS 2 bag's
image topic (vgpt.bag)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgpt.bag import BagVideo, iter_bag_frames, probe_bag
from vgpt.video import VideoError, iter_frames, opencv, probe

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class SourceError(VideoError):
    """A source that cannot be opened or read."""


class SourceDisconnected(SourceError):
    """A live source (camera, stream) that stopped delivering frames."""


@dataclass
class FrameSource:
    description: str
    fps: float
    live: bool  # a camera or stream: it ends only by disconnecting
    _frames: Iterator[np.ndarray]
    frames: int | None = None  # how many it holds, where known before reading (files, image folders)
    stamps: np.ndarray | None = None  # int64 ns of each frame, where recorded (bags); else from the rate or clock
    bag: BagVideo | None = None  # the bag topic it reads

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._frames

    def timed(self) -> Iterator[tuple[int, np.ndarray]]:
        """(stamp in ns, frame): a bag's sampled stamps; a file's or folder's frame times from 0 at its
        rate; a camera's or stream's wall-clock time at capture."""
        try:
            for i, frame in enumerate(self._frames):
                if self.stamps is not None:
                    stamp = int(self.stamps[i])
                else:
                    stamp = time.time_ns() if self.live else round(i * 1e9 / self.fps)
                yield stamp, frame
        finally:
            with contextlib.suppress(AttributeError, ValueError, RuntimeError):
                self._frames.close()  # a generator source releases its camera


def open_bag_source(path: str, topic: str | None, fps: float) -> FrameSource:
    """A bag's image topic sampled at `fps` from its header stamps (vgpt.bag.probe_bag)."""
    video = probe_bag(path, topic, fps)
    return FrameSource(video.description, fps, False, iter_bag_frames(video), video.frames, video.timeline.times,
                       video)  # fmt: skip


def paced(frames: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
    """Stamped frames handed on at their recorded pace (`--realtime`): each when as much wall-clock time
    has passed since the first as its stamp is after the first's."""
    start = first = None
    for stamp, frame in frames:
        if first is None:
            start, first = time.monotonic(), stamp
        wait = start + (stamp - first) / 1e9 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        yield stamp, frame


def open_source(spec: str) -> FrameSource:
    if spec.isdigit():
        return _capture(int(spec), f"camera {spec}")
    if "://" in spec:
        return _capture(spec, f"stream {spec}")
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"input {spec} does not exist (give a video file, a folder of images, a camera index "
                          "or a stream URL)")  # fmt: skip
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SourceError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return FrameSource(f"{len(images)} images in {path}", 10.0, False, _images(images), len(images))
    info = probe(path)  # raises VideoError for unreadable or corrupt files
    return FrameSource(f"{path} ({info.frames} frames, {info.width}x{info.height})", info.fps or 10.0, False,
                       iter_frames(path), info.frames or None)  # fmt: skip


def _images(paths: list[Path]) -> Iterator[np.ndarray]:
    cv2 = opencv()

    first = None
    for p in paths:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"cannot read image {p}")
        if first is None:
            first = p, bgr.shape[:2]
        elif bgr.shape[:2] != first[1]:
            (h, w), (h0, w0) = bgr.shape[:2], first[1]
            raise SourceError(f"image {p} is {w}x{h} px but {first[0].name} is {w0}x{h0} px: the frames of a folder "
                              "must all have one size")  # fmt: skip
        yield bgr[:, :, ::-1].copy()


def _capture(target, description: str) -> FrameSource:
    cv2 = opencv()

    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        raise SourceError(f"cannot open {description}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    raise SourceDisconnected(f"{description} stopped delivering frames")
                yield bgr[:, :, ::-1].copy()
        finally:
            cap.release()

    return FrameSource(description, fps, True, frames())


class DropOldestQueue:
    """A bounded hand-off from a capture thread to the predictor: when full, the oldest frame is
    dropped, so the predictor always works on the newest frames and never stalls the camera.
    `drop=False` (a recording read as fast as it is consumed): the reader waits for room instead, and
    every frame reaches the predictor."""

    _END = object()

    def __init__(self, source, maxsize: int, drop: bool = True) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._drop = drop
        self.dropped = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,), name="vgpt-capture", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop capturing and join the capture thread (a camera read in progress finishes first), so that
        no thread is left running while the interpreter exits."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a capture thread waiting to hand over a frame
                self._q.get_nowait()
        self._thread.join(timeout)

    def __enter__(self) -> DropOldestQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _put(self, item) -> None:
        while not self._drop and not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._q.put(item, timeout=0.1)
                return
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _fill(self, source) -> None:
        try:
            for frame in source:
                if self._stop.is_set():
                    break
                self._put(frame)
        except BaseException as err:  # handed to the consumer, which re-raises it after its last frame
            self.error = err
        finally:
            with contextlib.suppress(AttributeError, ValueError, RuntimeError):
                source.close()  # a generator source releases its camera
        while True:  # the end marker waits for room (no frame is dropped for it) unless closing
            try:
                self._q.put(self._END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    self._put(self._END)
                    return

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            item = self._q.get()
            if item is self._END:
                if self.error is not None:
                    raise self.error
                return
            yield item
