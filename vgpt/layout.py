"""`Layout`, the shape of one inference problem; torch-free, like the `vgpt.config` it builds on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vgpt.config import ConfigError, ModelConfig

# Pixels per latent along each side: the light codec's and the SDXL VAE's 8x downsampling.
VAE_DOWNSAMPLE = 8


@dataclass(frozen=True)
class Layout:
    """The static shape of one inference problem: M history frames, G clip frames, latent h x w.

    Export, calibration, engine builds and the runtime agree on it through the artifact manifest.
    """

    history_frames: int  # M
    clip_frames: int  # G
    latent_height: int  # h (pixels / VAE_DOWNSAMPLE)
    latent_width: int  # w
    patch_size: int = 2
    pos_embed_max_size: int = 192
    vae_downsample: int = field(default=VAE_DOWNSAMPLE)

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
        multiple = VAE_DOWNSAMPLE * config.patch_size
        for name, value in (("height", height), ("width", width)):
            if value % multiple:
                raise ConfigError(
                    f"frame {name}={value} px is not a multiple of {multiple} (VAE {VAE_DOWNSAMPLE}x times patch "
                    f"{config.patch_size}); crop or resize to {value - value % multiple} px"
                )
        return cls.for_model(config, history_frames, clip_frames, height // VAE_DOWNSAMPLE, width // VAE_DOWNSAMPLE)

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


@dataclass(frozen=True)
class LayoutRequest:
    """A layout as a user asks for it (`--layout`, `load_model(layout=...)`): M history frames, G frames per
    clip and, optionally, the frame size in latents (`M,G,HxW`) or pixels (`M,G,HxWpx`); without a size, the
    model's own. `resolve` makes the `Layout` for a model; `matches` picks one of a bundle's layouts."""

    history: int
    clip: int
    size: tuple[int, int] | None = None
    pixels: bool = False

    def pixel_size(self, default: tuple[int, int]) -> tuple[int, int]:
        """The frame size in pixels: the size asked for, else `default` (the model's)."""
        if self.size is None:
            return default
        return self.size if self.pixels else (self.size[0] * VAE_DOWNSAMPLE, self.size[1] * VAE_DOWNSAMPLE)

    def resolve(self, config: ModelConfig, default_pixels: tuple[int, int] = (64, 64)) -> Layout:
        if self.size is not None and not self.pixels:
            return Layout.for_model(config, self.history, self.clip, *self.size)
        return Layout.from_pixels(config, self.history, self.clip, *self.pixel_size(default_pixels))

    def matches(self, layout: Layout) -> bool:
        if (self.history, self.clip) != (layout.history_frames, layout.clip_frames):
            return False
        if self.size is None:
            return True
        return self.size == (layout.pixel_size if self.pixels else (layout.latent_height, layout.latent_width))

    def __str__(self) -> str:
        size = "" if self.size is None else f",{self.size[0]}x{self.size[1]}{'px' if self.pixels else ''}"
        return f"{self.history},{self.clip}{size}"
