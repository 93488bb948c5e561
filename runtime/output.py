"""What vgpt-run writes: a side-by-side video, optional PNG frames and latents, all atomically.

`Outputs` streams them as frames come (a live run of any length holds one clip at a time): each goes
to a temporary sibling of its path and is moved into place by `close()`; `abort()` leaves nothing.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from vgpt.atomic import StagedWriter, atomic_dir, atomic_path
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


def compose(observed: list[np.ndarray], context: int, predicted: np.ndarray) -> list[np.ndarray]:
    """Frames of the output video: left, what the camera saw (context, then the real future where the
    input has it); right, the context and then the prediction."""
    frames = []
    total = context + len(predicted)
    blank = np.zeros_like(predicted[0])
    for t in range(total):
        left = observed[t] if t < len(observed) else blank
        left_label = "observed" if t < context else ("observed (future)" if t < len(observed) else "no input")
        right = observed[t] if t < context else predicted[t - context]
        right_label = "context" if t < context else f"predicted +{t - context + 1}"
        frames.append(side_by_side(left, right, left_label, right_label))
    return frames


def write_pngs(folder: str | Path, frames: np.ndarray) -> Path:
    """Write frames as 000000.png ... into `folder`, built in a temporary sibling and renamed."""
    with PngWriter(folder) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(folder)


class LatentWriter(StagedWriter):
    """Latent clips appended as they come, saved as one array `name` [N, C, h, w] in an .npz that
    `np.load` reads. The clips are spooled to an unnamed temporary file (memory stays at one clip); the
    archive is written at `close()`, with the array header that only then is known."""

    def __init__(self, path: str | Path, name: str = "prediction") -> None:
        self.path, self.name = Path(path), name
        self._spool = None
        self._shape: tuple[int, ...] | None = None
        self._count = 0

    def write(self, latents: np.ndarray) -> None:
        latents = np.ascontiguousarray(latents, np.float32)
        if self._shape is None:
            self._shape = latents.shape[1:]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._spool = tempfile.TemporaryFile(dir=self.path.parent)
        elif latents.shape[1:] != self._shape:
            raise ValueError(f"latents of shape {latents.shape[1:]} after {self._shape}")
        self._spool.write(latents.tobytes())
        self._count += len(latents)

    def close(self) -> Path | None:
        if self._spool is None:
            return None
        spool, self._spool = self._spool, None
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": (self._count, *self._shape)}  # fmt: skip
        with spool, atomic_path(self.path) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            with archive.open(f"{self.name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_2_0(member, header)
                spool.seek(0)
                while chunk := spool.read(1 << 20):
                    member.write(chunk)
        return self.path

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


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
        if not cv2.imwrite(str(path), np.ascontiguousarray(frame[:, :, ::-1])):
            raise OSError(f"cannot write PNG frames under {self.folder}")
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
    ends normally, aborted (nothing left) when it raises."""

    def __init__(self, video: str | None, frames_dir: str | None, latents: str | None, fps: float) -> None:
        self.video = VideoWriter(video, fps) if video else None
        self.pngs = PngWriter(frames_dir) if frames_dir else None
        self.latents = LatentWriter(latents) if latents else None
        self.written: list[Path] = []

    def _sinks(self) -> list:
        return [s for s in (self.video, self.pngs, self.latents) if s is not None]

    def show(self, frames: list[np.ndarray]) -> None:
        """Frames of the side-by-side video."""
        if self.video is not None:
            for frame in frames:
                self.video.write(frame)

    def predicted(self, frames: np.ndarray, latents: np.ndarray | None) -> None:
        if self.pngs is not None:
            for frame in frames:
                self.pngs.write(frame)
        if self.latents is not None and latents is not None:
            self.latents.write(latents)

    def close(self) -> list[Path]:
        for sink in self._sinks():
            path = sink.close()
            if path is not None:
                self.written.append(path)
        return self.written

    def abort(self) -> None:
        for sink in self._sinks():
            sink.abort()
