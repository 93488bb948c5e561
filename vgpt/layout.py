"""`Layout`, the shape of one inference problem; torch-free, like the `vgpt.config` it builds on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vgpt.config import ConfigError, ModelConfig


@dataclass(frozen=True)
class Layout:
    """The static shape of one inference problem: M history frames, G clip frames, latent h x w.

    Export, calibration, engine builds and the runtime agree on it through the artifact manifest.
    """

    history_frames: int  # M
    clip_frames: int  # G
    latent_height: int  # h (pixels / 8)
    latent_width: int  # w
    patch_size: int = 2
    pos_embed_max_size: int = 192
    vae_downsample: int = field(default=8)

    def __post_init__(self) -> None:
        for name in ("history_frames", "clip_frames", "latent_height", "latent_width", "patch_size",
                     "pos_embed_max_size", "vae_downsample"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"Layout.{name}={value!r}: must be a positive integer")
        p = self.patch_size
        for name in ("latent_height", "latent_width"):
            value = getattr(self, name)
            if value % p:
                px = self.vae_downsample * p
                raise ConfigError(
                    f"Layout.{name}={value} is not divisible by the patch size {p}; use "
                    f"{value - value % p} or {value + p - value % p} (frames a multiple of {px} px)"
                )
            if value // p > self.pos_embed_max_size:
                limit = self.pos_embed_max_size * p
                raise ConfigError(
                    f"Layout.{name}={value} gives {value // p} patches, beyond the "
                    f"{self.pos_embed_max_size}x{self.pos_embed_max_size} patch grid of the position "
                    f"table; use at most {limit} latents ({limit * self.vae_downsample} px)"
                )

    @classmethod
    def for_model(
        cls, config: ModelConfig, history_frames: int, clip_frames: int, latent_height: int, latent_width: int
    ) -> Layout:
        return cls(
            history_frames,
            clip_frames,
            latent_height,
            latent_width,
            patch_size=config.patch_size,
            pos_embed_max_size=config.pos_embed_max_size,
        )

    @classmethod
    def from_pixels(cls, config: ModelConfig, history_frames: int, clip_frames: int, height: int, width: int) -> Layout:
        multiple = 8 * config.patch_size
        for name, value in (("height", height), ("width", width)):
            if value % multiple:
                raise ConfigError(
                    f"frame {name}={value} px is not a multiple of {multiple} (VAE 8x times patch "
                    f"{config.patch_size}); crop or resize to {value - value % multiple} px"
                )
        return cls.for_model(config, history_frames, clip_frames, height // 8, width // 8)

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (h/p, w/p)."""
        return self.latent_height // self.patch_size, self.latent_width // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        """N: image tokens per frame."""
        gh, gw = self.grid
        return gh * gw

    @property
    def block(self) -> int:
        """Tokens per frame in the sequence: N image tokens plus two special tokens."""
        return self.tokens_per_frame + 2

    @property
    def pixel_size(self) -> tuple[int, int]:
        return self.latent_height * self.vae_downsample, self.latent_width * self.vae_downsample

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(**data)
