"""A codec is checked against the model it is paired with: the latents' channels, and the latent id
(encoder weights and scaling factor) the model recorded when it was trained."""

import pytest
import torch

from vgpt.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from vgpt.codecs import CODEC_LATENTS, LightCodec, LightCodecConfig, check_codec_fits, load_codec
from vgpt.config import get_preset
from vgpt.default_model import default_model
from vgpt.model import VideoGPT


def _trained_on(codec: LightCodec, latent_channels: int = 4) -> LoadedCheckpoint:
    model = VideoGPT(get_preset("tiny").replace(latent_channels=latent_channels))
    extra = {CODEC_LATENTS: codec.latent_id(), "train_config": {"codec": "runs/codec"}}
    return LoadedCheckpoint(model, "vgpt", "run/model/model.safetensors", "0" * 64, extra)


def test_the_codec_a_model_was_trained_on_fits_and_a_retrained_decoder_keeps_fitting():
    torch.manual_seed(0)
    codec = LightCodec()
    checkpoint = _trained_on(codec)
    check_codec_fits(codec, checkpoint, "runs/codec")
    with torch.no_grad():
        codec.decoder[0].weight.add_(1.0)  # what vgpt-train-codec --decoder-only changes
    check_codec_fits(codec, checkpoint, "runs/codec")


def test_another_encoder_or_scaling_factor_is_refused_naming_the_codec_to_pass():
    torch.manual_seed(0)
    checkpoint = _trained_on(LightCodec())
    torch.manual_seed(1)
    other = LightCodec()
    with pytest.raises(CheckpointError, match=r"makes other latents .* pass --codec runs/codec"):
        check_codec_fits(other, checkpoint, "other/")
    torch.manual_seed(0)
    rescaled = LightCodec(LightCodecConfig(scaling_factor=0.5))
    with pytest.raises(CheckpointError, match="makes other latents"):
        check_codec_fits(rescaled, checkpoint, "other/")


def test_a_codec_of_other_latent_channels_is_refused():
    codec = LightCodec(LightCodecConfig(latent_channels=8))
    with pytest.raises(CheckpointError, match="makes 8-channel latents but the model takes 4: pass --codec runs/codec"):
        check_codec_fits(codec, _trained_on(LightCodec()), "wide/")


def test_a_checkpoint_that_records_no_codec_is_checked_on_channels_only():
    checkpoint = LoadedCheckpoint(VideoGPT(get_preset("tiny")), "vgpt", "m/model.safetensors", "0" * 64, {})
    check_codec_fits(LightCodec(), checkpoint, "codec/")


def test_the_bundled_model_records_the_bundled_codecs_latents():
    default = default_model()
    loaded = load_checkpoint(default.model_dir)
    assert loaded.extra[CODEC_LATENTS] == load_codec(default.codec_dir).latent_id()
