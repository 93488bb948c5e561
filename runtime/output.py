"""What vgpt-run writes: a side-by-side video, optional PNG frames and latents, all atomically; and the
stamped streams (the MCAP output, the live view, the window) that take observed and predicted frames.

`Outputs` streams them as frames come (a live run of any length holds one clip at a time): each goes
to a temporary sibling of its path and is moved into place by `close()`; `abort()` leaves nothing.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from vgpt.atomic import StagedWriter, atomic_dir, atomic_path
from vgpt.errors import is_storage_error
from vgpt.video import VideoWriter


def panel_scale(height: int) -> int:
    """Small frames are enlarged (nearest neighbour) so that a person can see them and read labels."""
    return max(1, 256 // height)


def _label(img: np.ndarray, text: str, colour: tuple[int, int, int]) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(img)
    scale = max(0.35, img.shape[0] / 512)
    x, y = 4, int(14 * scale / 0.35)
    # The shadow is the same thin text moved by one pixel each way: a thicker stroke would advance each
    # glyph further (OpenCV's Hershey text adds the thickness to every advance) and drift off the text.
    for dx, dy in ((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy):
        cv2.putText(out, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, left_label: str, right_label: str) -> np.ndarray:
    """Two uint8 [H, W, 3] frames, enlarged and labelled, with a 4 px divider."""
    s = panel_scale(left.shape[0])
    big = [np.repeat(np.repeat(f, s, axis=0), s, axis=1) for f in (left, right)]
    divider = np.full((big[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([_label(big[0], left_label, (255, 255, 255)), divider,
                           _label(big[1], right_label, (255, 220, 80))], axis=1)  # fmt: skip


def compose(observed: list[np.ndarray], context: int, predicted: np.ndarray) -> Iterator[np.ndarray]:
    """Frames of the output video, one at a time (the writer encodes each before the next is made, so
    the video is never held whole): left, what the camera saw (context, then the real future where the
    input has it); right, the context and then the prediction."""
    total = context + len(predicted)
    blank = np.zeros_like(predicted[0])
    for t in range(total):
        left = observed[t] if t < len(observed) else blank
        left_label = "observed" if t < context else ("observed (future)" if t < len(observed) else "no input")
        right = observed[t] if t < context else predicted[t - context]
        right_label = "context" if t < context else f"predicted +{t - context + 1}"
        yield side_by_side(left, right, left_label, right_label)


def write_pngs(folder: str | Path, frames: np.ndarray) -> Path:
    """Write frames as 000000.png ... into `folder`, built in a temporary sibling and renamed."""
    with PngWriter(folder) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(folder)


def _write_fully(f, data: bytes) -> None:
    """Write all of `data` to an unbuffered file, whose writes may be short."""
    view = memoryview(data)
    while view:
        view = view[f.write(view) :]


class LatentWriter(StagedWriter):
    """Latent clips appended as they come, saved as one array `name` [N, C, h, w] in an .npz that
    `np.load` reads. The archive is built in place in a temporary sibling (memory stays at one clip):
    room for the ZIP entry's header and the array's header is left at the front, the clips follow, and
    `close()` fills in the headers (then known: the clip count, the CRC) and appends the ZIP directory.
    Closing needs no second copy of the data, so a run whose disk filled up still finishes the latents
    of every whole clip written before (a failed clip is cut off again, which frees the space the
    directory's 178 bytes need)."""

    _HEADER = 256  # bytes of the .npy header (magic, version, length, the dict padded with spaces)

    def __init__(self, path: str | Path, name: str = "prediction") -> None:
        self.path, self.member = Path(path), f"{name}.npy".encode()
        self._atomic = self._file = None
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self._end = 0  # bytes of whole clips in the file

    @property
    def _start(self) -> int:  # where the .npy header starts: after the ZIP entry's local header
        return 30 + len(self.member) + 20

    def write(self, latents: np.ndarray) -> None:
        latents = np.ascontiguousarray(latents, np.float32)
        if self._shape is None:
            self._shape = latents.shape[1:]
            self._atomic = atomic_path(self.path)
            self._file = open(self._atomic.__enter__(), "r+b", buffering=0)  # every write reaches the file
            self._write_all(bytes(self._start + self._HEADER))
        elif latents.shape[1:] != self._shape:
            raise ValueError(f"latents of shape {latents.shape[1:]} after {self._shape}")
        self._write_all(latents.tobytes())
        self._count += len(latents)
        self._end = self._file.tell()

    def _write_all(self, data: bytes) -> None:
        try:
            _write_fully(self._file, data)
        except OSError:
            self._file.truncate(self._end)  # the file holds whole clips only
            self._file.seek(self._end)
            raise

    def close(self) -> Path | None:
        if self._file is None:
            return None
        f, atomic = self._file, self._atomic
        self._file = self._atomic = None
        try:
            with f:
                self._finish(f)
        except BaseException as err:
            atomic.__exit__(type(err), err, err.__traceback__)
            raise
        atomic.__exit__(None, None, None)
        return self.path

    def _finish(self, f) -> None:
        f.truncate(self._end)
        shape = (self._count, *self._shape)
        text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
        header = b"\x93NUMPY\x02\x00" + struct.pack("<I", self._HEADER - 12) + text.ljust(self._HEADER - 13).encode()
        header += b"\n"
        size = self._end - self._start  # the member: the .npy header and the data
        crc = zlib.crc32(header)
        f.seek(self._start + self._HEADER)
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
        # ZIP64 throughout (sizes beyond 4 GB are fine): stored, no compression, one entry at offset 0.
        dos_time, dos_date = 0, (2024 - 1980) << 9 | 1 << 5 | 1
        sizes = struct.pack("<HHQQ", 1, 16, size, size)  # the zip64 extra field: sizes beyond 32 bits
        local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 45, 0, 0, 0, dos_time, dos_date, crc, 0xFFFFFFFF,
                            0xFFFFFFFF, len(self.member), len(sizes))  # fmt: skip
        f.seek(0)
        _write_fully(f, local + self.member + sizes + header)
        directory = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 45, 3, 45, 0, 0, 0, dos_time, dos_date, crc,
                                0xFFFFFFFF, 0xFFFFFFFF, len(self.member), len(sizes), 0, 0, 0, 0o644 << 16,
                                0) + self.member + sizes  # fmt: skip
        end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, len(directory), self._end)
        locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, self._end + len(directory), 1)
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), 0xFFFFFFFF, 0)
        f.seek(self._end)
        _write_fully(f, directory + end64 + locator + end)

    def abort(self) -> None:
        f, atomic = self._file, self._atomic
        self._file = self._atomic = None
        if f is not None:
            f.close()
            err = OSError("aborted")
            atomic.__exit__(OSError, err, None)


