"""The embeddable predictor: observe camera frames, predict the next clips.

    predictor = load_predictor("bundle/")          # or a checkpoint folder, or the bundled default
    predictor.observe(frame)                       # uint8 RGB [H, W, 3] or [F, H, W, 3], any size
    clip = predictor.predict(num_clips=1)          # clip.frames: uint8 [G, H, W, 3]

The history is the newest M observed frames as latents; predictions never enter it (a multi-clip
prediction feeds each clip to the next on a copy). In the exact mode (the only
mode of static graphs) every predicted clip runs the history through prefill once, then S denoising
steps against that cache.

Threads: `observe` may be called from any number of threads, also while `predict` runs in another: it
encodes under its own lock (the encoder's buffers) and touches the history only to append, so a capture
thread waits at most for another frame's encoding, never for a prediction. Predictions are serialized
(they share the backend's KV cache and clip buffers) and work on a snapshot of the history.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vgpt.clips import roll_clips
from vgpt.errors import VgptError
from vgpt.frames import fit_frames, to_uint8
from vgpt.layout import Layout, LayoutRequest
from vgpt.runtime.backends.base import Backend, Model
from vgpt.runtime.loading import LoadOptions, ModelSource, open_model

log = logging.getLogger(__name__)


class NotEnoughHistoryError(VgptError, RuntimeError):
    """predict() before M frames were observed."""


class ModeError(VgptError, ValueError):
    """A KV cache mode the model cannot run."""


@dataclass
class Prediction:
    frames: np.ndarray  # uint8 [num_clips * G, H, W, 3]
    latents: np.ndarray | None  # float32 [num_clips * G, C, h, w] when asked for
    seconds_per_clip: float
    seconds_per_step: float  # denoising loop time / steps
    timings: dict[str, float] = field(default_factory=dict)


MODES = ("exact", "rolling")


class VideoPredictor:
    """mode "exact" (default): every prediction runs prefill on the newest M frames. mode "rolling": the
    cache is filled once and then slid by one frame per observed frame (`Backend.append`), so a
    prediction starts without prefill; approximate, because kept frames remember dropped ones. For a
    model with GPDiT's lightweight mask (`Backend.exact_rolling`), rolling is exact: each observed frame
    runs alone into the ring slot of the oldest (`Backend.push`) and a prediction reads the ring
    (`Backend.read_window`), equal to prefill of the same window to fp32 round-off.

    `seed`: the stream's own noise generator, so the same seed and the same frames give the same
    predictions in any process and in any stream (as the C API's `vgpt_stream_create(model, seed, ...)`;
    torch's generator, so its noise differs from the C runtime's). None: the noise comes from torch's
    global generator, different in every process unless `torch.manual_seed` is set."""

    def __init__(self, backend: Backend, mode: str = "exact", seed: int | None = None) -> None:
        if mode not in MODES:
            raise ModeError(f"mode {mode!r}: choose one of {MODES}")
        if mode == "rolling" and not backend.supports_rolling:
            raise ModeError(f"the rolling KV cache (--kv-cache rolling) slides the window with a bundle's append.onnx, "
                            f"and this {backend.name} model has none: re-export the bundle with this vgpt version "
                            "(vgpt-export writes it), or use the exact cache (--kv-cache exact)")  # fmt: skip
        self.backend = backend
        self.mode = mode
        self._warm = False  # rolling: the backend's cache holds the observed window
        self.layout: Layout = backend.layout
        self._history: collections.deque[np.ndarray] = collections.deque(maxlen=self.layout.history_frames)
        self._pending: list[np.ndarray] = []  # rolling: latents observed since the cache was last updated
        self._lock = threading.Lock()  # the history, `observed` and `_pending`: held for appends and snapshots
        self._encode_lock = threading.Lock()  # the encoder graph's buffers
        self._predict_lock = threading.Lock()  # the KV cache and every other buffer of the backend
        self.observed = 0
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)

    @property
    def ready(self) -> bool:
        return len(self._history) >= self.layout.history_frames

    def reset(self, seed: int | None = None) -> None:
        """Forget the observed history and restart the noise from `seed` (None: the stream's own seed)."""
        with self._predict_lock, self._lock:
            self.seed = self.seed if seed is None else seed
            self._generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
            self._history.clear()
            self._pending.clear()
            self.observed = 0
            self._warm = False

    def observe(self, frames: np.ndarray) -> None:
        """Add frames (uint8 RGB [H, W, 3] or [F, H, W, 3], any size: resized and centre-cropped)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        H, W = self.layout.pixel_size
        x = fit_frames(frames, H, W).numpy()  # [F, 3, H, W]
        with self._encode_lock:
            latents = [self.backend.encode(x[i : i + 1])[0] for i in range(len(x))]
            with self._lock:  # in encoding order, so frames from one thread stay in their order
                self._history.extend(latents)
                self.observed += len(latents)
                if self.mode == "rolling":
                    self._pending.extend(latents)
                    del self._pending[: -self.layout.history_frames]

    def _snapshot(self) -> np.ndarray:
        """The history [1, M, C, h, w]; rolling mode brings the backend's cache up to date first."""
        M = self.layout.history_frames
        with self._lock:
            if len(self._history) < M:
                raise NotEnoughHistoryError(
                    f"predict() needs {M} observed frames (the layout's history), only {len(self._history)} so far"
                )
            history = np.stack(list(self._history))[None]
            pending, self._pending = self._pending, []
        if self.mode == "rolling" and self.backend.exact_rolling:
            for latent in pending:  # the newest M at most: older ones would be overwritten
                self.backend.push(latent[None, None])
            self.backend.read_window()
        elif self.mode == "rolling":
            if self._warm and len(pending) < M:
                for latent in pending:
                    self.backend.append(latent[None, None])
            else:  # cold, or every cached frame has left the window: rebuild it exactly
                self.backend.prefill(history)
                self._warm = True
        return history

    def predict(self, num_clips: int = 1, generator: torch.Generator | None = None, return_latents: bool = False,
                on_clip: Callable[[int], None] | None = None) -> Prediction:  # fmt: skip
        """The next num_clips * G frames; each predicted clip joins the history for the next. The noise
        comes from `generator` if given, else from the stream's seeded generator (see the class)."""
        if num_clips < 1:
            raise ValueError(f"num_clips={num_clips}: must be >= 1")
        with self._predict_lock:
            generator = generator if generator is not None else self._generator
            history = self._snapshot()  # [1, M, C, h, w]; in rolling mode the cache now holds it
            result = rollout(self.backend, history, [generator] * num_clips, prefilled=self.mode == "rolling",
                             on_clip=on_clip)  # fmt: skip
            if num_clips > 1:
                self._warm = False  # the cache now holds predicted frames: rebuilt from the observed ones next time
        return Prediction(
            frames=to_uint8(torch.from_numpy(result.frames)),
            latents=result.latents if return_latents else None,
            seconds_per_clip=result.seconds / num_clips,
            seconds_per_step=result.timings["denoise"] / (num_clips * self.backend.steps),
            timings={k: v / num_clips for k, v in result.timings.items()},
        )

    def stream(self, frames: Iterable[np.ndarray], every: int | None = None, generator: torch.Generator | None = None,
               return_latents: bool = False) -> Iterator[tuple[int, Prediction]]:  # fmt: skip
        """For a live source: observe each frame; once M frames are in, predict the next clip every
        `every` frames (default G). Yields (frames observed so far, prediction)."""
        every = every or self.layout.clip_frames
        since = 0
        for frame in frames:
            self.observe(frame)
            since += 1
            if self.ready and since >= every:
                since = 0
                yield self.observed, self.predict(1, generator, return_latents)


@dataclass
class Rollout:
    latents: np.ndarray  # [K*G, C, h, w]
    frames: np.ndarray  # decoded, float32 [K*G, 3, H, W] in about [-1, 1]
    seconds: float
    timings: dict[str, float]  # seconds in prefill, denoise and decode, summed over the clips


def rollout(backend: Backend, window: np.ndarray, generators: list[torch.Generator | None], prefilled: bool = False,
            on_clip: Callable[[int], None] | None = None) -> Rollout:  # fmt: skip
    """The clip loop, the one every caller runs (vgpt-run, vgpt-eval, the accuracy report, the bench):
    for each generator, prefill the window [1, M, C, h, w] into the backend's KV cache, draw the clip's
    noise from the generator, run the S denoising steps, decode, and slide the window over the predicted
    clip (autoregression on a copy). `prefilled`: the backend's cache already holds `window` (rolling
    mode), so the first clip skips prefill. Pass one generator per clip; the same one repeated draws
    each clip's noise after the previous clip's."""
    M, G = window.shape[1], backend.layout.clip_frames
    shape = (1, G, *window.shape[2:])
    latents, frames = [], []
    timings = dict.fromkeys(("prefill", "denoise", "decode"), 0.0)

    def one_clip(window: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
        t0 = time.perf_counter()
        if not (prefilled and not latents):  # rolling mode: the cache already holds the first clip's window
            backend.prefill(window)
        t1 = time.perf_counter()
        z = torch.randn(shape, generator=generator).numpy()
        clip = np.array(backend.denoise(z))  # [1, G, C, h, w], a copy: the backend reuses its buffers
        t2 = time.perf_counter()
        frames.append(backend.decode(clip[0]))
        t3 = time.perf_counter()
        for name, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            timings[name] += seconds
        latents.append(clip[0])
        return clip

    start = time.perf_counter()
    roll_clips(window, generators, one_clip, keep=M, on_clip=on_clip)
    return Rollout(np.concatenate(latents), np.concatenate(frames), time.perf_counter() - start, timings)


class LoadedModel:
    """A loaded model (a bundle's sessions, engines, or eager modules): immutable, shared by any number of
    streams. `stream()` opens one camera's state (history, KV cache, buffers, bindings) as a
    `VideoPredictor`; streams of one model run concurrently from their own threads.

        model = load_model("bundle/")
        left, right = model.stream(), model.stream()    # two cameras, one copy of the weights
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.layout: Layout = model.layout

    @property
    def backend_name(self) -> str:
        return self.model.name

    def stream(self, mode: str = "exact", seed: int | None = None) -> VideoPredictor:
        """One camera's state; `seed` makes its predictions reproducible (see `VideoPredictor`)."""
        return VideoPredictor(self.model.stream(), mode, seed)


def load_model(
    source: str | Path | ModelSource | None = None,
    backend: str = "onnxruntime",
    *,
    layout: str | LayoutRequest | None = None,
    threads: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    codec: str | Path | None = None,
    providers: Sequence[str] | None = None,
    trust_cache: bool = False,
    trusted_keys: Sequence[str | Path] = (),
    model: str | None = None,
) -> LoadedModel:
    """A model from a bundle (folder, or a graph file whose manifest sits above it), an engines folder, a
    checkpoint or training run folder (exported on first use; `codec` when none sits beside it), or the
    bundled default (None). The options are `LoadOptions`' (vgpt.runtime.loading), named here:

    `layout`: which of a bundle's layouts, by name (`manifest.json`'s `layouts[].name`, as the C API's
    `vgpt_model_options.layout`) or as `LayoutRequest(M, G[, size])`; for a checkpoint, a `LayoutRequest`
    to export at instead of its defaults'. Default: a bundle's first layout, a checkpoint's defaults.
    `providers`: ONNX Runtime execution providers in order of preference ("cpu", "cuda", "tensorrt"); one
    that is missing is an error, never a silent fall back to the CPU.

    Every model file is hashed at every load; `trust_cache=True` reuses a verdict remembered since the
    file's last write (vgpt.integrity). `trusted_keys` (PEM public key files): load only an export bundle
    signed by one of them with `vgpt-export --sign` (vgpt.export.signing). `model`: which of the bundled
    models ("teacher", "student", "gpdit": vgpt.default_model.BUNDLED_MODELS) when `source` is None or a
    folder laid out like the bundled one; without it, the student once its figures meet the teacher's at
    every horizon."""
    options = LoadOptions(backend=backend, threads=threads, steps=steps, guidance=guidance, codec=codec,
                          providers=providers, layout=layout, trust_cache=trust_cache, trusted_keys=trusted_keys,
                          model=model)  # fmt: skip
    return LoadedModel(open_model(source, options))


def load_predictor(source: str | Path | ModelSource | None = None, backend: str = "onnxruntime", *,
                   mode: str = "exact", seed: int | None = None, **options) -> VideoPredictor:  # fmt: skip
    """One stream of a model: `load_model(source, backend, **options).stream(mode, seed)` (see `load_model`
    for the sources and options, `VideoPredictor` for the mode and the seed)."""
    return load_model(source, backend, **options).stream(mode, seed)
