import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import random_model, write_released
from vgpt.checkpoint import CheckpointError, content_hash, load_checkpoint, save_checkpoint
from vgpt.forward import forward_call
from vgpt.tokens import build_sequence, conditional_frames


def _same_outputs(a, b):
    """Same weights give the same outputs. Not bitwise: CPU kernels take different SIMD paths for
    differently aligned buffers (seen: 6e-7 on O(1) outputs), so 1e-5."""
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    call = forward_call(a.config, build_sequence(conditional_frames(2, 1), 4))
    clean, noisy, t = torch.randn(1, 2, 4, 4, 4), torch.randn(1, 1, 4, 4, 4), torch.rand(1, 1)
    with torch.no_grad():
        torch.testing.assert_close(a(call, clean, noisy, t), b(call, clean, noisy, t), atol=1e-5, rtol=0)
    return True


def test_our_format_round_trips(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "ckpt", extra={"step": 3})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "manifest.json", "model.safetensors"]
    loaded = load_checkpoint(path)
    assert loaded.format == "vgpt" and loaded.extra == {"step": 3}
    assert loaded.model.config == tiny_model.config
    assert loaded.weights_sha256 == content_hash(tiny_model.state_dict())
    assert _same_outputs(loaded.model, tiny_model)
    assert not list(tmp_path.glob(".*tmp")), "no temporary folder is left behind"


def test_our_format_refuses_changed_weights(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "ckpt")
    state = load_file(str(path / "model.safetensors"))
    state["llm.norm.weight"] += 1
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"content hash .* does not match the manifest"):
        load_checkpoint(path)


def test_our_format_refuses_a_newer_format_and_existing_folders(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "ckpt")
    with pytest.raises(
        FileExistsError, match="exists and is not empty; choose another path, or replace it with --force"
    ):
        save_checkpoint(tiny_model, path)
    save_checkpoint(tiny_model, path, overwrite=True)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(CheckpointError, match="written by a newer vgpt"):
        load_checkpoint(path)


@pytest.mark.parametrize("weights", ["safetensors", "safetensors-shards", "bin", "bin-shards"])
def test_released_format_loads_in_each_weight_form(tmp_path, tiny_model, weights):
    path = write_released(tiny_model, tmp_path / "released", weights)
    loaded = load_checkpoint(path, allow_pickle="bin" in weights)
    assert loaded.format == "released"
    c, ref = loaded.model.config, tiny_model.config
    assert (c.rope_long_factor, c.rope_short_factor) == (ref.rope_long_factor, ref.rope_short_factor)
    assert (c.latent_channels, c.patch_size, c.pos_embed_max_size) == (4, 2, 32)
    assert c.prediction == "x"
    assert _same_outputs(loaded.model, tiny_model)


def test_legacy_model_pt_is_flagged_as_velocity(tmp_path, tiny_model, caplog):
    path = write_released(tiny_model, tmp_path / "released", "pt")
    with caplog.at_level(logging.WARNING):
        loaded = load_checkpoint(path, allow_pickle=True)
    assert loaded.model.config.prediction == "velocity" and loaded.extra["legacy_velocity"]
    assert "predicts velocity, not x" in caplog.text


@pytest.mark.parametrize("weights", ["bin", "bin-shards", "pt"])
def test_pickle_needs_consent(tmp_path, tiny_model, weights):
    path = write_released(tiny_model, tmp_path / "released", weights)
    with pytest.raises(CheckpointError, match=r"pickle-based file.*allow_pickle=True \(vgpt-export --allow-pickle\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("tokenizer", ["tokenizer.json", "added_tokens.json", "tokenizer_config.json"])
def test_special_token_ids_come_from_the_tokenizer(tmp_path, tiny_config, tokenizer):
    model = random_model(tiny_config.replace(diffusion_token_id=3, image_start_token_id=7, image_end_token_id=11))
    path = write_released(model, tmp_path / "released", tokenizer=tokenizer)
    c = load_checkpoint(path).model.config
    assert (c.diffusion_token_id, c.image_start_token_id, c.image_end_token_id) == (3, 7, 11)


def test_missing_special_token_is_named(tmp_path, tiny_model):
    path = write_released(tiny_model, tmp_path / "released")
    tok = json.loads((path / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "</img>"]
    (path / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(CheckpointError, match=r"do not define \['</img>'\]"):
        load_checkpoint(path)


def test_strict_loading_lists_missing_unexpected_and_misshaped_keys(tmp_path, tiny_model):
    path = write_released(tiny_model, tmp_path / "released")
    state = load_file(str(path / "model.safetensors"))
    del state["llm.layers.1.mlp.down_proj.weight"]
    state["lm_head.weight"] = torch.zeros(16, 32)
    state["final_layer.linear.bias"] = torch.zeros(15)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "missing keys: llm.layers.1.mlp.down_proj.weight" in message
    assert "unexpected keys: lm_head.weight" in message
    assert "wrong shapes: final_layer.linear.bias: checkpoint (15,), model (16,)" in message


def test_bad_folders_get_clear_errors(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_checkpoint(tmp_path / "empty")
    path = write_released(tiny_model, tmp_path / "released", "bin-shards")
    (path / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(CheckpointError, match="found 1 of 2 weight shards"):
        load_checkpoint(path, allow_pickle=True)
    path = write_released(tiny_model, tmp_path / "truncated")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights found"):
        load_checkpoint(path)


def test_load_in_bfloat16_and_override_the_rope_policy(tmp_path, tiny_model):
    path = write_released(tiny_model, tmp_path / "released")
    loaded = load_checkpoint(path, dtype=torch.bfloat16, rope_factor_policy="length")
    assert loaded.model.dtype == torch.bfloat16
    assert loaded.model.config.rope_factor_policy == "length"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: {**m, "weights": "../../etc/passwd"}, "only name files inside its own folder"),
        (lambda m: {k: v for k, v in m.items() if k != "weights_sha256"}, "'weights_sha256' must be a string"),
        (lambda m: ["a", "list"], "holds a JSON list, not an object"),
        (lambda m: "[" * 100_000, "deeper than 64 levels"),
        (lambda m: b'{"format": "\xff"}', "not UTF-8"),
    ],
)
def test_a_crafted_checkpoint_manifest_is_one_clear_error(tmp_path, tiny_model, change, message):
    """The audit: `weights: ../../etc/passwd` was opened, a list or a missing hash was a traceback."""
    path = save_checkpoint(tiny_model, tmp_path / "ckpt")
    manifest = change(json.loads((path / "manifest.json").read_text()))
    if isinstance(manifest, bytes):
        (path / "manifest.json").write_bytes(manifest)
    else:
        (path / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(path)
    assert "passwd" not in str(err.value) or "names '../../etc/passwd'" in str(err.value)


def test_a_checkpoint_manifest_beyond_the_size_cap_is_refused_before_it_is_read(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "ckpt")
    with open(path / "manifest.json", "r+b") as f:
        f.truncate(1 << 30)  # sparse: 1 GB that would take seconds and gigabytes to parse
    with pytest.raises(CheckpointError, match="is 1073741824 bytes, more than the 16777216"):
        load_checkpoint(path)
