"""A light convolutional autoencoder of our own: 8x down-sampling to 4 channels, torch only.

It stands in for the SDXL VAE where that is too heavy (tests, the bundled CPU model). It is
deterministic: encode returns the latent itself, no sampling.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vgpt.atomic import atomic_dir
from vgpt.checkpoint import CheckpointError, content_hash
from vgpt.codecs.base import LatentCodec

FORMAT = "vgpt-light-codec"


@dataclass(frozen=True)
class LightCodecConfig:
    # Channels after each of the three 2x down-samplings (8x in all).
    channels: tuple[int, int, int] = (16, 32, 64)
    latent_channels: int = 4
    # Set after training so that latents have about unit variance, like the SDXL VAE's 0.13025.
    scaling_factor: float = 1.0

    def __post_init__(self) -> None:
        if len(self.channels) != 3 or any(c < 1 for c in self.channels):
            raise ValueError(f"LightCodecConfig.channels={self.channels}: three positive widths")
        if self.latent_channels < 1:
            raise ValueError(f"LightCodecConfig.latent_channels={self.latent_channels}: must be positive")
        if not self.scaling_factor > 0:
            raise ValueError(f"LightCodecConfig.scaling_factor={self.scaling_factor}: must be > 0")
        object.__setattr__(self, "channels", tuple(self.channels))


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        groups = 8 if c % 8 == 0 else 1
        self.body = nn.Sequential(
            nn.GroupNorm(groups, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
            nn.GroupNorm(groups, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
        )  # fmt: skip

    def forward(self, x):
        return x + self.body(x)


class LightCodec(nn.Module, LatentCodec):
    """Encoder: three stride-2 convolutions with residual blocks; decoder: nearest up-sampling and
    convolutions (no transposed convolutions, so no checkerboard artefacts). GroupNorm throughout."""

    downsample = 8

    def __init__(self, config: LightCodecConfig | None = None) -> None:
        super().__init__()
        self.config = config or LightCodecConfig()
        c1, c2, c3 = self.config.channels
        lc = self.config.latent_channels
        self.latent_channels = lc
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), _ResBlock(c1),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), _ResBlock(c2),  # H/2
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), _ResBlock(c3),  # H/4
            nn.Conv2d(c3, c3, 3, stride=2, padding=1), _ResBlock(c3),  # H/8
            nn.GroupNorm(8 if c3 % 8 == 0 else 1, c3), nn.SiLU(), nn.Conv2d(c3, lc, 3, padding=1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(lc, c3, 3, padding=1), _ResBlock(c3), _ResBlock(c3),
            nn.Upsample(scale_factor=2), nn.Conv2d(c3, c3, 3, padding=1), _ResBlock(c3),  # H/4
            nn.Upsample(scale_factor=2), nn.Conv2d(c3, c2, 3, padding=1), _ResBlock(c2),  # H/2
            nn.Upsample(scale_factor=2), nn.Conv2d(c2, c1, 3, padding=1), _ResBlock(c1),  # H
            nn.GroupNorm(8 if c1 % 8 == 0 else 1, c1), nn.SiLU(), nn.Conv2d(c1, 3, 3, padding=1),
        )  # fmt: skip

    @property
    def scaling_factor(self) -> float:
        return self.config.scaling_factor

    def _check(self, x: torch.Tensor, channels: int, multiple: int, what: str) -> None:
        if x.ndim != 4 or x.shape[1] != channels or x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(
                f"{what} must be [B, {channels}, H, W] with H, W multiples of {multiple}, got {tuple(x.shape)}"
            )

    def encoder_state(self) -> dict[str, torch.Tensor]:
        return dict(self.encoder.state_dict())

    def encode_unscaled(self, frames: torch.Tensor) -> torch.Tensor:
        self._check(frames, 3, self.downsample, "frames")
        return self.encoder(frames.to(self.encoder[0].weight.dtype))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encode_unscaled(frames) * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self._check(latents, self.latent_channels, 1, "latents")
        return self.decoder(latents.to(self.decoder[0].weight.dtype) / self.scaling_factor)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Reconstruction, for training."""
        return self.decode(self.encode(frames))

    def with_scaling_factor(self, scaling_factor: float) -> LightCodec:
        self.config = dataclasses.replace(self.config, scaling_factor=float(scaling_factor))
        return self

    def save(self, path: str | Path, extra: dict | None = None, overwrite: bool = False) -> Path:
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        manifest = {"format": FORMAT, "weights": "codec.safetensors", "weights_sha256": content_hash(state),
                    "config": dataclasses.asdict(self.config), "extra": extra or {}}  # fmt: skip
        with atomic_dir(path, overwrite=overwrite) as tmp:
            save_file(state, str(tmp / "codec.safetensors"))
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LightCodec:
        path = Path(path)
        manifest_file = path / "manifest.json"
        if not manifest_file.is_file():
            raise CheckpointError(f"{path}: no manifest.json; not a light codec folder")
        try:
            manifest = json.loads(manifest_file.read_text())
            fmt = manifest.get("format")
        except (ValueError, AttributeError, RecursionError) as err:
            raise CheckpointError(f"{manifest_file} is not a JSON object ({err}); re-save the codec") from None
        if fmt != FORMAT:
            raise CheckpointError(f"{manifest_file}: format {fmt!r}, expected {FORMAT!r}")
        missing = [k for k in ("weights", "weights_sha256", "config") if k not in manifest]
        if missing:
            raise CheckpointError(f"{manifest_file} lacks {', '.join(missing)}; re-save the codec")
        weights = path / manifest["weights"]
        if not weights.is_file():
            raise CheckpointError(f"{path}: the weights file {manifest['weights']} is missing; re-save the codec")
        try:
            state = load_file(str(weights))
        except Exception as err:  # safetensors raises its own error types for truncated or foreign files
            raise CheckpointError(f"{weights} cannot be read ({err}); re-save the codec") from None
        if content_hash(state) != manifest["weights_sha256"]:
            raise CheckpointError(f"{path}: codec weights do not match the manifest's hash; re-save them")
        try:  # a config edited by hand (latent_channels: -4, a width as text) or that the weights do not fit
            codec = cls(LightCodecConfig(**manifest["config"]))
            codec.load_state_dict(state, strict=True)
        except (TypeError, ValueError, RuntimeError) as err:
            reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"{manifest_file}: config {manifest['config']!r} is not a light codec's, or does not fit its weights "
                f"({reason}); re-save the codec"
            ) from None
        return codec.eval()
