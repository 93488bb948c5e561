"""Latent codecs behind one interface: our light autoencoder and the SDXL VAE (diffusers)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vgpt.checkpoint import CheckpointError, LoadedCheckpoint
from vgpt.codecs.base import LatentCodec
from vgpt.codecs.light import LightCodec, LightCodecConfig
from vgpt.untrusted import read_json_object

__all__ = ["LatentCodec", "LightCodec", "LightCodecConfig", "check_codec_fits", "codec_id", "load_codec"]

# The key of a checkpoint's `extra` that records the latent_id() of the codec it was trained on.
CODEC_LATENTS = "codec_latents"


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


def check_codec_fits(codec: LatentCodec, checkpoint: LoadedCheckpoint, codec_dir: str | Path) -> None:
    """Refuse a codec whose latents are not the ones the model was trained on: another channel count,
    or (where the checkpoint records it) another encoder or scaling factor. Such a pair runs and
    predicts noise without any other sign."""
    config = checkpoint.model.config
    trained = checkpoint.extra.get("train_config", {}).get("codec") or "the codec it was trained with"
    if codec.latent_channels != config.latent_channels:
        raise CheckpointError(f"the codec {codec_dir} makes {codec.latent_channels}-channel latents but the model "
                              f"takes {config.latent_channels}: pass --codec {trained}")  # fmt: skip
    recorded = checkpoint.extra.get(CODEC_LATENTS)
    if recorded is not None and recorded != codec.latent_id():
        raise CheckpointError(
            f"the codec {codec_dir} makes other latents (encoder or scaling factor) than the model "
            f"{Path(checkpoint.weights_file).parent} was trained on (latent id {recorded[:12]}..., this codec's "
            f"{codec.latent_id()[:12]}...): "
            f"pass --codec {trained}, or retrain only a codec's decoder (vgpt-train-codec --decoder-only)"
        )
