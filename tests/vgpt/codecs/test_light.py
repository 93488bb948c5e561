import json

import pytest
import torch
from safetensors.torch import save_file

from vgpt.checkpoint import CheckpointError
from vgpt.codecs import LightCodec, LightCodecConfig, load_codec


def test_shapes_and_scaling():
    torch.manual_seed(0)
    codec = LightCodec(LightCodecConfig(scaling_factor=0.5)).eval()
    frames = torch.rand(2, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        z = codec.encode(frames)
        assert z.shape == (2, 4, 8, 6)  # 8x down-sampling, 4 channels
        assert torch.allclose(z, codec.encode_unscaled(frames) * 0.5)
        assert codec.decode(z).shape == (2, 3, 64, 48)
        video = torch.rand(1, 5, 3, 16, 16) * 2 - 1
        assert codec.encode_video(video, batch=2).shape == (1, 5, 4, 2, 2)


def test_wrong_sizes_are_refused():
    codec = LightCodec()
    with pytest.raises(
        ValueError, match=r"frames must be \[B, 3, H, W\] with H, W multiples of 8, got \(1, 3, 60, 64\)"
    ):
        codec.encode(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"latents must be \[B, 4, H, W\]"):
        codec.decode(torch.zeros(1, 3, 8, 8))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    codec = LightCodec().with_scaling_factor(0.7).eval()
    path = codec.save(tmp_path / "codec")
    loaded = load_codec(path)
    assert isinstance(loaded, LightCodec) and loaded.scaling_factor == 0.7
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        # Same weights; 1e-5 covers alignment-dependent CPU kernel paths.
        torch.testing.assert_close(loaded.encode(x), codec.encode(x), atol=1e-5, rtol=0)
    state = dict(loaded.state_dict())
    state["decoder.0.bias"] = state["decoder.0.bias"] + 1
    save_file(state, str(path / "codec.safetensors"))
    with pytest.raises(CheckpointError, match="do not match the manifest's hash"):
        LightCodec.load(path)


def test_load_codec_rejects_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a codec folder"):
        load_codec(tmp_path)


def test_codec_id_follows_the_weights(tmp_path):
    from vgpt.codecs import codec_id

    torch.manual_seed(0)
    a = LightCodec().eval().save(tmp_path / "a")
    torch.manual_seed(1)
    b = LightCodec().eval().save(tmp_path / "b")
    assert codec_id(a) == codec_id(a) != codec_id(b)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m, p: p.write_text("{broken"), "is not a JSON object"),
        (lambda m, p: p.write_text("[1, 2]"), "is not a JSON object"),
        (lambda m, p: p.write_text(json.dumps({k: v for k, v in m.items() if k != "config"})), "lacks config"),
        (lambda m, p: p.write_text(json.dumps({**m, "weights": "gone.safetensors"})), "gone.safetensors is missing"),
        (lambda m, p: p.write_text(json.dumps({**m, "config": {"width": 3}})), "is not a light codec's"),
        (lambda m, p: (p.parent / "codec.safetensors").write_bytes(b"\0" * 64), "cannot be read"),
    ],
)
def test_malformed_codec_folders_are_one_clear_error(tmp_path, edit, message):
    path = LightCodec().eval().save(tmp_path / "codec")
    manifest_file = path / "manifest.json"
    edit(json.loads(manifest_file.read_text()), manifest_file)
    with pytest.raises(CheckpointError, match=message):
        load_codec(path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"latent_channels": -4}, "latent_channels=-4: must be positive"),
        ({"latent_channels": 8}, "does not fit its weights"),
        ({"latent_channels": 4.5}, "is not a light codec's"),
        ({"channels": [16, 32]}, "three positive widths"),
    ],
)
def test_a_codec_config_edited_by_hand_is_one_clear_error(tmp_path, config, message):
    """The weights' hash does not cover the config: an edited one must still be refused by name."""
    path = LightCodec().eval().save(tmp_path / "codec")
    manifest_file = path / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({**manifest, "config": {**manifest["config"], **config}}))
    with pytest.raises(CheckpointError, match=message):
        load_codec(path)


def test_a_codec_manifest_nested_100000_deep_is_one_clear_error(tmp_path):
    """The cache key (codec_id) and the loader once raised RecursionError on it."""
    from vgpt.codecs import codec_id

    path = LightCodec().eval().save(tmp_path / "codec")
    (path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="deeper than 64 levels"):
        codec_id(path)
    with pytest.raises(CheckpointError, match="is not a JSON object"):
        load_codec(path)
