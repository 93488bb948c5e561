"""Named precision policies: which layers of the transformer run in FP8/INT8 and which stay in the
model's own precision, as ModelOpt quantization configs.

A policy lists the Linear layers that are quantized (weights and their input activations) by module
name pattern; every other quantizer ModelOpt inserts stays disabled. Norms, softmax, RoPE and the
sampler arithmetic are not Linear layers and never get a quantizer. The codec graphs are never
quantized (they are small convolutional networks whose error lands directly in the pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vgpt.export.contract import QUANTIZED_PRECISIONS

# ModelOpt's quantizer formats: FP8 E4M3 per tensor; INT8 weights per output channel, activations
# per tensor (its INT8_DEFAULT_CFG and FP8_DEFAULT_CFG).
_FORMATS: dict[str, dict[str, dict[str, Any]]] = {
    "fp8": {"weight": {"num_bits": (4, 3), "axis": None}, "input": {"num_bits": (4, 3), "axis": None}},
    "int8": {"weight": {"num_bits": 8, "axis": 0}, "input": {"num_bits": 8, "axis": None}},
}


@dataclass(frozen=True)
class PrecisionPolicy:
    name: str
    description: str
    quantize: tuple[str, ...]  # module-name patterns (fnmatch) of the Linear layers to quantize
    keep: tuple[tuple[str, str], ...]  # (module pattern, why it stays in high precision), documented

    def quant_config(self, precision: str) -> dict[str, Any]:
        """The ModelOpt config (`mtq.quantize(model, config, forward_loop)`) for this policy."""
        if precision not in _FORMATS:
            raise ValueError(f"precision {precision!r}: choose one of {QUANTIZED_PRECISIONS}")
        fmt = _FORMATS[precision]
        entries: list[dict[str, Any]] = [{"quantizer_name": "*", "enable": False}]
        for pattern in self.quantize:
            entries.append({"quantizer_name": f"{pattern}.weight_quantizer", "cfg": dict(fmt["weight"])})
            entries.append({"quantizer_name": f"{pattern}.input_quantizer", "cfg": dict(fmt["input"])})
        # Explicit exclusions last, so that a broad `quantize` pattern can never reach them.
        for pattern, _ in self.keep:
            entries.append({"quantizer_name": f"{pattern}.*", "enable": False})
        return {"quant_cfg": entries, "algorithm": "max"}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "quantize": list(self.quantize),
                "keep": [{"modules": p, "why": why} for p, why in self.keep]}  # fmt: skip


_KEEP = (
    ("x_embedder", "patch embedder of noisy latents: first layer, sees raw latents"),
    ("input_x_embedder", "patch embedder of clean history latents"),
    ("time_token", "timestep embedding: sinusoidal features with a wide dynamic range"),
    ("t_embedder", "timestep embedding of the output head"),
    ("final_layer", "output head: its error goes straight into x-prediction, amplified by 1/(1 - sigma)"),
    ("llm.embed_tokens", "role-token embedding table (a lookup, not a matmul)"),
)

_ATTENTION = ("llm.layers.*.self_attn.qkv_proj", "llm.layers.*.self_attn.o_proj")
_MLP = ("llm.layers.*.mlp.gate_up_proj", "llm.layers.*.mlp.down_proj")

POLICIES: dict[str, PrecisionPolicy] = {
    # Every matmul of the transformer's decoder layers: attention projections and the MLP.
    "backbone": PrecisionPolicy(
        "backbone",
        "all decoder-layer Linear layers (qkv, o, gate_up, down) quantized; embedders and head kept",
        quantize=_ATTENTION + _MLP,
        keep=_KEEP,
    ),
    # The MLP carries about two thirds of the backbone's weights; attention projections stay in high
    # precision, for models whose attention is sensitive.
    "mlp": PrecisionPolicy(
        "mlp",
        "decoder-layer MLP Linear layers (gate_up, down) quantized; attention, embedders and head kept",
        quantize=_MLP,
        keep=(*_KEEP, ("llm.layers.*.self_attn", "attention projections (policy choice)")),
    ),
}
DEFAULT_POLICY = "backbone"


def get_policy(name: str) -> PrecisionPolicy:
    if name not in POLICIES:
        raise ValueError(f"precision policy {name!r}: choose one of {sorted(POLICIES)}")
    return POLICIES[name]
