"""Video files in and out (optional extra `video`: OpenCV and PyAV, imported lazily).

Reading uses OpenCV and falls back to PyAV for what OpenCV cannot decode; writing uses PyAV's H.264
(OpenCV's wheels cannot write it) and falls back to OpenCV's mp4v. Frames are uint8 RGB [F, H, W, 3].
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgpt.atomic import StagedWriter, atomic_path
from vgpt.errors import VgptError, is_storage_error

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class VideoError(VgptError, RuntimeError):
    """A video that cannot be opened, decoded or written."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    height: int
    width: int
    fps: float


def opencv():
    """OpenCV, quiet: its own warnings and its FFmpeg's messages ("moov atom not found", "can't open
    camera by index") would print before vgpt's one error line that says the same in the user's terms.
    A user's OPENCV_FFMPEG_LOGLEVEL is kept (FFmpeg's level, read at each open; -8 is quiet)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2
    except ImportError as err:
        raise ImportError("reading video needs OpenCV: pip install 'vgpt[video]'") from err
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


def _av():
    try:
        import av
    except ImportError as err:
        raise ImportError("writing H.264 needs PyAV: pip install 'vgpt[video]'") from err
    return av


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"video {path} does not exist")
    if not path.is_file():
        raise VideoError(f"video {path} is not a file")


def iter_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode frames one by one (uint8 RGB [H, W, 3]); OpenCV first, PyAV if OpenCV yields nothing."""
    path = Path(path)
    _check_exists(path)
    cv2 = opencv()
    cap = cv2.VideoCapture(str(path))
    produced = 0
    try:
        while cap.isOpened():
            ok, bgr = cap.read()
            if not ok:
                break
            produced += 1
            yield bgr[:, :, ::-1].copy()
    finally:
        cap.release()
    if produced:
        return
    try:
        av = _av()
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except ImportError:
        raise VideoError(f"OpenCV cannot decode {path}, and PyAV is not installed to try") from None
    except Exception as err:  # PyAV raises FFmpeg errors of many types for broken files
        raise VideoError(f"cannot decode {path}: {err}") from err


