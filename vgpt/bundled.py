"""The bundled default: our `small` model and light codec, trained on synthetic physics videos.

`vgpt/assets/default/` holds `model/` (a vgpt checkpoint), `codec/` (a light codec) and
`bundle.json` (the layout and sampler settings they were trained and evaluated with, and the
command that reproduces them).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).parent / "assets" / "default"


class BundleMissingError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class BundledDefault:
    root: Path
    settings: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def codec_dir(self) -> Path:
        return self.root / "codec"


def bundled_default(root: str | Path | None = None) -> BundledDefault:
    root = Path(root) if root is not None else DEFAULT_DIR
    settings = root / "bundle.json"
    if not settings.is_file() or not (root / "model").is_dir() or not (root / "codec").is_dir():
        raise BundleMissingError(
            f"the bundled model is missing from {root} (needs model/, codec/ and bundle.json); reinstall vgpt "
            "or train one with the command in the README"
        )
    return BundledDefault(root, json.loads(settings.read_text()))


def resolve_checkpoint(source: str | Path | None, codec: str | Path | None = None) -> tuple[str, str, dict[str, Any]]:
    """What a user names as the model -> (checkpoint folder, codec folder, default settings).

    None is the bundled default; a folder with bundle.json is laid out like it; anything else is a
    checkpoint or a training run. A checkpoint without a codec beside it (a training checkpoint, say)
    takes `codec`, else the bundled codec, with a printed note."""
    from vgpt.checkpoint import CheckpointError, weights_dir

    path = None if source is None else Path(source)
    if path is not None and not path.exists():
        raise CheckpointError(f"{path} does not exist: name an export bundle, a checkpoint folder or a training run")
    if path is None or (path / "bundle.json").is_file():  # the bundled default, or a folder laid out like it
        bundle = bundled_default(path)
        return str(bundle.model_dir), str(codec or bundle.codec_dir), dict(bundle.settings)
    model = weights_dir(path)
    beside = next((p / name for p in (path, model.parent) for name in ("codec", "vae") if (p / name).is_dir()), None)
    if codec is None and beside is None:
        codec = bundled_default().codec_dir
        log.info("note: no codec beside %s and no --codec given: using the bundled codec (%s)", path, codec)
    return str(model), str(codec or beside), {}
