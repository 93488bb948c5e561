"""The SDXL VAE through diffusers' AutoencoderKL, from a local folder (optional extra `vae`)."""

from __future__ import annotations

from pathlib import Path

import torch

from vgpt.codecs.base import LatentCodec


class SDXLVAECodec(LatentCodec):
    """latent = vae.encode(x).latent_dist.sample() * scaling_factor; decode divides by it."""

    downsample = 8

    def __init__(self, vae, generator: torch.Generator | None = None) -> None:
        self.vae = vae.eval()
        self.generator = generator
        self.latent_channels = int(vae.config.latent_channels)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_directory(
        cls, path: str | Path, dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None
    ) -> SDXLVAECodec:
        try:
            from diffusers import AutoencoderKL
        except ImportError as err:
            raise ImportError("the SDXL VAE codec needs diffusers: pip install 'vgpt[vae]'") from err
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json; pass the vae/ folder of the checkpoint")
        vae = AutoencoderKL.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
        return cls(vae, generator)

    def encoder_state(self) -> dict[str, torch.Tensor]:
        parts = {"encoder": self.vae.encoder, "quant_conv": self.vae.quant_conv}
        return {f"{part}.{k}": v for part, module in parts.items() if module is not None
                for k, v in module.state_dict().items()}  # fmt: skip

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        dist = self.vae.encode(frames.to(self.vae.dtype)).latent_dist
        return dist.sample(generator=self.generator) * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample
