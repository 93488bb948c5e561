"""Model configuration, named presets and the sampler's settings.

`ModelConfig` holds everything that changes the weights or the arithmetic of the model (`vgpt.layout.Layout`
holds the shape of one inference problem). Every later stage (export, calibration, engines, runtime)
reads both from an artifact's manifest. Two model families share the one transformer: Video-GPT
(videogpt-reference.md) and GPDiT (gpdit-reference.md; docs/gpdit.md), told apart by `family` and
its two options, `attention_mask` and `time_conditioning`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from vgpt.errors import VgptError

RopeFactorPolicy = Literal["long", "length"]
Target = Literal["x", "velocity"]  # what the network outputs: the clean clip (x) or the velocity
Family = Literal["videogpt", "gpdit"]
# Who attends whom (vgpt.masks): Video-GPT's hierarchical rule, GPDiT's lightweight causal attention
# (a clean frame sees only itself) or GPDiT's vanilla causal attention (clean frames see earlier ones).
MaskRule = Literal["hierarchical", "lightweight", "vanilla"]
# How the network learns the noise level: Video-GPT's time token plus the head's adaLN modulation, or
# GPDiT's parameter-free rotation of the normalised features (vgpt.time_rotation).
TimeConditioning = Literal["time_token", "rotation"]
# The options each family allows; the first of each is what the family means by default.
FAMILY_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "videogpt": {"attention_mask": ("hierarchical",), "time_conditioning": ("time_token",)},
    # The time token stays selectable so that adaLN and rotation can be compared on the same data
    # (gpdit-reference.md section 3).
    "gpdit": {"attention_mask": ("lightweight", "vanilla"), "time_conditioning": ("rotation", "time_token")},
}

# LongRoPE factors of the released model (OmniGen-v1's Phi-3 backbone, head_dim 96 -> 48 each).
# A released checkpoint's own config.json is authoritative and overrides these on load.
OMNIGEN_V1_LONG_FACTOR = (
    1.0299999713897705, 1.0499999523162842, 1.0499999523162842, 1.0799999237060547,
    1.2299998998641968, 1.2299998998641968, 1.2999999523162842, 1.4499999284744263,
    1.5999999046325684, 1.6499998569488525, 1.8999998569488525, 2.859999895095825,
    3.68999981880188, 5.419999599456787, 5.489999771118164, 5.489999771118164,
    9.09000015258789, 11.579999923706055, 15.65999984741211, 15.769999504089355,
    15.789999961853027, 18.360000610351562, 21.989999771118164, 23.079999923706055,
    30.009998321533203, 32.35000228881836, 32.590003967285156, 35.56000518798828,
    39.95000457763672, 53.840003967285156, 56.20000457763672, 57.95000457763672,
    59.29000473022461, 59.77000427246094, 59.920005798339844, 61.190006256103516,
    61.96000671386719, 62.50000762939453, 63.3700065612793, 63.48000717163086,
    63.48000717163086, 63.66000747680664, 63.850006103515625, 64.08000946044922,
    64.760009765625, 64.80001068115234, 64.81001281738281, 64.81001281738281,
)  # fmt: skip
OMNIGEN_V1_SHORT_FACTOR = (
    1.05, 1.05, 1.05, 1.1, 1.1, 1.1, 1.2500000000000002, 1.2500000000000002,
    1.4000000000000004, 1.4500000000000004, 1.5500000000000005, 1.8500000000000008,
    1.9000000000000008, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.1000000000000005, 2.1000000000000005, 2.2, 2.3499999999999996,
    2.3499999999999996, 2.3499999999999996, 2.3499999999999996, 2.3999999999999995,
    2.3999999999999995, 2.6499999999999986, 2.6999999999999984, 2.8999999999999977,
    2.9499999999999975, 3.049999999999997, 3.049999999999997, 3.049999999999997,
)  # fmt: skip


class ConfigError(VgptError, ValueError):
    """A configuration or layout value that the model cannot take."""


def from_fields(cls, data: dict[str, Any]):
    """Build a config dataclass from a dict, refusing fields it does not have (typos, other versions)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown fields {unknown}; known fields are {sorted(known)}")
    return cls(**data)


