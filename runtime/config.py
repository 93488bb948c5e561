"""The settings of `vgpt-run` (and of `run()` for code that embeds the main job). No heavy imports:
the command's defaults come from here before torch is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from vgpt.config import ConfigError
from vgpt.layout import LayoutRequest

# ONNX Runtime execution providers `--provider` names (vgpt.runtime.backends.ort_backend maps them).
PROVIDERS = ("cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class RunConfig:
    input: str
    output: str | None = "prediction.mp4"
    # What to run (vgpt-run --engine): a bundle folder or an .onnx inside one, a TensorRT engines folder or its
    # model.plan, a checkpoint or run folder; None: the bundled default. "Engine" is kept for TensorRT's.
    model: str | None = None
    codec: str | None = None  # a checkpoint's codec, when none sits beside it (default: the bundled codec)
    # Which of a bundle's layouts (its name, or M,G[,HxW]); a checkpoint's to export at (None: its first / defaults)
    layout: str | LayoutRequest | None = None
    frames_dir: str | None = None
    force: bool = False  # replace a --frames-dir that holds files vgpt did not write
    sheet: str | None = None  # a contact sheet PNG (observed, true future if any, predicted; live: the last clip)
    latents: str | None = None
    stats: str | None = None  # live: one JSON line per predicted clip (time, frames, drops, clip seconds)
    clips: int = 2
    steps: int | None = None  # None: as exported (or the bundled default's)
    guidance: float | None = None
    seed: int = 0
    backend: str = "onnxruntime"
    threads: int | None = None
    provider: str | None = None  # ONNX Runtime execution provider: cpu, cuda, tensorrt (None: cpu)
    live: bool = False
    max_frames: int | None = None  # live: stop after this many observed frames
    queue_size: int = 0  # live: frames buffered between capture and prediction (0: 2 x G)
    kv_cache: str = "exact"  # or "rolling" (approximate: slides the window without re-running it)
    trust_cache: bool = False  # reuse verdicts on files remembered since their last write (vgpt.integrity)
    trusted_keys: tuple[str, ...] = ()  # PEM public keys: load only a bundle signed by one (vgpt.export.signing)
    progress: bool = True
    topic: str | None = None  # a bag's image topic (None: its only one)
    fps: float | None = None  # a bag's frames are sampled at this rate from their stamps (None: the model's)
    realtime: bool = False  # live: a recording (bag, file, folder) is read at its recorded pace
    view: bool = False  # live: serve the frames to Foxglove over a WebSocket on the loopback address
    view_port: int = 8765  # Foxglove's default; 0: any free port
    show: bool = False  # live: a local window
    copy_topics: bool = False  # an .mcap output also gets every topic of the input bag

    def __post_init__(self) -> None:
        for name in ("clips", "steps", "max_frames", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"RunConfig.{name}={value}: must be at least 1")
        if self.provider is not None and self.provider not in PROVIDERS:
            raise ConfigError(f"RunConfig.provider={self.provider!r}: choose one of {PROVIDERS}")
        if self.provider is not None and self.backend != "onnxruntime":
            raise ConfigError(f"RunConfig.provider={self.provider!r}: execution providers are ONNX Runtime's; "
                              f"the {self.backend} backend takes none")  # fmt: skip
        if self.stats and not self.live:
            raise ConfigError("--stats records a live run clip by clip: use it with --live")
        if self.queue_size < 0:
            raise ConfigError(f"RunConfig.queue_size={self.queue_size}: must be >= 0 (0: twice the clip length)")
        if not 0 <= self.seed < 2**64:
            raise ConfigError(f"RunConfig.seed={self.seed}: must be in 0 .. 2**64 - 1")
        for flag in ("realtime", "view", "show"):
            if getattr(self, flag) and not self.live:
                raise ConfigError(f"--{flag.replace('_', '-')} is for a live run: add --live")
        if self.copy_topics and not (self.output or "").lower().endswith(".mcap"):
            raise ConfigError(
                "--copy-topics copies the input bag's topics into an MCAP output: give --output NAME.mcap"
            )
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"RunConfig.fps={self.fps}: must be positive")
        if not 0 <= self.view_port <= 65535:
            raise ConfigError(f"RunConfig.view_port={self.view_port}: must be a TCP port, 0 .. 65535 (0: any free one)")
        if self.guidance is not None and self.guidance < 1:
            raise ConfigError(f"RunConfig.guidance={self.guidance}: must be >= 1 (1: no guidance)")
