"""Latent codecs behind one interface: our light autoencoder and the SDXL VAE (diffusers)."""

from __future__ import annotations

import json
from pathlib import Path

from vgpt.codecs.base import LatentCodec
from vgpt.codecs.light import LightCodec, LightCodecConfig

__all__ = ["LatentCodec", "LightCodec", "LightCodecConfig", "load_codec"]


def load_codec(path: str | Path) -> LatentCodec:
    """A light codec folder (manifest.json) or a diffusers AutoencoderKL folder (config.json)."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return LightCodec.load(path)
    config = path / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("_class_name") == "AutoencoderKL":
        from vgpt.codecs.sdxl import SDXLVAECodec

        return SDXLVAECodec.from_directory(path)
    raise FileNotFoundError(
        f"{path}: not a codec folder; expected a vgpt light codec (manifest.json) or a diffusers "
        "AutoencoderKL folder (config.json with _class_name AutoencoderKL)"
    )