def _geometric_factors(n: int, top: float) -> tuple[float, ...]:
    """Monotone LongRoPE-like factors from 1 to `top` for our small presets.

    The small models are trained from scratch, so any positive factors are valid; rising factors
    stretch the low frequencies most, like the released ones, so every code path is exercised.
    """
    if n == 1:
        return (1.0,)
    return tuple(round(top ** (i / (n - 1)), 6) for i in range(n))


@dataclass(frozen=True)
class ModelConfig:
    """The Video-GPT transformer (or its GPDiT sibling). Field names follow the released Phi-3 config
    where one exists."""

    name: str = "custom"
    # The model family and its two options (FAMILY_OPTIONS lists what each family allows). The
    # defaults are Video-GPT's, so a checkpoint saved before the fields existed loads as Video-GPT.
    family: Family = "videogpt"
    attention_mask: MaskRule = "hierarchical"
    time_conditioning: TimeConditioning = "time_token"
    # Backbone width; the released model is Phi-3-mini (3072).
    hidden_size: int = 3072
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    # Phi-3-mini uses as many key/value heads as query heads; fewer would be grouped-query attention.
    num_key_value_heads: int = 32
    intermediate_size: int = 8192
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    # LongRoPE ("su"/"longrope"): one factor per rotary frequency (head_dim / 2 of each).
    rope_long_factor: tuple[float, ...] = OMNIGEN_V1_LONG_FACTOR
    rope_short_factor: tuple[float, ...] = OMNIGEN_V1_SHORT_FACTOR
    original_max_position_embeddings: int = 4096
    max_position_embeddings: int = 131072
    # "long": the released inference (long factors at every length). "length": stock Phi-3
    # (long factors only when the largest position id reaches original_max_position_embeddings).
    rope_factor_policy: RopeFactorPolicy = "long"
    # Token table of the backbone; only the three special tokens below are ever looked up. A
    # released checkpoint's ids are read from its tokenizer files on load; the defaults here only
    # serve random-weight models of the released dimensions (benchmarks, export sizing).
    vocab_size: int = 32064
    diffusion_token_id: int = 32011
    image_start_token_id: int = 32012
    image_end_token_id: int = 32013
    # VAE latent channels (SDXL VAE: 4) and the patch size on the latent (one token = p x p latents).
    latent_channels: int = 4
    patch_size: int = 2
    # The fixed 2-D sin-cos table covers a pos_embed_max_size^2 patch grid; coordinates are
    # index * pos_embed_base_size / pos_embed_max_size (released: 64 / 192).
    pos_embed_max_size: int = 192
    pos_embed_base_size: int = 64
    # Width of the sinusoid fed to the timestep MLPs.
    timestep_freq_dim: int = 256
    # What the output head predicts: the released model predicts the clean latent x; a legacy
    # model.pt checkpoint predicts the flow velocity.
    prediction: Target = "x"

    def __post_init__(self) -> None:
        positive = (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "intermediate_size", "vocab_size", "latent_channels", "patch_size", "pos_embed_max_size",
            "pos_embed_base_size", "timestep_freq_dim", "original_max_position_embeddings",
            "max_position_embeddings",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"ModelConfig.{name}={value!r}: must be a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"ModelConfig.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}; pick a head count that divides it"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"ModelConfig.num_key_value_heads={self.num_key_value_heads} must divide "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.head_dim % 2:
            raise ConfigError(f"ModelConfig: head_dim={self.head_dim} must be even for rotary embeddings")
        if self.hidden_size % 4:
            raise ConfigError(
                f"ModelConfig.hidden_size={self.hidden_size} must be divisible by 4 for the 2-D sin-cos table"
            )
        for name in ("rope_long_factor", "rope_short_factor"):
            factors = getattr(self, name)
            if len(factors) != self.head_dim // 2:
                raise ConfigError(
                    f"ModelConfig.{name} has {len(factors)} values; head_dim={self.head_dim} needs "
                    f"{self.head_dim // 2} (one per rotary frequency)"
                )
            if any(f <= 0 for f in factors):
                raise ConfigError(f"ModelConfig.{name} must be positive, got {factors}")
        if self.max_position_embeddings < self.original_max_position_embeddings:
            raise ConfigError(
                f"ModelConfig.max_position_embeddings={self.max_position_embeddings} is below "
                f"original_max_position_embeddings={self.original_max_position_embeddings}"
            )
        if self.rope_factor_policy not in ("long", "length"):
            raise ConfigError(
                f"ModelConfig.rope_factor_policy={self.rope_factor_policy!r}: use 'long' (released "
                "inference) or 'length' (stock Phi-3)"
            )
        if self.prediction not in ("x", "velocity"):
            raise ConfigError(f"ModelConfig.prediction={self.prediction!r}: use 'x' or 'velocity'")
        self._check_family()
        ids = (self.diffusion_token_id, self.image_start_token_id, self.image_end_token_id)
        if len(set(ids)) != 3 or not all(0 <= i < self.vocab_size for i in ids):
            raise ConfigError(
                f"ModelConfig special token ids {ids} must be distinct and in [0, vocab_size={self.vocab_size})"
            )
        # JSON round trips give lists; keep the dataclass hashable.
        object.__setattr__(self, "rope_long_factor", tuple(float(f) for f in self.rope_long_factor))
        object.__setattr__(self, "rope_short_factor", tuple(float(f) for f in self.rope_short_factor))

    def _check_family(self) -> None:
        if self.family not in FAMILY_OPTIONS:
            raise ConfigError(f"ModelConfig.family={self.family!r}: choose one of {sorted(FAMILY_OPTIONS)}")
        for name, allowed in FAMILY_OPTIONS[self.family].items():
            value = getattr(self, name)
            if value not in allowed:
                others = [f for f, options in FAMILY_OPTIONS.items() if value in options.get(name, ())]
                hint = f"; {value!r} belongs to family={others[0]!r}" if others else ""
                raise ConfigError(f"ModelConfig.{name}={value!r}: family={self.family!r} allows {list(allowed)}{hint}")

    @property
    def time_parameters(self) -> bool:
        """Whether the model has time parameters (time token, t-embedder, adaLN head); rotation has none."""
        return self.time_conditioning == "time_token"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def patch_dim(self) -> int:
        """Values per output token: p * p * C."""
        return self.patch_size * self.patch_size * self.latent_channels

    @property
    def rope_attention_factor(self) -> float:
        """LongRoPE's cos/sin multiplier sqrt(1 + ln(max/orig) / ln(orig)) (about 1.19 released)."""
        scale = self.max_position_embeddings / self.original_max_position_embeddings
        if scale <= 1.0:
            return 1.0
        return math.sqrt(1.0 + math.log(scale) / math.log(self.original_max_position_embeddings))

    def num_parameters(self) -> int:
        """Parameter count from the shapes alone (no tensors are built)."""
        d, hd = self.hidden_size, self.head_dim
        qkv = d * (self.num_attention_heads + 2 * self.num_key_value_heads) * hd
        per_layer = qkv + d * d + d * 2 * self.intermediate_size + self.intermediate_size * d + 2 * d
        patch = 2 * (d * self.latent_channels * self.patch_size**2 + d)
        timestep = 2 * (self.timestep_freq_dim * d + d + d * d + d) if self.time_parameters else 0
        modulation = d * 2 * d + 2 * d if self.time_parameters else 0
        head = modulation + d * self.patch_dim + self.patch_dim
        return self.num_hidden_layers * per_layer + d + self.vocab_size * d + patch + timestep + head

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rope_long_factor"] = list(self.rope_long_factor)
        out["rope_short_factor"] = list(self.rope_short_factor)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return from_fields(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def _small_preset(
    name: str, *, d: int, layers: int, heads: int, mlp: int, orig: int, vocab: int, **family: str
) -> ModelConfig:
    hd = d // heads
    return ModelConfig(
        name=name,
        **family,
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=mlp,
        rope_long_factor=_geometric_factors(hd // 2, 8.0),
        rope_short_factor=_geometric_factors(hd // 2, 1.5),
        # A short original context lets the tests cross the short/long switch with small layouts.
        original_max_position_embeddings=orig,
        max_position_embeddings=orig * 32,
        vocab_size=vocab,
        diffusion_token_id=vocab - 3,
        image_start_token_id=vocab - 2,
        image_end_token_id=vocab - 1,
        # 32 x 32 patches = 256 x 256 pixels: ample for our 64 px videos, and a small table.
        pos_embed_max_size=32,
        pos_embed_base_size=32,
    )


_GPDIT = {"family": "gpdit", "attention_mask": "lightweight", "time_conditioning": "rotation"}

PRESETS: dict[str, ModelConfig] = {
    # Every code path on a CPU in seconds: 2 layers, 4 heads of 8, LongRoPE factors of length 4.
    "tiny": _small_preset("tiny", d=32, layers=2, heads=4, mlp=64, orig=64, vocab=16),
    # The model we train and bundle: about 3.9M parameters (15.6 MB fp32), trainable on a CPU.
    "small": _small_preset("small", d=256, layers=4, heads=8, mlp=768, orig=4096, vocab=16),
    # Over 2 GB of fp32 weights (about 600M parameters), for exporting with external data.
    "medium": _small_preset("medium", d=1536, layers=20, heads=16, mlp=4096, orig=4096, vocab=16),
    # The released Video-GPT dimensions (Phi-3-mini backbone), about 3.76B parameters.
    "videogpt-3.8b": ModelConfig(name="videogpt-3.8b"),
    # GPDiT (gpdit-reference.md): lightweight causal attention and rotation time conditioning.
    "gpdit-tiny": _small_preset("gpdit-tiny", d=32, layers=2, heads=4, mlp=64, orig=64, vocab=16, **_GPDIT),
    # The bundled model's size ("small"); no time parameters, so about 0.4M fewer parameters.
    "gpdit-small": _small_preset("gpdit-small", d=256, layers=4, heads=8, mlp=768, orig=4096, vocab=16, **_GPDIT),
    # The paper's shapes (gpdit-reference.md section 5: layers, hidden, MLP, heads). Our Phi-3 MLP is
    # gated (three matrices, the paper's two), so these count about 113M and 3.05B parameters where
    # the paper reports 80-85M and 2B.
    "gpdit-b": _small_preset("gpdit-b", d=768, layers=12, heads=12, mlp=3072, orig=4096, vocab=16, **_GPDIT),
    "gpdit-h": _small_preset("gpdit-h", d=2816, layers=24, heads=22, mlp=11264, orig=4096, vocab=16, **_GPDIT),
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


@dataclass(frozen=True)
class SamplerConfig:
    """The flow-matching sampler's settings (`vgpt.sampler` runs it); torch-free, so that manifests and
    command-line defaults read it without loading torch."""

    # Euler steps per clip (the released script uses 50).
    steps: int = 50
    # Schedule shift s: t -> t / (t + s - s*t); 1.0 is the identity.
    shift: float = 1.0
    # History-conditioned guidance on velocities; 1.0 switches the unconditional branch off.
    # The paper evaluates with 3.0, the released script uses 1.5.
    guidance: float = 1.5
    # An explicit timestep table sigma_0 = 0 < ... < sigma_steps = 1 instead of the shifted uniform
    # schedule: a distilled student's (vgpt.student), whose few steps sit where it was trained.
    timesteps: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"SamplerConfig.steps={self.steps!r}: must be a positive integer")
        if self.timesteps is not None:
            table = tuple(float(t) for t in self.timesteps)
            object.__setattr__(self, "timesteps", table)
            rising = all(a < b for a, b in itertools.pairwise(table))
            if len(table) != self.steps + 1 or table[0] != 0.0 or table[-1] != 1.0 or not rising:
                raise ConfigError(f"SamplerConfig.timesteps={list(table)}: need steps + 1 = {self.steps + 1} "
                                  "rising values from 0.0 to 1.0")  # fmt: skip
        if not self.shift > 0:
            raise ConfigError(f"SamplerConfig.shift={self.shift!r}: must be > 0")
        if not self.guidance >= 1.0:
            raise ConfigError(f"SamplerConfig.guidance={self.guidance!r}: must be >= 1.0 (1.0 = off)")

    @property
    def guided(self) -> bool:
        return self.guidance != 1.0
