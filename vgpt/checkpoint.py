"""Checkpoint IO: our own format and the released Video-GPT format.

Ours: a folder with `model.safetensors`, `config.json` (a ModelConfig) and `manifest.json`
(format, content hash of the weights, versions).

Released (reference section 8): a folder with the Phi-3 `config.json` (with `rope_scaling`),
tokenizer files holding the ids of `<|diffusion|>`, `<img>`, `</img>`, and the weights as
`model.safetensors` (or safetensors shards), `pytorch_model.bin`, `.bin` shards, or a legacy
`model.pt` (which predicts velocity, not x). Pickle-based files load only when the caller allows
it, and then with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vgpt.atomic import atomic_dir
from vgpt.config import ModelConfig, SamplerConfig
from vgpt.errors import VgptError
from vgpt.model import VideoGPT
from vgpt.student import StudentSampler, student_of
from vgpt.untrusted import MAX_DOCUMENT_BYTES, inside, read_json_object

log = logging.getLogger(__name__)

FORMAT = "vgpt-checkpoint"
FORMAT_VERSION = 1
MAX_TOKENIZER_BYTES = 256 << 20  # a released tokenizer.json holds its whole vocabulary (Phi-3's: 1.9 MB)
SPECIAL_TOKENS = {
    "diffusion_token_id": "<|diffusion|>",
    "image_start_token_id": "<img>",
    "image_end_token_id": "</img>",
}
# OmniGen computes the position-table coordinates as index * 64 / grid; 64 is a code constant there.
RELEASED_POS_EMBED_BASE_SIZE = 64


class CheckpointError(VgptError, RuntimeError):
    """A checkpoint that cannot be loaded as asked: says what was found and how to fix it."""


@dataclass
class LoadedCheckpoint:
    model: VideoGPT
    format: str  # "vgpt" or "released"
    weights_file: str
    weights_sha256: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def student(self) -> StudentSampler | None:
        """The recorded sampler of a distilled student (vgpt-distill); None for a teacher."""
        return student_of(self.extra)

    def sampler(self, teacher: SamplerConfig) -> SamplerConfig:
        """How to sample these weights: a student's own table and one branch, else `teacher`."""
        student = self.student
        return teacher if student is None else student.sampler()


def content_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor in name order: independent of the
    file layout, so the same weights hash the same in any container."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    model: VideoGPT, path: str | Path, extra: dict[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Write our format atomically; returns the folder."""
    return save_state(model.config, model.state_dict(), path, extra, overwrite)


