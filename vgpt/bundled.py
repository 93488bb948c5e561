"""The bundled default: our `small` model and light codec, trained on synthetic physics videos.

`vgpt/assets/default/` holds `model/` (a vgpt checkpoint), `codec/` (a light codec) and
`bundle.json` (the layout and sampler settings they were trained and evaluated with, and the
command that reproduces them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
