"""The SDXL VAE codec through diffusers, on a tiny AutoencoderKL saved to a local folder."""

import pytest
import torch

from vgpt.codecs import load_codec

diffusers = pytest.importorskip("diffusers")


def test_sdxl_codec_samples_and_scales(tmp_path):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, scaling_factor=0.13025,
    )  # fmt: skip
    vae.save_pretrained(tmp_path / "vae")
    codec = load_codec(tmp_path / "vae")
    assert (codec.latent_channels, codec.downsample, codec.scaling_factor) == (4, 8, 0.13025)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    codec.generator = torch.Generator().manual_seed(1)
    z = codec.encode(x)
    assert z.shape == (1, 4, 4, 4)
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
        expected = dist.sample(generator=torch.Generator().manual_seed(1)) * 0.13025
    # Same modules, same generator state: only kernel-path round-off (1e-5).
    torch.testing.assert_close(z, expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        expected_frames = vae.decode(z / 0.13025).sample
    torch.testing.assert_close(codec.decode(z), expected_frames, atol=1e-5, rtol=0)