def save_state(
    config: ModelConfig,
    state: dict[str, torch.Tensor],
    path: str | Path,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a state dict of `config`'s model in our format (e.g. one gathered from sharded ranks)."""
    import vgpt

    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights": "model.safetensors",
        "weights_sha256": content_hash(state),
        "parameters": sum(v.numel() for k, v in state.items() if k != "pos_embed"),
        "dtype": str(state["x_embedder.proj.weight"].dtype).removeprefix("torch."),
        "vgpt_version": vgpt.__version__,
        "torch_version": torch.__version__,
        "extra": extra or {},
    }
    with atomic_dir(path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        (tmp / "config.json").write_text(config.to_json())
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return Path(path)


def weights_dir(path: str | Path) -> Path:
    """The model folder a user means: a training run (its latest checkpoint), a training checkpoint
    (its `ema/` averaged weights when it kept them, else `model/`), or a model folder itself."""
    p = Path(path)
    latest = p / "checkpoints" / "latest"
    if latest.is_file():
        p = p / "checkpoints" / latest.read_text().strip()
    for sub in ("ema", "model"):
        if (p / sub / "manifest.json").is_file():
            return p / sub
    return p


def read_student(path: str | Path) -> StudentSampler | None:
    """The student record of a vgpt checkpoint (or run) from its manifest alone, without the weights; None
    for a teacher or a released checkpoint."""
    manifest = weights_dir(path) / "manifest.json"
    return student_of(_read_json(manifest).get("extra", {})) if manifest.is_file() else None


def recorded_identity(path: str | Path) -> tuple[str, ModelConfig] | None:
    """The weights hash and model config a vgpt checkpoint's manifest records, read without loading
    the weights (what a cache keyed on them needs to find a hit); None for the released format, whose
    hash only loading tells, or for anything `load_checkpoint` would refuse (it says why)."""
    path = weights_dir(path)
    try:
        manifest = _read_json(path / "manifest.json")
        if manifest.get("format") != FORMAT or manifest.get("format_version", 0) > FORMAT_VERSION:
            return None
        return str(manifest["weights_sha256"]), ModelConfig.from_dict(_read_json(path / "config.json"))
    except (OSError, KeyError, ValueError, VgptError):
        return None


def load_checkpoint(
    path: str | Path,
    *,
    allow_pickle: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    rope_factor_policy: str | None = None,
) -> LoadedCheckpoint:
    """Load our format or the released format from a folder (or a training run or checkpoint folder,
    through `weights_dir`), strictly."""
    path = weights_dir(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a file; pass the folder that holds config.json and the weights")
    if (path / "manifest.json").is_file():
        loaded = _load_ours(path, dtype, device, rope_factor_policy)
    elif (path / "config.json").is_file():
        loaded = _load_released(path, allow_pickle, dtype, device, rope_factor_policy)
    else:
        raise CheckpointError(
            f"unknown checkpoint format at {path}: expected a vgpt checkpoint (manifest.json) or a "
            f"released Video-GPT folder (config.json, tokenizer files, weights); found "
            f"{sorted(p.name for p in path.iterdir())[:20]}"
        )
    loaded.model.eval()
    return loaded


def _load_ours(path: Path, dtype, device, policy) -> LoadedCheckpoint:
    manifest = _read_json(path / "manifest.json")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'manifest.json'}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer vgpt (format_version {manifest['format_version']} > "
            f"{FORMAT_VERSION}); upgrade vgpt"
        )
    for key in ("weights", "weights_sha256"):
        if not isinstance(manifest.get(key), str):
            raise CheckpointError(f"{path / 'manifest.json'}: field {key!r} must be a string, found "
                                  f"{manifest.get(key)!r}; re-save the checkpoint")  # fmt: skip
    config = ModelConfig.from_dict(_read_json(path / "config.json"))
    if policy is not None:
        config = config.replace(rope_factor_policy=policy)
    weights = inside(path, manifest["weights"], CheckpointError, f"{path / 'manifest.json'}: field 'weights'")
    if not weights.is_file():
        raise CheckpointError(f"{path}: manifest names weights {manifest['weights']!r}, which is missing")
    state = _read_safetensors(weights)
    digest = content_hash(state)
    if digest != manifest["weights_sha256"]:
        raise CheckpointError(
            f"{weights}: content hash {digest[:12]}... does not match the manifest's "
            f"{manifest['weights_sha256'][:12]}...; the weights were changed or corrupted, re-save them"
        )
    model = _build_strict(config, state, dtype, device, str(weights))
    return LoadedCheckpoint(model, "vgpt", str(weights), digest, manifest.get("extra", {}))


def _load_released(path: Path, allow_pickle: bool, dtype, device, policy) -> LoadedCheckpoint:
    hf = _read_json(path / "config.json")
    weights_file, state, legacy = _read_released_weights(path, allow_pickle)
    config = released_config(hf, state, token_ids_from_tokenizer(path))
    if legacy:
        log.warning("%s is a legacy model.pt checkpoint: it predicts velocity, not x", weights_file)
        config = config.replace(prediction="velocity")
    if policy is not None:
        config = config.replace(rope_factor_policy=policy)
    digest = content_hash(state)
    model = _build_strict(config, state, dtype, device, weights_file)
    return LoadedCheckpoint(model, "released", weights_file, digest, {"legacy_velocity": legacy})


def released_config(hf: dict[str, Any], state: dict[str, torch.Tensor], token_ids: dict[str, int]) -> ModelConfig:
    """A ModelConfig from a released Phi-3 config.json plus facts read off the weights."""
    required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    missing = [k for k in required if k not in hf]
    if missing:
        raise CheckpointError(f"config.json lacks {missing}; is this a Phi-3/Video-GPT config?")
    for key in ("x_embedder.proj.weight", "pos_embed"):
        if key not in state:
            raise CheckpointError(f"weights lack {key!r}; is this a Video-GPT checkpoint?")
    _, channels, patch, _ = state["x_embedder.proj.weight"].shape
    grid = math.isqrt(state["pos_embed"].shape[1])
    heads = hf["num_attention_heads"]
    head_dim = hf["hidden_size"] // heads
    max_pos = hf.get("max_position_embeddings", 4096)
    orig = hf.get("original_max_position_embeddings", max_pos)
    scaling = hf.get("rope_scaling")
    if scaling:
        kind = scaling.get("type", scaling.get("rope_type"))
        if kind not in ("su", "longrope"):
            raise CheckpointError(
                f"config.json rope_scaling type {kind!r} is not supported; Video-GPT uses 'su'/'longrope'"
            )
        long_f, short_f = scaling["long_factor"], scaling["short_factor"]
    else:
        long_f = short_f = [1.0] * (head_dim // 2)
        orig = max_pos  # plain RoPE: no LongRoPE attention factor
    return ModelConfig(
        name=hf.get("_name_or_path") or "released",
        hidden_size=hf["hidden_size"],
        num_hidden_layers=hf["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=hf.get("num_key_value_heads") or heads,
        intermediate_size=hf["intermediate_size"],
        rms_norm_eps=hf.get("rms_norm_eps", 1e-5),
        rope_theta=float(hf.get("rope_theta", 10000.0)),
        rope_long_factor=tuple(long_f),
        rope_short_factor=tuple(short_f),
        original_max_position_embeddings=orig,
        max_position_embeddings=max_pos,
        vocab_size=hf.get("vocab_size", 32064),
        latent_channels=channels,
        patch_size=patch,
        pos_embed_max_size=grid,
        pos_embed_base_size=RELEASED_POS_EMBED_BASE_SIZE,
        **token_ids,
    )


def token_ids_from_tokenizer(path: Path) -> dict[str, int]:
    """Ids of <|diffusion|>, <img>, </img> from tokenizer.json, added_tokens.json or
    tokenizer_config.json (each string is one added token)."""
    found: dict[str, int] = {}
    if (path / "tokenizer.json").is_file():
        for tok in _read_json(path / "tokenizer.json", MAX_TOKENIZER_BYTES).get("added_tokens", []):
            found[tok["content"]] = int(tok["id"])
    if (path / "added_tokens.json").is_file():
        found.update({k: int(v) for k, v in _read_json(path / "added_tokens.json").items()})
    if (path / "tokenizer_config.json").is_file():
        decoder = _read_json(path / "tokenizer_config.json").get("added_tokens_decoder", {})
        found.update({tok["content"]: int(i) for i, tok in decoder.items()})
    ids, missing = {}, []
    for field_name, token in SPECIAL_TOKENS.items():
        if token in found:
            ids[field_name] = found[token]
        else:
            missing.append(token)
    if missing:
        raise CheckpointError(
            f"{path}: the tokenizer files (tokenizer.json, added_tokens.json, tokenizer_config.json) "
            f"do not define {missing}; copy the tokenizer files of the released checkpoint next to its "
            "config.json"
        )
    return ids


_SHARD = re.compile(r".*-\d+-of-\d+\.(bin|safetensors)$")


def _read_released_weights(path: Path, allow_pickle: bool) -> tuple[str, dict[str, torch.Tensor], bool]:
    """(file description, state dict, is legacy model.pt) from the first weight form present."""
    if (path / "model.safetensors").is_file():
        return str(path / "model.safetensors"), _read_safetensors(path / "model.safetensors"), False
    st_shards = sorted(p for p in path.glob("*.safetensors") if _SHARD.match(p.name))
    if st_shards:
        return (*_merge_shards(path, st_shards, _read_safetensors), False)
    if (path / "pytorch_model.bin").is_file():
        file = path / "pytorch_model.bin"
        return str(file), _read_pickle(file, allow_pickle), False
    bin_shards = sorted(p for p in path.glob("*.bin") if _SHARD.match(p.name))
    if bin_shards:
        return (*_merge_shards(path, bin_shards, lambda f: _read_pickle(f, allow_pickle)), False)
    if (path / "model.pt").is_file():
        file = path / "model.pt"
        state = _read_pickle(file, allow_pickle)
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
        return str(file), state, True
    raise CheckpointError(
        f"{path}: no weights found; expected model.safetensors, safetensors shards, pytorch_model.bin, "
        "pytorch_model-XXXXX-of-XXXXX.bin shards or a legacy model.pt"
    )


def _merge_shards(path: Path, shards: list[Path], read) -> tuple[str, dict[str, torch.Tensor]]:
    total = int(_SHARD_TOTAL.match(shards[0].name).group(1))
    if len(shards) != total:
        raise CheckpointError(f"{path}: found {len(shards)} of {total} weight shards; copy the missing ones")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        part = read(shard)
        dup = set(state) & set(part)
        if dup:
            raise CheckpointError(f"{shard}: keys also in an earlier shard: {sorted(dup)[:5]}")
        state.update(part)
    return f"{path} ({len(shards)} shards)", state


_SHARD_TOTAL = re.compile(r".*-\d+-of-(\d+)\.")


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
        raise CheckpointError(f"{file}: not a readable safetensors file ({err}); re-download or re-save it") from err


def _read_pickle(file: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    if not allow_pickle:
        raise CheckpointError(
            f"{file} is a pickle-based file; loading it runs Python's unpickler. Pass allow_pickle=True "
            "(vgpt-export --allow-pickle) to load it with torch.load(weights_only=True), or convert it to "
            "safetensors once (vgpt-export --checkpoint THIS --allow-pickle writes a bundle that every "
            "command runs)"
        )
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{file}: cannot be read by torch.load(weights_only=True): {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: holds a {type(state).__name__}, expected a state dict")
    return state


def _build_strict(config: ModelConfig, state: dict[str, torch.Tensor], dtype, device, source: str) -> VideoGPT:
    """Build the model on the meta device and assign the loaded tensors: one copy of the weights."""
    with torch.device("meta"):
        model = VideoGPT(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)}, model {expected[k]}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != expected[k]
    )
    if missing or unexpected or shapes:
        parts = [f"{source} does not match the model ({config.name}):"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)):
            if items:
                shown = ", ".join(items[:20]) + (f", ... ({len(items)} in all)" if len(items) > 20 else "")
                parts.append(f"  {title}: {shown}")
        parts.append("  check that the config.json belongs to these weights")
        raise CheckpointError("\n".join(parts))
    for key in list(state):  # convert in place so that at most one tensor exists twice at a time
        state[key] = state[key].to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def _read_json(file: Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    return read_json_object(file, CheckpointError, "replace it with the file the checkpoint came with", max_bytes)
