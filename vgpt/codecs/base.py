"""The latent codec interface: frames in [-1, 1] <-> scaled latents.

latent = encoder(frames) * scaling_factor; decode divides by it (reference section 1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from vgpt.checkpoint import content_hash


class LatentCodec(ABC):
    latent_channels: int
    downsample: int  # pixels per latent along each side
    scaling_factor: float

    @abstractmethod
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> scaled latents [B, C, H/ds, W/ds]."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [B, C, h, w] -> frames [B, 3, h*ds, w*ds] in about [-1, 1]."""

    @abstractmethod
    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The weights that decide the latents (the encoder's; not the decoder's)."""

    def latent_id(self) -> str:
        """What identifies the latents this codec makes: a hash of the encoder's weights and the scaling
        factor. A retrained decoder (`vgpt-train-codec --decoder-only`) keeps it; a model trained on one
        codec's latents records it, and another codec's latents are refused for that model."""
        return content_hash({**self.encoder_state(), "scaling_factor": torch.tensor([float(self.scaling_factor)])})

    def encode_video(self, frames: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """[B, F, 3, H, W] -> [B, F, C, h, w], `batch` frames per codec call."""
        return self._per_frame(self.encode, frames, batch)

    def decode_video(self, latents: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """[B, F, C, h, w] -> [B, F, 3, H, W]."""
        return self._per_frame(self.decode, latents, batch)

    @staticmethod
    def _per_frame(fn, x: torch.Tensor, batch: int) -> torch.Tensor:
        B, F = x.shape[:2]
        flat = x.reshape(B * F, *x.shape[2:])  # [B*F, ...]
        out = torch.cat([fn(flat[i : i + batch]) for i in range(0, flat.shape[0], batch)])
        return out.reshape(B, F, *out.shape[1:])  # [B, F, ...]
