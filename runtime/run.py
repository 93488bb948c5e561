"""The main job: read video, keep the history, predict the next clips, write what a person can watch."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgpt.bag import is_bag
from vgpt.commands import plural
from vgpt.default_model import bundled_model_note
from vgpt.errors import STORAGE_ERRNOS, VgptError, is_storage_error
from vgpt.frames import fit_for_display
from vgpt.layout import Layout
from vgpt.progress import progress_bar
from vgpt.recordings import sampling_rate
from vgpt.runtime.config import RunConfig
from vgpt.runtime.loading import history_frames
from vgpt.runtime.mcap_output import McapOutput
from vgpt.runtime.output import Outputs, compose, side_by_side
from vgpt.runtime.predictor import load_predictor
from vgpt.runtime.sources import DropOldestQueue, SourceDisconnected, SourceError, open_bag_source, open_source, paced
from vgpt.runtime.view import FoxgloveView, Window, check_display
from vgpt.sheet import SheetRow, contact_sheet, write_png

log = logging.getLogger(__name__)


class InputError(SourceError):
    """An input the layout cannot take (too short, wrong size)."""


class OutputPathError(VgptError):
    """An output path that cannot be written (a folder, under a file, not writable, another format)."""


@dataclass
class RunSummary:
    frames_predicted: int
    clips: int
    seconds_per_clip: float
    seconds_per_step: float
    backend: str
    dropped: int = 0
    error: str | None = None
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM (exit status 130)

    def line(self) -> str:
        text = (f"predicted {plural(self.frames_predicted, 'frame')} in {plural(self.clips, 'clip')}: "
                f"{self.seconds_per_clip * 1000:.1f} ms per clip, {self.seconds_per_step * 1000:.2f} ms per "
                f"denoising step ({self.backend})")  # fmt: skip
        if self.dropped:
            text += f"; {plural(self.dropped, 'frame')} dropped (live queue full)"
        return text


def check_input_size(height: int, width: int, layout: Layout) -> None:
    """Frames are resized to cover the layout and centre-cropped; refuse inputs that would lose more
    than half of a side to the crop, or that are tiny."""
    H, W = layout.pixel_size
    if min(height, width) < 16:
        raise InputError(f"input frames of {width}x{height} px are too small (at least 16 px per side)")
    scale = max(H / height, W / width)
    kept_h, kept_w = H / (height * scale), W / (width * scale)
    if min(kept_h, kept_w) < 0.5:
        raise InputError(
            f"input frames of {width}x{height} px cannot be brought to the layout's {W}x{H} px without cropping "
            "away more than half of them; export a layout with a matching aspect ratio"
        )


def check_outputs(config: RunConfig) -> None:
    """Refuse output paths that cannot be written, or whose writing would destroy a file the user has (an
    input, another output, a folder vgpt did not write), before any model is loaded or frame predicted.
    Outputs go into folders that exist: none is created but `--frames-dir` itself."""
    inputs = [Path(p) for p in (config.input, config.model, config.codec) if p and Path(p).exists()]
    files = {option: Path(value) for option, value in (("--output", config.output), ("--sheet", config.sheet),
             ("--latents", config.latents), ("--stats", config.stats)) if value}  # fmt: skip
    suffixes = {"--output": ((".mp4", ".mcap"), "vgpt-run writes H.264 in an MP4 container, or ROS 2 image topics "
                             "in an MCAP file (Foxglove)"),
                "--sheet": (".png", "the contact sheet is a PNG image"),
                "--latents": (".npz", "the latents are a NumPy archive (np.load reads it)")}  # fmt: skip
    for option, path in files.items():
        if path.is_dir():
            raise OutputPathError(f"{option} {path} is a folder; name a file in it")
        if option in suffixes and path.suffix.lower() not in suffixes[option][0]:
            wanted, why = suffixes[option]
            wanted = " or ".join(wanted) if isinstance(wanted, tuple) else wanted
            raise OutputPathError(f"{option} {path}: {why}; name a {wanted} file")
        _check_not_an_input(path, option, inputs)
        _check_parent(path, option)
    for (a, path_a), (b, path_b) in itertools.combinations(files.items(), 2):
        if os.path.abspath(path_a) == os.path.abspath(path_b):
            raise OutputPathError(f"{a} and {b} both name {path_a}; give each output its own file")
    if config.frames_dir:
        _check_frames_dir(Path(config.frames_dir), config.force, [*inputs, *files.values()])


FRAME_FILE = re.compile(r"\d{6}\.png")  # what PngWriter writes: 000000.png, 000001.png, ...


def _check_frames_dir(frames: Path, force: bool, keep: list[Path]) -> None:
    """`--frames-dir` is replaced as a whole: refuse one that holds anything vgpt did not write there
    (unless `force`), and, forced or not, one that holds the current folder, an input or an output."""
    if frames.exists() and not frames.is_dir():
        raise OutputPathError(f"--frames-dir {frames} is a file; name a folder for the PNG frames")
    folder = Path(os.path.abspath(frames))
    cwd = Path.cwd()
    if folder == cwd or folder in cwd.parents:
        raise OutputPathError(f"--frames-dir {frames} is the current folder or holds it; name a new folder for the "
                              "PNG frames (e.g. --frames-dir frames)")  # fmt: skip
    for path in keep:
        if folder in Path(os.path.abspath(path)).parents:
            raise OutputPathError(f"--frames-dir {frames} holds {path}, which the run reads or writes; name a new "
                                  "folder for the PNG frames")  # fmt: skip
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if not (FRAME_FILE.fullmatch(p.name) and p.is_file()))
        if foreign and not force:
            raise OutputPathError(f"--frames-dir {frames} holds {plural(len(foreign), 'entry', 'entries')} vgpt did "
                                  f"not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), and "
                                  "the folder is replaced as a whole; name a new or empty folder, or give --force "
                                  "to replace it")  # fmt: skip
    _check_parent(folder, "--frames-dir")


def _check_not_an_input(path: Path, option: str, inputs: list[Path]) -> None:
    for source in inputs:
        if path.exists() and source.is_file() and os.path.samefile(path, source):
            raise OutputPathError(f"{option} {path} is the input {source}: writing it would destroy the input; "
                                  "name another file")  # fmt: skip


def _check_parent(path: Path, option: str) -> None:
    """The folder `path` goes into exists, is a folder, and takes a new file (a real write, so that a
    read-only mount or a folder like /sys is found now, not after the prediction)."""
    parent = Path(os.path.abspath(path)).parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise OutputPathError(f"{option} {path}: {existing} is a file, so no folder can be made under it")
    if existing != parent:
        raise OutputPathError(f"{option} {path}: the folder {parent} does not exist; create it first (vgpt-run makes "
                              "no folders but --frames-dir itself) or choose another place")  # fmt: skip
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".vgpt-write-test."):
            pass
    except OSError as err:
        raise OutputPathError(f"{option} {path}: {parent} does not take new files ({err.strerror or err}); "
                              "choose another place") from None  # fmt: skip


def run(config: RunConfig) -> RunSummary:
    check_outputs(config)
    source = _open(config)
    needed = history_frames(config.model, config.layout)
    if not config.live and needed is not None and source.frames is not None and source.frames < needed:
        raise _too_short(source, source.frames, needed)  # before the model loads (or exports)
    if config.model is None:
        log.info("note: %s", bundled_model_note())
    predictor = load_predictor(config.model, config.backend, mode=config.kv_cache, seed=config.seed,
                               layout=config.layout, threads=config.threads, steps=config.steps,
                               guidance=config.guidance, codec=config.codec,
                               providers=[config.provider] if config.provider else None,
                               trust_cache=config.trust_cache, trusted_keys=config.trusted_keys)  # fmt: skip
    M = predictor.layout.history_frames
    if config.live and config.max_frames is not None and config.max_frames < M:
        raise InputError(f"--max-frames {config.max_frames} stops before the {M} history frames a prediction "
                         f"needs; give at least {M}")  # fmt: skip
    log.info("input: %s; layout %s; backend %s", source.description, predictor.layout, predictor.backend.name)
    if config.live:
        return _run_live(config, predictor, source)
    return _run_offline(config, predictor, source)


def _open(config: RunConfig):
    """The input: a bag's image topic sampled at --fps, or what `open_source` opens; and, before the model
    loads, the checks of the options that depend on it (--topic, --copy-topics, --realtime, --show)."""
    if is_bag(config.input):
        source = open_bag_source(config.input, config.topic, sampling_rate(config.fps))
    else:
        for option, value in (("--topic", config.topic), ("--fps", config.fps), ("--copy-topics", config.copy_topics)):
            if value:
                raise InputError(f"{option} is for a ROS 2 bag input (.mcap, .db3, a bag folder); {config.input} "
                                 "is not one")  # fmt: skip
        source = open_source(config.input)
    if config.realtime and source.live:
        raise InputError(f"--realtime paces a recording; {source.description} already arrives in real time")
    if config.show:
        check_display()
    return source


def _streams(config: RunConfig, source) -> list:
    """The stamped sinks a run writes to: the MCAP output, the live view, the window."""
    frame_id = source.bag.frame_id if source.bag is not None and source.bag.frame_id else "vgpt"
    streams = []
    if config.output and config.output.lower().endswith(".mcap"):
        streams.append(McapOutput(config.output, frame_id, config.input if config.copy_topics else None))
    try:
        if config.view:
            streams.append(FoxgloveView(config.view_port, frame_id))
        if config.show:
            streams.append(Window(f"vgpt-run: {source.description}"))
    except BaseException:
        for stream in streams:
            stream.abort()
        raise
    return streams


def _ahead(stamp: int, frames: int, fps: float) -> list[int]:
    """The stamps (ns) of the `frames` frames after one stamped `stamp`, at `fps`."""
    return [stamp + round((k + 1) * 1e9 / fps) for k in range(frames)]


def _clip_stats(outputs: Outputs, clip: int, stamps: list[int], **fields) -> None:
    outputs.stats(stamps[0], {"clip": clip, "first_stamp": stamps[0], "frames": len(stamps), **fields})


def _too_short(source, frames: int, M: int) -> InputError:
    return InputError(f"{source.description} gave {plural(frames, 'frame')}, fewer than the {M} history frames "
                      "the layout needs")  # fmt: skip


def _fit(frames: list[np.ndarray], layout: Layout) -> list[np.ndarray]:
    return [fit_for_display(frame, *layout.pixel_size) for frame in frames]


def _run_offline(config: RunConfig, predictor, source) -> RunSummary:
    layout = predictor.layout
    M, G = layout.history_frames, layout.clip_frames
    # Memory stays flat in the input's size and the number of clips, as in live mode: the predictor
    # observes each history frame as it is read, so one frame at a time is held at the input's
    # resolution; every frame is kept for display at the layout's size (uint8, fitted without a float
    # copy), and the side-by-side video is composed and written frame by frame.
    shown: list[np.ndarray] = []
    stamps: list[int] = []  # ns, of each frame in `shown`
    disconnected = None
    try:
        for stamp, frame in source.timed():
            stamps.append(stamp)
            if not shown:
                check_input_size(frame.shape[0], frame.shape[1], layout)
            if len(shown) < M:
                predictor.observe(frame)
            shown.extend(_fit([frame], layout))
            del frame
            if len(shown) >= M + config.clips * G:
                break
    except SourceDisconnected as err:
        disconnected = err
    if len(shown) < M:
        raise _too_short(source, len(shown), M)
    with progress_bar(config.clips, "predict", "clip", config.progress) as bar:
        prediction = predictor.predict(config.clips, return_latents=config.latents is not None,
                                       on_clip=lambda _: bar.update(1))  # fmt: skip
    with _outputs(config, source) as outputs:
        outputs.show(compose(shown, M, prediction.frames))
        ahead = _ahead(stamps[M - 1], len(prediction.frames), source.fps)
        outputs.predicted(prediction.frames, prediction.latents, ahead)
        for stamp, frame in zip(stamps, shown, strict=True):
            outputs.observed(stamp, frame)
        for k in range(config.clips):
            _clip_stats(outputs, k + 1, ahead[k * G : (k + 1) * G], observed=M,
                        clip_seconds=prediction.seconds_per_clip, step_seconds=prediction.seconds_per_step)  # fmt: skip
    for path in outputs.written:
        log.info("wrote %s", path)
    if config.sheet:
        write_sheet(config.sheet, shown, M, prediction.frames, source.description, G)
    summary = RunSummary(len(prediction.frames), config.clips, prediction.seconds_per_clip,
                         prediction.seconds_per_step, predictor.backend.name)  # fmt: skip
    if disconnected is not None:
        summary.error = str(disconnected)
    return summary


def _run_live(config: RunConfig, predictor, source) -> RunSummary:
    """Predict the next clip every G frames until the source ends, is interrupted or --max-frames is
    reached. Every output is streamed to disk as it is predicted (memory stays at one clip whatever the
    run's length) and finished into a playable file on every way out: the end of the source, a
    disconnect, Ctrl-C and SIGTERM. Only an unexpected error leaves nothing."""
    layout = predictor.layout
    M, G = layout.history_frames, layout.clip_frames
    timed = paced(source.timed()) if config.realtime else source.timed()
    # A camera, or a recording paced as one, drops the oldest frames when prediction lags; a recording read
    # as fast as it is consumed waits instead, and every frame is observed.
    frames = DropOldestQueue(timed, config.queue_size or 2 * G, drop=source.live or config.realtime)
    recent: list[np.ndarray] = []
    newest_stamp = [0]  # ns, of the newest observed frame
    last: tuple[list[np.ndarray], np.ndarray] | None = None  # the newest observed frames (as they came), prediction
    predicted = clips = 0
    per_clip = per_step = 0.0
    bar = progress_bar(None, "predict", "clip", config.progress)
    error, interrupted = None, False

    def watched():
        for i, (stamp, frame) in enumerate(frames):
            if config.max_frames is not None and i >= config.max_frames:
                return
            if i == 0:
                check_input_size(frame.shape[0], frame.shape[1], layout)
            recent.append(frame)
            del recent[:-M]
            newest_stamp[0] = stamp
            rate.add(stamp, i + 1 + frames.dropped)  # drop-oldest: every dropped frame came before this one
            if outputs.streams:
                outputs.observed(stamp, _fit([frame], layout)[0])
            yield frame

    outputs = _outputs(config, source)
    rate = ArrivalRate(source.fps, live=source.live)
    stats = _StatsLog(config.stats, G, rate) if config.stats else None
    try:
        for _, prediction in predictor.stream(watched(), every=G, return_latents=config.latents is not None):
            clips += 1
            predicted += len(prediction.frames)
            per_clip += prediction.seconds_per_clip
            per_step += prediction.seconds_per_step
            newest = _fit(recent[-1:], layout)[0]  # only the frame shown; the sheet fits the rest once, at the end
            outputs.show([side_by_side(newest, f, "latest observed", f"predicted +{k + 1}")
                          for k, f in enumerate(prediction.frames)])  # fmt: skip
            # a camera's predicted frames are stamped at the rate its frames arrive (a recording's: its declared rate)
            ahead = _ahead(newest_stamp[0], len(prediction.frames), rate.fps)
            outputs.predicted(prediction.frames, prediction.latents, ahead)
            _clip_stats(outputs, clips, ahead, observed=predictor.observed, dropped=frames.dropped,
                        clip_seconds=prediction.seconds_per_clip, step_seconds=prediction.seconds_per_step)  # fmt: skip
            last = list(recent), prediction.frames
            if stats is not None:
                stats.write(clips=clips, observed=predictor.observed, dropped=frames.dropped,
                            clip_seconds=prediction.seconds_per_clip)  # fmt: skip
            bar.update(1)
    except SourceDisconnected as err:
        error = str(err)
    except KeyboardInterrupt:  # Ctrl-C (and SIGTERM, which vgpt-run turns into one): keep what was predicted
        error, interrupted = "interrupted", True
    except BaseException as err:
        if not is_storage_error(err):
            outputs.abort()
            raise
        error = _storage_stop(err)  # a full disk: stop, and keep what was written
    finally:
        bar.close()
        frames.close()  # join the capture thread on every way out
        if stats is not None:
            log.info("%s", stats.verdict())
            with contextlib.suppress(OSError):  # what was logged stays; a full disk is reported once, above
                stats.close()
    try:
        written = outputs.close()
    except OSError as err:
        if not is_storage_error(err):
            raise
        written, error = outputs.written, error or _storage_stop(err)
    for path in written:
        log.info("wrote %s", path)
    if config.sheet and last is not None and not (error or "").startswith(_STORAGE_STOP):
        observed, predicted_frames = last
        write_sheet(config.sheet, _fit(observed, layout), len(observed), predicted_frames,
                    f"{source.description} (last clip)", G)  # fmt: skip
    n = max(clips, 1)
    return RunSummary(predicted, clips, per_clip / n, per_step / n, predictor.backend.name,
                      dropped=frames.dropped, error=error, interrupted=interrupted)  # fmt: skip


_STORAGE_STOP = "stopped writing"


def _storage_stop(err: OSError) -> str:
    return f"{_STORAGE_STOP}: {err.filename}: {err.strerror}; {STORAGE_ERRNOS[err.errno]}"


def write_sheet(path: str, shown: list[np.ndarray], history: int, predicted: np.ndarray, title: str, clip: int) -> None:
    """A contact sheet: the observed frames, the true future when the input has it, the prediction (a wider
    gap between clips when the history is a whole number of them)."""
    rows = [SheetRow("observed", np.stack(shown[:history]), [f"t-{history - 1 - i}" if i < history - 1 else "t"
                                                            for i in range(history)])]  # fmt: skip
    future = np.stack(shown[history:]) if len(shown) > history else None
    if future is not None:
        rows.append(SheetRow("true future", future, [f"+{i + 1}" for i in range(len(future))], first_column=history))
    rows.append(SheetRow("predicted", predicted, [f"+{i + 1}" for i in range(len(predicted))], first_column=history))
    write_png(path, contact_sheet(rows, title=title, group=clip if history % clip == 0 else 0))
    log.info("wrote %s", path)


class ArrivalRate:
    """The rate a live source's frames arrive at, measured from their capture stamps over the newest `window`
    frames (dropped ones counted): a burst (the frames a stream buffered while the model loaded) is forgotten
    once that many have come, and until the window is full the rate is not `measured`. HTTP MJPEG streams
    carry no rate, and OpenCV declares 25 fps for them whatever the camera sends. A recording's frames
    come at the rate it declares (`live=False`: no measurement)."""

    def __init__(self, declared: float, live: bool = True, window: int = 40) -> None:
        self.declared, self.live, self.window = declared, live, window
        self._recent: collections.deque[tuple[int, int]] = collections.deque(maxlen=window)

    def add(self, stamp: int, arrived: int) -> None:
        """A frame stamped `stamp` (ns) came, the `arrived`-th one (the dropped ones before it counted)."""
        self._recent.append((stamp, arrived))

    @property
    def measured(self) -> bool:
        return not self.live or len(self._recent) == self.window

    @property
    def fps(self) -> float:
        if not self.live or len(self._recent) < 2:
            return self.declared
        (first, n0), (last, n1) = self._recent[0], self._recent[-1]
        return (n1 - n0) * 1e9 / (last - first) if last > first else self.declared


class _StatsLog:
    """`--stats`: one JSON object per line, flushed per clip, so a monitor (or scripts/soak.py) can follow
    a live run while it goes and what was logged survives a kill. Each line also says whether the clip
    was predicted faster than it lasts at the rate the frames arrive (`clip_lasts`: G / `arrival_fps`
    seconds, ArrivalRate; `fps` is the rate the source declares), the condition for keeping up with the
    camera; `keeps_up` is null until the rate is measured (a live source's first frames)."""

    def __init__(self, path: str, clip_frames: int, rate: ArrivalRate) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", buffering=1)  # line-buffered: each clip is on disk as it is logged
        self._start = time.monotonic()
        self.rate, self.clip_frames = rate, clip_frames
        self.clips = self.judged = self.kept_up = 0
        self.slowest = 0.0

    @property
    def clip_lasts(self) -> float:
        return self.clip_frames / self.rate.fps

    def write(self, **fields) -> None:
        keeps_up = fields["clip_seconds"] < self.clip_lasts if self.rate.measured else None
        self.clips += 1
        if keeps_up is not None:
            self.judged, self.kept_up = self.judged + 1, self.kept_up + keeps_up
            self.slowest = max(self.slowest, fields["clip_seconds"])
        fields = {"seconds": round(time.monotonic() - self._start, 3), **fields, "fps": self.rate.declared,
                  "arrival_fps": round(self.rate.fps, 3), "clip_lasts": round(self.clip_lasts, 4),
                  "keeps_up": keeps_up}  # fmt: skip
        self._file.write(json.dumps(fields) + "\n")

    def verdict(self) -> str:
        """One line for the end of the run: whether every clip was predicted faster than it lasts."""
        if not self.judged:
            return (f"{self.clips} clip(s) predicted before the stream's rate was measured (its first "
                    f"{self.rate.window} frames): nothing to say about keeping up")  # fmt: skip
        word = "kept up with" if self.kept_up == self.judged else "did NOT keep up with"
        declared = "" if abs(self.rate.fps - self.rate.declared) < 0.05 else f" (declared {self.rate.declared:g})"
        before = self.clips - self.judged
        first = f"; {before} clip(s) before the rate was measured" if before else ""
        return (
            f"{word} the stream's {self.rate.fps:.3g} fps{declared}: {self.kept_up} of {self.judged} clips "
            f"predicted faster than they last ({self.clip_lasts:.3f} s; slowest {self.slowest:.3f} s){first}"
        )

    def close(self) -> None:
        self._file.close()


def _outputs(config: RunConfig, source) -> Outputs:
    streams = _streams(config, source)
    video = None if config.output and config.output.lower().endswith(".mcap") else config.output
    return Outputs(video, config.frames_dir, config.latents, source.fps, recording=config.live, streams=streams)