class PngWriter(StagedWriter):
    """Frames as 000000.png, 000001.png ... written as they come into a temporary sibling folder, which
    replaces `folder` at `close()`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._staged: contextlib.AbstractContextManager | None = None
        self._tmp: Path | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self._staged is None:
            self._staged = atomic_dir(self.folder, overwrite=True)
            self._tmp = self._staged.__enter__()
        path = self._tmp / f"{self.frames:06d}.png"
        # Encoded here and written by Python, whose writes raise on a full disk: cv2.imwrite reports
        # success for a PNG it could not write (0 bytes on a full disk).
        ok, png = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))
        if not ok:
            raise ValueError(f"OpenCV cannot encode a frame of shape {frame.shape} as PNG")
        try:
            with open(path, "wb") as f:
                f.write(png.tobytes())
        except OSError:
            path.unlink(missing_ok=True)  # never a partial frame among the complete ones
            raise
        self.frames += 1

    def close(self) -> Path | None:
        staged, self._staged = self._staged, None
        if staged is None:
            return None
        staged.__exit__(None, None, None)
        return self.folder

    def abort(self) -> None:
        staged, self._staged = self._staged, None
        if staged is not None:
            err = OSError("aborted")
            with contextlib.suppress(OSError):
                staged.__exit__(OSError, err, None)


class Outputs(StagedWriter):
    """Every file a run writes, streamed: the side-by-side video, the predicted frames as PNGs and the
    predicted latents. A context manager: closed (files finished and moved into place) when the block
    ends normally, aborted (nothing left) when it raises. `recording` (a live run) writes a video that
    keeps what reached the disk when the disk fills up (`VideoWriter(fragmented=True)`)."""

    def __init__(self, video: str | None, frames_dir: str | None, latents: str | None, fps: float,
                 recording: bool = False, streams: Iterable = ()) -> None:  # fmt: skip
        self.video = VideoWriter(video, fps, fragmented=recording) if video else None
        self.pngs = PngWriter(frames_dir) if frames_dir else None
        self.latents = LatentWriter(latents) if latents else None
        # Stamped sinks (McapOutput, FoxgloveView, Window): observed(stamp, frame), predicted(stamps, frames),
        # stats(stamp, fields), close() and abort().
        self.streams = list(streams)
        self.written: list[Path] = []

    def _sinks(self) -> list:
        return [s for s in (self.video, self.pngs, self.latents, *self.streams) if s is not None]

    def observed(self, stamp: int, frame: np.ndarray) -> None:
        """An observed frame (at the layout's size) and its stamp (ns)."""
        for stream in self.streams:
            stream.observed(stamp, frame)

    def stats(self, stamp: int, fields: dict) -> None:
        for stream in self.streams:
            stream.stats(stamp, fields)

    def show(self, frames: Iterable[np.ndarray]) -> None:
        """Frames of the side-by-side video."""
        if self.video is not None:
            for frame in frames:
                self.video.write(frame)

    def predicted(self, frames: np.ndarray, latents: np.ndarray | None, stamps: list[int] | None = None) -> None:
        """Predicted frames, their latents and the times (ns) they predict."""
        for stream in self.streams if stamps is not None else ():
            stream.predicted(stamps, frames)
        if self.pngs is not None:
            for frame in frames:
                self.pngs.write(frame)
        if self.latents is not None and latents is not None:
            self.latents.write(latents)

    def close(self) -> list[Path]:
        """Finish every output; one the storage refuses (full, read-only) is dropped while the others are
        still finished, and the first such error is raised after them (`written` lists what was)."""
        refused = []
        sinks = self._sinks()
        for i, sink in enumerate(sinks):
            try:
                path = sink.close()
            except BaseException as err:
                if not is_storage_error(err):
                    for rest in sinks[i + 1 :]:
                        rest.abort()
                    raise
                sink.abort()
                refused.append(err)
                continue
            if path is not None:
                self.written.append(path)
        if refused:
            raise refused[0]
        return self.written

    def abort(self) -> None:
        for sink in self._sinks():
            sink.abort()
