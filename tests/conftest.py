"""Shared fixtures: tiny models and released-format checkpoint folders generated from them."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vgpt.checkpoint import load_checkpoint
from vgpt.codecs import load_codec
from vgpt.config import ModelConfig, get_preset
from vgpt.default_model import default_model
from vgpt.model import VideoGPT

# The commands run as a user types them, progress bars included, even though pytest's output is no
# terminal (vgpt.progress shows bars on any output with this set).
os.environ.setdefault("VGPT_PROGRESS", "1")
# torch's export tracing logs DEBUG lines by the thousand into a failing test's report.
for _name in ("torch", "torch.__trace", "torch._dynamo", "torch.export", "torch.onnx", "onnxscript"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def random_model(config: ModelConfig, seed: int = 0) -> VideoGPT:
    """A model whose every parameter is random and O(1): default init leaves the adaLN and output
    layers at scales where bugs in the head could hide, so draw everything afresh."""
    torch.manual_seed(seed)
    model = VideoGPT(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
            elif name == "llm.embed_tokens.weight":
                p.copy_(torch.randn_like(p))
            else:  # unit-variance outputs for unit-variance inputs
                p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
    return model


@pytest.fixture
def tiny_config() -> ModelConfig:
    return get_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config) -> VideoGPT:
    return random_model(tiny_config)


def hf_config(config: ModelConfig) -> dict:
    """The Phi-3 config.json a released checkpoint of this config carries."""
    return {
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": {
            "type": "su",
            "long_factor": list(config.rope_long_factor),
            "short_factor": list(config.rope_short_factor),
        },
        "original_max_position_embeddings": config.original_max_position_embeddings,
        "max_position_embeddings": config.max_position_embeddings,
        "vocab_size": config.vocab_size,
        "torch_dtype": "bfloat16",
    }


def write_released(model: VideoGPT, path: Path, weights: str = "safetensors", tokenizer: str = "tokenizer.json"):
    """Write `model` as a released Video-GPT folder with the weights in the named form."""
    path.mkdir(parents=True, exist_ok=True)
    c = model.config
    (path / "config.json").write_text(json.dumps(hf_config(c)))
    tokens = {"<|diffusion|>": c.diffusion_token_id, "<img>": c.image_start_token_id, "</img>": c.image_end_token_id}
    if tokenizer == "tokenizer.json":
        added = [{"id": i, "content": s, "special": True} for s, i in tokens.items()]
        (path / "tokenizer.json").write_text(json.dumps({"version": "1.0", "added_tokens": added}))
    elif tokenizer == "added_tokens.json":
        (path / "added_tokens.json").write_text(json.dumps(tokens))
    elif tokenizer == "tokenizer_config.json":
        decoder = {str(i): {"content": s, "special": True} for s, i in tokens.items()}
        (path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder}))
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if weights == "safetensors":
        save_file(state, str(path / "model.safetensors"))
    elif weights == "bin":
        torch.save(state, path / "pytorch_model.bin")
    elif weights in ("bin-shards", "safetensors-shards"):
        keys = sorted(state)
        halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
        index = {"metadata": {}, "weight_map": {}}
        for i, part in enumerate(halves, 1):
            ext = "bin" if weights == "bin-shards" else "safetensors"
            prefix = "pytorch_model" if ext == "bin" else "model"
            name = f"{prefix}-{i:05d}-of-00002.{ext}"
            shard = {k: state[k] for k in part}
            torch.save(shard, path / name) if ext == "bin" else save_file(shard, str(path / name))
            index["weight_map"].update(dict.fromkeys(part, name))
        (path / f"{prefix}.{ext}.index.json").write_text(json.dumps(index))
    elif weights == "pt":
        torch.save({"state_dict": state}, path / "model.pt")
    else:
        raise ValueError(weights)
    return path


def default_model_parts():
    """The default model, codec, layout and sampler, as its defaults.json sets them."""
    default = default_model()
    model = load_checkpoint(default.model_dir).model
    return default, model, load_codec(default.codec_dir), default.layout(model.config), default.sampler()


def _has_gpu() -> bool:
    """A CUDA GPU that torch or ONNX Runtime can use."""
    if torch.cuda.is_available():
        return True
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def pytest_collection_modifyitems(config, items):
    """The declared markers do what they say: `gpu` tests are skipped without a CUDA GPU, `tensorrt`
    tests without an importable TensorRT (scripts/gpu_check.sh runs them where both are)."""
    import importlib.util

    missing = {"gpu": None if _has_gpu() else "needs a CUDA GPU",
               "tensorrt": None if importlib.util.find_spec("tensorrt") else "needs TensorRT"}  # fmt: skip
    for item in items:
        for marker, reason in missing.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(kib, read_only=False)`: a folder on a tmpfs of that size (a real full disk: writes fail
    with ENOSPC), or read-only (EROFS) after `remount_read_only(path)`. Needs the right to mount (root);
    the test is skipped without it."""
    import subprocess

    mounted = []

    def make(kib: int) -> Path:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(path: Path) -> None:
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
