"""Latent codecs behind one interface: our light autoencoder and the SDXL VAE (diffusers)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vgpt.checkpoint import CheckpointError
from vgpt.codecs.base import LatentCodec
from vgpt.codecs.light import LightCodec, LightCodecConfig
from vgpt.untrusted import read_json_object

__all__ = ["LatentCodec", "LightCodec", "LightCodecConfig", "codec_id", "load_codec"]


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


def codec_id(path: str | Path) -> str:
    """What identifies a codec folder for caches keyed on it: a light codec's weights hash (from its
    manifest); for a diffusers folder, a hash of its config and of its weight files' names and sizes."""
    path = Path(path)
    manifest = path / "manifest.json"
    if manifest.is_file():
        weights = read_json_object(manifest, CheckpointError, "re-save the codec").get("weights_sha256")
        if not isinstance(weights, str):
            raise CheckpointError(f"{manifest}: field 'weights_sha256' must be a string; re-save the codec")
        return weights
    h = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for file in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{file.name}:{file.stat().st_size}".encode())
    return h.hexdigest()