def read_frames(path: str | os.PathLike, indices: Iterable[int] | None = None) -> np.ndarray:
    """The frames at `indices` (all frames if None) as uint8 [F, H, W, 3], decoding sequentially."""
    wanted = None if indices is None else sorted(set(indices))
    last = None if wanted is None else wanted[-1]
    keep = None if wanted is None else set(wanted)
    frames: dict[int, np.ndarray] = {}
    decoded = 0
    for i, frame in enumerate(iter_frames(path)):
        decoded = i + 1
        if keep is None or i in keep:
            frames[i] = frame
        if last is not None and i >= last:
            break
    order = list(frames) if indices is None else list(indices)
    missing = [i for i in order if i not in frames]
    if missing or not order:
        raise VideoError(f"{path}: has {decoded} decodable frames, needed frame {missing[:1] or [0]}")
    return np.stack([frames[i] for i in order])


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count (counted by decoding when the container does not say), size and rate."""
    path = Path(path)
    _check_exists(path)
    cv2 = opencv()
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot open {path} as a video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, first = cap.read()
        if not ok:
            raise VideoError(f"{path}: no decodable frame")
        h, w = first.shape[:2]
    finally:
        cap.release()
    if count <= 0:
        count = sum(1 for _ in iter_frames(path))
    return VideoInfo(frames=count, height=h, width=w, fps=fps)


def write_video(path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray], fps: float = 10.0,
                crf: int = 18) -> Path:  # fmt: skip
    """Write uint8 RGB frames as H.264 (PyAV; OpenCV mp4v as fallback), atomically."""
    path = Path(path)
    frames = np.asarray(list(frames) if not isinstance(frames, np.ndarray) else frames)
    if frames.ndim != 4 or not len(frames):
        raise VideoError(f"frames must be a non-empty uint8 [F, H, W, 3] array, got {frames.shape} {frames.dtype}")
    with VideoWriter(path, fps, crf) as writer:
        for frame in frames:
            writer.write(frame)
    return path


class VideoWriter(StagedWriter):
    """Encode frames as they come (bounded memory whatever the length) into a temporary sibling of
    `path`; `close()` finishes the file and renames it into place, `abort()` removes it. As a context
    manager it closes on success and aborts on an exception. A writer that got no frame leaves nothing.

        with VideoWriter("out.mp4", fps=10) as writer:
            for frame in frames:          # uint8 RGB [H, W, 3], all of one size
                writer.write(frame)

    `fragmented` (for recordings: vgpt-run --live) writes a fragmented MP4, a fragment a second, which
    plays however it ends: when the disk fills up, `close()` keeps the complete fragments (the file cut
    after the last of them) instead of losing the recording.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 10.0, crf: int = 18, fragmented: bool = False) -> None:
        self.path, self.fps, self.crf, self.fragmented = Path(path), fps, crf, fragmented
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._atomic = self._tmp = self._sink = None
        self._full: OSError | None = None  # the storage error that stopped a fragmented recording

    def _open(self, height: int, width: int) -> None:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            self._sink = _PyAvSink(str(self._tmp), height, width, self.fps, self.crf, self.fragmented)
        except ImportError:
            log.warning("PyAV is not installed: writing %s as mp4v through OpenCV", self.path)
            self._sink = _OpenCvSink(str(self._tmp), height, width, self.fps)
        except BaseException:
            self.abort()
            raise

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise VideoError(f"a frame must be uint8 [H, W, 3], got {frame.shape} {frame.dtype}")
        if self._size is None:
            self._size = frame.shape[:2]
            self._open(*self._size)
        elif frame.shape[:2] != self._size:
            raise VideoError(f"{self.path}: frame of {frame.shape[1]}x{frame.shape[0]} px in a video of "
                             f"{self._size[1]}x{self._size[0]} px")  # fmt: skip
        if self._full is not None:
            raise self._full
        try:
            self._sink.write(frame)
        except BaseException as err:
            if self._keeps(self._sink, err):
                self._full = err  # close() keeps what reached the disk
            else:
                self.abort()
            raise
        self.frames += 1

    def _keeps(self, sink, err: BaseException) -> bool:
        """A fragmented recording that the storage stopped keeps what reached the disk."""
        return self.fragmented and isinstance(sink, _PyAvSink) and is_storage_error(err)

    def close(self) -> Path | None:
        """Finish the file (flush the encoder, write the index) and move it into place; the path, or
        None when no frame was written."""
        if self._sink is None:
            return None
        sink, atomic = self._sink, self._atomic
        self._sink = self._atomic = None
        try:
            sink.close()
            if self._full is not None:
                raise self._full
        except BaseException as err:
            if not (self._keeps(sink, err) and _cut_after_last_fragment(self._tmp)):
                atomic.__exit__(type(err), err, err.__traceback__)
                raise
            log.warning("%s: %s; kept the recording up to its last complete fragment", self.path, err.strerror)
        atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; nothing appears under the final name."""
        sink, atomic = self._sink, self._atomic
        self._sink = self._atomic = None
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.close()
        if atomic is not None:
            err = VideoError("aborted")
            atomic.__exit__(VideoError, err, None)


def _cut_after_last_fragment(path: Path) -> bool:
    """Truncate a fragmented MP4 after its last complete fragment (walking its top-level boxes: 32-bit
    size, 4-byte type); whether a playable file with at least one fragment is left."""
    size = path.stat().st_size
    end = kept = 0
    with open(path, "rb") as f:
        while end + 8 <= size:
            f.seek(end)
            box_size, kind = int.from_bytes(f.read(4), "big"), f.read(4)
            if box_size < 8 or end + box_size > size:
                break
            end += box_size
            if kind == b"mdat":  # a fragment's samples follow its moof: complete once its mdat is
                kept = end
    if not kept:
        return False
    os.truncate(path, kept)  # frees space, never needs any
    return True


class _PyAvSink:
    def __init__(self, path: str, height: int, width: int, fps: float, crf: int, fragmented: bool = False) -> None:
        av = _av()
        from fractions import Fraction

        # yuv420p halves the chroma planes, so H.264 needs even sizes: pad by one pixel where odd.
        self._pad = ((0, height % 2), (0, width % 2), (0, 0))
        # Fragmented: the index is written ahead (empty_moov) and a fragment (moof + mdat) about every second.
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "1000000"}
        self._container = av.open(path, mode="w", format="mp4", options=options if fragmented else {})
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "medium"}
        self._frame = av.VideoFrame

    def write(self, rgb: np.ndarray) -> None:
        if any(p[1] for p in self._pad):
            rgb = np.pad(rgb, self._pad, mode="edge")
        frame = self._frame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()


class _OpenCvSink:
    def __init__(self, path: str, height: int, width: int, fps: float) -> None:
        cv2 = opencv()
        self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self._writer.isOpened():
            raise VideoError(f"OpenCV cannot open {path} for writing")

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))

    def close(self) -> None:
        self._writer.release()


def list_videos(source: str | os.PathLike) -> list[Path]:
    """Videos from a folder (recursively), a glob pattern, or a text file listing one path a line."""
    text = str(source)
    path = Path(text)
    if any(c in text for c in "*?["):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True))
    elif path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    elif path.is_file() and path.suffix.lower() in (".txt", ".lst", ".list"):
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        found = [path.parent / ln for ln in lines if ln and not ln.startswith("#")]  # absolute ln stays absolute
    elif path.is_file():
        found = [path]
    else:
        raise VideoError(f"{source}: no such folder, file or glob pattern")
    if not found:
        raise VideoError(f"{source}: no videos found (looked for {', '.join(VIDEO_SUFFIXES)})")
    return found
