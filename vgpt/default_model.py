"""The default model: our `small` model and light codec, trained on synthetic physics videos, shipped
inside vgpt (the model every command takes when none is named).

`vgpt/assets/default/` holds `model/` (a vgpt checkpoint), `codec/` (a light codec) and
`defaults.json` (the layout and sampler settings they were trained and evaluated with, and the
command that reproduces them). `Defaults` is the one reader of those settings: every command takes
its layout and sampler from `defaults.layout(...)` and `defaults.sampler(...)`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgpt.config import ConfigError, ModelConfig, SamplerConfig
from vgpt.layout import Layout

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).parent / "assets" / "default"
SETTINGS = "defaults.json"  # beside model/ and codec/


def bundled_model_note(root: Path = DEFAULT_DIR) -> str:
    """What the bundled model is, said once where a user meets it (vgpt-run's first line and --help,
    the README's quick start), from the `trained_on` of its defaults.json."""
    trained_on = json.loads((root / SETTINGS).read_text())["trained_on"]
    return (
        f"the bundled model is a demonstration, trained only on {trained_on}; on other videos it "
        "predicts ball-like blobs: train or fine-tune a model on your own videos with vgpt-train --data"
    )


class DefaultModelMissingError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class Defaults:
    """The layout (in pixels) and sampler a model was trained and evaluated with: its `defaults.json`,
    or, for a checkpoint without one, the default model's usual values. Options a user gives win."""

    history: int = 4  # M frames
    clip: int = 4  # G frames
    height: int = 64  # px
    width: int = 64  # px
    steps: int = SamplerConfig.steps
    guidance: float = SamplerConfig.guidance
    shift: float = SamplerConfig.shift
    fps: float = 10.0  # frames per second of the training videos (the synthetic scenes': SceneConfig.fps)

    @classmethod
    def from_settings(cls, settings: dict[str, Any], source: str = SETTINGS) -> Defaults:
        """The fields of `defaults.json` this class knows; other keys (evaluation figures, notes) are ignored."""
        known = {k: settings[k] for k in ("history", "clip", "height", "width", "steps", "guidance", "shift", "fps")
                 if k in settings}  # fmt: skip
        for key in ("history", "clip", "height", "width", "steps"):
            if key in known and (not isinstance(known[key], int) or isinstance(known[key], bool)):
                raise ConfigError(f"{source}: {key}={known[key]!r} must be an integer")
        return cls(**known)

    def layout(self, config: ModelConfig, history: int | None = None, clip: int | None = None) -> Layout:
        return Layout.from_pixels(config, history or self.history, clip or self.clip, self.height, self.width)

    def sampler(self, steps: int | None = None, guidance: float | None = None,
                shift: float | None = None) -> SamplerConfig:  # fmt: skip
        return SamplerConfig(steps=steps or self.steps, guidance=guidance or self.guidance, shift=shift or self.shift)


@dataclass(frozen=True)
class DefaultModel:
    root: Path
    settings: dict[str, Any]  # defaults.json as written (with its evaluation figures)
    defaults: Defaults = field(default_factory=Defaults)

    def layout(self, config: ModelConfig) -> Layout:
        return self.defaults.layout(config)

    def sampler(self) -> SamplerConfig:
        return self.defaults.sampler()

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def codec_dir(self) -> Path:
        return self.root / "codec"


def default_model(root: str | Path | None = None) -> DefaultModel:
    """The default model shipped with vgpt, or a folder laid out like it (`root`)."""
    root = Path(root) if root is not None else DEFAULT_DIR
    settings = root / SETTINGS
    if not settings.is_file() or not (root / "model").is_dir() or not (root / "codec").is_dir():
        raise DefaultModelMissingError(
            f"the bundled model is missing from {root} (needs model/, codec/ and {SETTINGS}); reinstall vgpt "
            "or train one with the command in the README"
        )
    data = json.loads(settings.read_text())
    return DefaultModel(root, data, Defaults.from_settings(data, str(settings)))


def resolve_checkpoint(source: str | Path | None, codec: str | Path | None = None) -> tuple[str, str, Defaults]:
    """What a user names as the model -> (checkpoint folder, codec folder, its defaults).

    None is the default model; a folder with defaults.json is laid out like it; anything else is a
    checkpoint or a training run. A checkpoint without a codec beside it (a training checkpoint, say)
    takes `codec`, else the default model's codec, with a printed note."""
    from vgpt.checkpoint import CheckpointError, weights_dir

    path = None if source is None else Path(source)
    if path is not None and not path.exists():
        raise CheckpointError(f"{path} does not exist: name an export bundle, a checkpoint folder or a training run")
    if path is None or (path / SETTINGS).is_file():  # the default model, or a folder laid out like it
        default = default_model(path)
        return str(default.model_dir), str(codec or default.codec_dir), default.defaults
    model = weights_dir(path)
    beside = next((p / name for p in (path, model.parent) for name in ("codec", "vae") if (p / name).is_dir()), None)
    if codec is None and beside is None:
        codec = default_model().codec_dir
        log.info("note: no codec beside %s and no --codec given: using the bundled codec (%s)", path, codec)
    return str(model), str(codec or beside), Defaults()
