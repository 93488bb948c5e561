"""The graph registry: every network a bundle can hold, described once, and each layout's binding plan.

One `GraphEntry` per graph says which models have it, its tensors' static shapes at a layout, the torch
module that exports it, whether it holds the transformer's weights (quantized, in the model's dtype), its
ONNX Runtime vs PyTorch tolerances, which runtimes load it, its TensorRT plan file, and how its tensors
bind to a stream's buffers. Export, the manifest's checks, both Python backends and `vgpt-build` read it;
the C/C++ runtime reads what it gives through the manifest: `vgpt-export` writes each layout's
`BindingPlan` (docs/manifest.md, "The binding plan") and every runtime binds by it. A new graph is one entry
here plus its module. This module imports neither torch nor the runtime (`vgpt-build --help` reads it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vgpt.config import ModelConfig
from vgpt.export.spec import (
    APPEND,
    DECODER,
    DENOISE,
    ENCODER,
    FRAME,
    PREFILL,
    RING,
    GraphSpec,
    TensorSpec,
    exact_rolling,
    kv_cache_shape,
)
from vgpt.layout import Layout

# The runtimes that load graphs: Python's ONNX Runtime backend, the TensorRT backends (Python and the C/C++
# runtime's, from vgpt-build's plans), and the C/C++ runtime's ONNX Runtime engine.
ONNXRUNTIME, TENSORRT, CPP_ONNXRUNTIME = "onnxruntime", "tensorrt", "cpp-onnxruntime"
_EVERY = frozenset({ONNXRUNTIME, TENSORRT, CPP_ONNXRUNTIME})

# ONNX Runtime against eager PyTorch, (atol, rtol) by dtype. fp32: both compute the same fp32 arithmetic with
# different kernels (round-off ~1e-6 on O(1) values); fp16 weights round every matmul to ~1e-3 relative.
# Quantized graphs are verified code by code (vgpt.calibration.verify): the eager model is fed the graph's
# own FP8/INT8 codes, so only fp32 round-off remains and the float32 tolerances apply.
_CODEC_TOLERANCE = {"float32": (1e-4, 1e-3), "float16": (1e-4, 1e-3)}  # the codec stays fp32 in every bundle
_MODEL_TOLERANCE = {"float32": (1e-4, 1e-3), "float16": (5e-2, 5e-2)}
# The denoising step divides the model's error by (1 - sigma), up to S = 50 times late in the schedule, and
# adds it to z, so its fp32 budget is larger.
_STEP_TOLERANCE = {"float32": (1e-3, 1e-3), "float16": (5e-2, 5e-2)}
# A rotation and a gather: one multiply-add of round-off (fp16: the rotation in fp16 arithmetic, ~1e-3).
_RING_TOLERANCE = {"float32": (1e-5, 1e-5), "float16": (5e-3, 5e-3)}


# --- the binding plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BufferSpec:
    """One allocation of a stream, bound to every (graph, tensor) the plan names it for."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return TensorSpec(self.name, self.shape, self.dtype).nbytes

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Target:
    """Where a tensor is bound: the whole buffer, or (`slot`) its block `slot` along the first axis."""

    buffer: str
    slot: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer} if self.slot is None else {"buffer": self.buffer, "slot": self.slot}


@dataclass(frozen=True)
class Binding:
    """One binding of a graph: each input and output tensor to its target."""

    inputs: dict[str, Target]
    outputs: dict[str, Target]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": {t: v.to_dict() for t, v in self.inputs.items()},
                "outputs": {t: v.to_dict() for t, v in self.outputs.items()}}  # fmt: skip


@dataclass(frozen=True)
class Phase:
    """The bindings a runtime cycles through for one of its calls (PHASES says which binding runs when)."""

    graph: str
    bindings: tuple[Binding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"graph": self.graph, "bindings": [b.to_dict() for b in self.bindings]}


# Each phase: the graph it runs, and how many bindings it cycles through (None: one per history frame).
# encode, prefill, decode: one binding. denoise: step i runs binding i mod 2; each writes the other's z and
# step, so after S steps the clip is in binding (S mod 2)'s z. append: the k-th append runs binding k mod 2,
# sliding the window from one KV cache into the other; after an odd number of appends the steps run
# denoise_alt, which reads the second cache. push: the k-th observed frame runs binding k mod M, writing its
# keys/values into ring slot k mod M; read: the runtime writes `oldest` (frames pushed mod M), then runs it.
PHASES: dict[str, tuple[str, int | None]] = {
    "encode": (ENCODER, 1),
    "prefill": (PREFILL, 1),
    "denoise": (DENOISE, 2),
    "decode": (DECODER, 1),
    "append": (APPEND, 2),
    "denoise_alt": (DENOISE, 2),
    "push": (FRAME, None),
    "read": (RING, 1),
}
REQUIRED_PHASES = ("encode", "prefill", "denoise", "decode")
# Phases that exist only together: a runtime binds each group on first use.
PHASE_GROUPS = (("append", "denoise_alt"), ("push", "read"))


class PlanError(ValueError):
    """A binding plan that does not bind its graphs as the runtimes need; the manifest reader names the field."""


@dataclass(frozen=True)
class BindingPlan:
    """A layout's buffers and phases, as `vgpt-export` writes them into the manifest (`layouts[].bindings`)."""

    buffers: tuple[BufferSpec, ...]
    phases: dict[str, Phase]

    def buffer(self, name: str) -> BufferSpec:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(f"the binding plan has no buffer {name!r}")

    def phase(self, name: str) -> Phase:
        return self.phases[name]

    def target(self, phase: str, tensor: str, binding: int = 0) -> Target:
        """Where `tensor` is bound in `phase`'s binding `binding`."""
        b = self.phases[phase].bindings[binding]
        return b.inputs[tensor] if tensor in b.inputs else b.outputs[tensor]

    def buffers_of(self, phases) -> tuple[BufferSpec, ...]:
        """The buffers these phases bind, in the plan's order."""
        used = {t.buffer for p in phases for b in self.phases[p].bindings for t in (*b.inputs.values(),
                                                                                      *b.outputs.values())}  # fmt: skip
        return tuple(b for b in self.buffers if b.name in used)

    def result(self, steps: int, phase: str = "denoise") -> str:
        """The buffer that holds the clip after `steps` alternating steps."""
        return self.phases[phase].bindings[steps % 2].inputs["z"].buffer

    @property
    def total_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    def to_dict(self) -> dict[str, Any]:
        return {"buffers": [b.to_dict() for b in self.buffers],
                "phases": {name: p.to_dict() for name, p in self.phases.items()}}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Any) -> BindingPlan:
        """The plan of a manifest; raises PlanError (or TypeError/KeyError for a malformed document)."""
        if not isinstance(d, dict) or set(d) != {"buffers", "phases"}:
            raise PlanError("must be an object of 'buffers' and 'phases'")
        buffers = tuple(BufferSpec(_text(b["name"]), tuple(_count(n) for n in b["shape"]), _text(b["dtype"]))
                        for b in _list(d["buffers"]))  # fmt: skip
        phases = {}
        for name, p in _object(d["phases"]).items():
            bindings = tuple(Binding(_targets(b["inputs"]), _targets(b["outputs"])) for b in _list(p["bindings"]))
            phases[name] = Phase(_text(p["graph"]), bindings)
        return cls(buffers, phases)

    def check(self, specs: dict[str, GraphSpec], history_frames: int) -> None:
        """What every runtime needs of a plan, the same rules as the C/C++ runtime's check_plan
        (cpp/src/manifest.cpp): raises PlanError naming the first broken one."""
        names = [b.name for b in self.buffers]
        if len(set(names)) != len(names):
            raise PlanError(f"names a buffer twice ({names})")
        for b in self.buffers:
            if b.dtype not in ("float32", "float16", "bfloat16", "int64") or any(n < 1 for n in b.shape):
                raise PlanError(f"buffer {b.name!r} is {b.dtype} {list(b.shape)}: not a tensor a runtime allocates")
        unknown = sorted(set(self.phases) - set(PHASES))
        if unknown:
            raise PlanError(f"has phases {unknown} that no runtime runs; the phases are {sorted(PHASES)}")
        missing = [p for p in REQUIRED_PHASES if p not in self.phases]
        if missing:
            raise PlanError(f"lacks the phases {missing}")
        for group in PHASE_GROUPS:
            if any(p in self.phases for p in group) and not all(p in self.phases for p in group):
                raise PlanError(f"has only some of the phases {list(group)}, which run together")
        for name, phase in self.phases.items():
            self._check_phase(name, phase, specs, history_frames)
        self._check_flow(history_frames)

    def _check_phase(self, name: str, phase: Phase, specs: dict[str, GraphSpec], history_frames: int) -> None:
        graph, count = PHASES[name]
        count = history_frames if count is None else count
        if phase.graph != graph:
            raise PlanError(f"phase {name!r} runs graph {phase.graph!r}; it runs {graph!r}")
        if graph not in specs:
            raise PlanError(f"phase {name!r} runs graph {graph!r}, which the layout does not hold")
        if len(phase.bindings) != count:
            raise PlanError(f"phase {name!r} has {len(phase.bindings)} bindings; it cycles through {count}")
        spec = specs[graph]
        for i, binding in enumerate(phase.bindings):
            where = f"phase {name!r} binding {i}"
            for kind, tensors, bound in (("inputs", spec.inputs, binding.inputs),
                                         ("outputs", spec.outputs, binding.outputs)):  # fmt: skip
                if sorted(bound) != sorted(t.name for t in tensors):
                    raise PlanError(f"{where} binds the {kind} {sorted(bound)}; graph {graph!r} has "
                                    f"{sorted(t.name for t in tensors)}")  # fmt: skip
                for tensor in tensors:
                    self._check_target(f"{where}: {graph}'s {tensor.name}", tensor, bound[tensor.name])
            written = {t.buffer for t in binding.outputs.values()}
            read = {t.buffer for t in binding.inputs.values()}
            if written & read:
                raise PlanError(f"{where} reads and writes the buffers {sorted(written & read)} in one run")

    def _check_target(self, what: str, tensor: TensorSpec, target: Target) -> None:
        if target.buffer not in {b.name for b in self.buffers}:
            raise PlanError(f"{what} is bound to buffer {target.buffer!r}, which the plan does not allocate")
        b = self.buffer(target.buffer)
        if target.slot is None:
            shape = b.shape
        elif not 0 <= target.slot < b.shape[0]:
            raise PlanError(f"{what} is bound to slot {target.slot} of {b.name!r}, which has {b.shape[0]}")
        else:
            shape = b.shape[1:]
        if shape != tensor.shape or b.dtype != tensor.dtype:
            where = b.name if target.slot is None else f"a slot of {b.name}"
            raise PlanError(f"{what} is {tensor.dtype} {list(tensor.shape)}, bound to {where}: {b.dtype} "
                            f"{list(shape)}")  # fmt: skip

    def _check_flow(self, history_frames: int) -> None:
        """Which output feeds which input: the one KV cache prefill writes is what the steps (and the ring)
        read and what append slides; each step writes the z and step the next step reads."""
        kv = self.target("prefill", "kv_cache")
        for name in ("denoise", "denoise_alt"):
            if name not in self.phases:
                continue
            want, writer = (kv, "prefill") if name == "denoise" else (self.target("append", "kv_next"), "append")
            for a in (0, 1):
                if self.target(name, "kv_cache", a) != want:
                    raise PlanError(
                        f"phase {name!r} binding {a} reads the KV cache from "
                        f"{self.target(name, 'kv_cache', a).buffer!r}, not from what {writer} writes"
                    )
                for src, dst in (("z_next", "z"), ("step_next", "step")):
                    if self.target(name, src, a) != self.target(name, dst, 1 - a):
                        raise PlanError(f"phase {name!r}: binding {a}'s {src} is not binding {1 - a}'s {dst}: the "
                                        "steps must feed each other")  # fmt: skip
            if self.target(name, "z", 0) == self.target(name, "z", 1):
                raise PlanError(f"phase {name!r}: both bindings read z from one buffer")
        if "denoise_alt" in self.phases:
            for a in (0, 1):
                for t in ("z", "step"):
                    if self.target("denoise_alt", t, a) != self.target("denoise", t, a):
                        raise PlanError(f"phase 'denoise_alt' binding {a} binds {t} elsewhere than 'denoise'")
            for a in (0, 1):
                if self.target("append", "kv_next", a) != self.target("append", "kv_cache", 1 - a):
                    raise PlanError(f"phase 'append': binding {a}'s kv_next is not binding {1 - a}'s kv_cache")
            if self.target("append", "kv_cache", 0) != kv:
                raise PlanError("phase 'append' binding 0 does not slide the KV cache prefill writes")
        if "push" in self.phases:
            ring = self.target("read", "ring")
            if ring.slot is not None:
                raise PlanError("phase 'read' binds the ring to one slot of a buffer, not a whole one")
            for s in range(history_frames):
                if self.target("push", "frame_kv", s) != Target(ring.buffer, s):
                    raise PlanError(f"phase 'push' binding {s} does not write ring slot {s} of {ring.buffer!r}")
            if self.target("read", "kv_cache") != kv:
                raise PlanError("phase 'read' does not write the KV cache prefill writes")


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise PlanError(f"holds {v!r} where a name belongs")
    return v


def _count(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise PlanError(f"holds {v!r} where a dimension belongs")
    return v


def _list(v: Any) -> list:
    if not isinstance(v, list):
        raise PlanError(f"holds {type(v).__name__} where a list belongs")
    return v


def _object(v: Any) -> dict:
    if not isinstance(v, dict):
        raise PlanError(f"holds {type(v).__name__} where an object belongs")
    return v


def _targets(d: Any) -> dict[str, Target]:
    out = {}
    for tensor, t in _object(d).items():
        t = _object(t)
        if set(t) - {"buffer", "slot"} or "buffer" not in t:
            raise PlanError(f"binds {tensor!r} to {t!r}: a target is {{'buffer': NAME[, 'slot': N]}}")
        out[tensor] = Target(_text(t["buffer"]), None if "slot" not in t else _count(t["slot"]))
    return out


# --- the registry ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dims:
    """What a graph's shapes are made of."""

    config: ModelConfig
    layout: Layout
    dtype: str  # the model's weights and KV cache

    @property
    def kv(self) -> TensorSpec:
        return TensorSpec("kv_cache", kv_cache_shape(self.config, self.layout), self.dtype)

    @property
    def latents(self) -> tuple[int, int, int]:
        return self.config.latent_channels, self.layout.latent_height, self.layout.latent_width

    @property
    def slot(self) -> tuple[int, ...]:
        """One frame's keys/values [layers, 2, 1, nkv, block, hd]."""
        c = self.config
        return c.num_hidden_layers, 2, 1, c.num_key_value_heads, self.layout.block, c.head_dim


def _always(config: ModelConfig) -> bool:
    return True


def _approximate_rolling(config: ModelConfig) -> bool:
    return not exact_rolling(config)


# What an entry adds to the plan: its buffers (name -> the tensor whose shape it takes) and its phases.
Contribution = tuple[dict[str, TensorSpec], dict[str, Phase]]


def _one(inputs: dict[str, str], outputs: dict[str, str]) -> Binding:
    return Binding({t: Target(b) for t, b in inputs.items()}, {t: Target(b) for t, b in outputs.items()})


@dataclass(frozen=True)
class GraphEntry:
    name: str
    # A class "module.path:Class" with `of(context)` (vgpt.export.graphs.GraphContext): the exported network.
    module: str
    spec: Callable[[Dims], GraphSpec]
    bind: Callable[[dict[str, GraphSpec], Layout], Contribution]
    present: Callable[[ModelConfig], bool] = _always
    required: bool = False  # every bundle holds it
    transformer: bool = False  # holds the transformer's layers: Q/DQ in fp8/int8 bundles, weights in the model dtype
    tolerance: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(_MODEL_TOLERANCE))
    loaded_by: frozenset[str] = frozenset({ONNXRUNTIME})
    engine_file: str | None = None  # the TensorRT plan vgpt-build writes, for a graph TensorRT loads


def _encoder_spec(d: Dims) -> GraphSpec:
    H, W = d.layout.pixel_size
    return GraphSpec(ENCODER, (TensorSpec("frames", (1, 3, H, W), "float32"),),
                     (TensorSpec("latents", (1, *d.latents), "float32"),))  # fmt: skip


def _prefill_spec(d: Dims) -> GraphSpec:
    return GraphSpec(PREFILL, (TensorSpec("history", (1, d.layout.history_frames, *d.latents), "float32"),), (d.kv,))


def _denoise_spec(d: Dims) -> GraphSpec:
    clip = (1, d.layout.clip_frames, *d.latents)
    return GraphSpec(DENOISE, (TensorSpec("z", clip, "float32"), d.kv, TensorSpec("step", (1,), "int64")),
                     (TensorSpec("z_next", clip, "float32"), TensorSpec("step_next", (1,), "int64")))  # fmt: skip


def _decoder_spec(d: Dims) -> GraphSpec:
    H, W = d.layout.pixel_size
    G = d.layout.clip_frames
    return GraphSpec(DECODER, (TensorSpec("latents", (G, *d.latents), "float32"),),
                     (TensorSpec("frames", (G, 3, H, W), "float32"),))  # fmt: skip


def _append_spec(d: Dims) -> GraphSpec:
    return GraphSpec(APPEND, (TensorSpec("latents", (1, 1, *d.latents), "float32"), d.kv),
                     (TensorSpec("kv_next", d.kv.shape, d.dtype),))  # fmt: skip


def _frame_spec(d: Dims) -> GraphSpec:
    return GraphSpec(FRAME, (TensorSpec("latents", (1, 1, *d.latents), "float32"),),
                     (TensorSpec("frame_kv", d.slot, d.dtype),))  # fmt: skip


def _ring_spec(d: Dims) -> GraphSpec:
    return GraphSpec(RING, (TensorSpec("ring", (d.layout.history_frames, *d.slot), d.dtype),
                            TensorSpec("oldest", (1,), "int64")), (d.kv,))  # fmt: skip


def _encoder_bind(s: dict[str, GraphSpec], layout: Layout) -> Contribution:
    e = s[ENCODER]
    buffers = {"frame": e.tensor("frames"), "latent": e.tensor("latents")}
    return buffers, {"encode": Phase(ENCODER, (_one({"frames": "frame"}, {"latents": "latent"}),))}


def _prefill_bind(s: dict[str, GraphSpec], layout: Layout) -> Contribution:
    p = s[PREFILL]
    buffers = {"history": p.tensor("history"), "kv": p.tensor("kv_cache")}
    return buffers, {"prefill": Phase(PREFILL, (_one({"history": "history"}, {"kv_cache": "kv"}),))}


def _steps(kv: str) -> tuple[Binding, Binding]:
    """The two step bindings over z0/z1 and step0/step1, reading the KV cache `kv`."""
    return tuple(_one({"z": f"z{a}", "kv_cache": kv, "step": f"step{a}"},
                      {"z_next": f"z{1 - a}", "step_next": f"step{1 - a}"}) for a in (0, 1))  # fmt: skip


def _denoise_bind(s: dict[str, GraphSpec], layout: Layout) -> Contribution:
    d = s[DENOISE]
    buffers = {"kv": d.tensor("kv_cache"), "z0": d.tensor("z"), "z1": d.tensor("z_next"),
               "step0": d.tensor("step"), "step1": d.tensor("step_next")}  # fmt: skip
    return buffers, {"denoise": Phase(DENOISE, _steps("kv"))}


def _decoder_bind(s: dict[str, GraphSpec], layout: Layout) -> Contribution:
    d = s[DECODER]
    buffers = {"clip": d.tensor("latents"), "frames_out": d.tensor("frames")}
    return buffers, {"decode": Phase(DECODER, (_one({"latents": "clip"}, {"frames": "frames_out"}),))}


def _append_bind(s: dict[str, GraphSpec], layout: Layout) -> Contribution:
    a = s[APPEND]
    buffers = {"append_latents": a.tensor("latents"), "kv_alt": a.tensor("kv_next")}
    slides = tuple(_one({"latents": "append_latents", "kv_cache": src}, {"kv_next": dst})
                   for src, dst in (("kv", "kv_alt"), ("kv_alt", "kv")))  # fmt: skip
    return buffers, {"append": Phase(APPEND, slides), "denoise_alt": Phase(DENOISE, _steps("kv_alt"))}


def _frame_bind(s: dict[str, GraphSpec], layout: Layout) -> Contribution:
    pushes = tuple(Binding({"latents": Target("frame_latents")}, {"frame_kv": Target("ring", slot)})
                   for slot in range(layout.history_frames))  # fmt: skip
    return {"frame_latents": s[FRAME].tensor("latents")}, {"push": Phase(FRAME, pushes)}


def _ring_bind(s: dict[str, GraphSpec], layout: Layout) -> Contribution:
    r = s[RING]
    buffers = {"ring": r.tensor("ring"), "oldest": r.tensor("oldest")}
    return buffers, {"read": Phase(RING, (_one({"ring": "ring", "oldest": "oldest"}, {"kv_cache": "kv"}),))}


# In the order a bundle holds them.
REGISTRY: tuple[GraphEntry, ...] = (
    GraphEntry(ENCODER, "vgpt.export.graphs:EncoderGraph", _encoder_spec, _encoder_bind, required=True,
               tolerance=dict(_CODEC_TOLERANCE), loaded_by=_EVERY, engine_file="encoder.plan"),
    GraphEntry(PREFILL, "vgpt.export.graphs:PrefillGraph", _prefill_spec, _prefill_bind, required=True,
               transformer=True, loaded_by=_EVERY, engine_file="prefill.plan"),
    # The denoising step's engine is the one users name: `vgpt-run --engine model.plan`.
    GraphEntry(DENOISE, "vgpt.export.graphs:DenoiseGraph", _denoise_spec, _denoise_bind, required=True,
               transformer=True, tolerance=dict(_STEP_TOLERANCE), loaded_by=_EVERY, engine_file="model.plan"),
    GraphEntry(DECODER, "vgpt.export.graphs:DecoderGraph", _decoder_spec, _decoder_bind, required=True,
               tolerance=dict(_CODEC_TOLERANCE), loaded_by=_EVERY, engine_file="decoder.plan"),
    # The rolling window. Video-GPT and GPDiT's vanilla mask: append (approximate; vgpt.rolling). GPDiT's
    # lightweight mask: frame and ring (exact; export/gpdit_graphs.py). No TensorRT backend runs a rolling
    # window (--kv-cache rolling runs on ONNX Runtime), so vgpt-build builds none of them.
    GraphEntry(APPEND, "vgpt.export.graphs:AppendGraph", _append_spec, _append_bind, present=_approximate_rolling,
               transformer=True),
    GraphEntry(FRAME, "vgpt.export.gpdit_graphs:FrameGraph", _frame_spec, _frame_bind, present=exact_rolling,
               loaded_by=frozenset({ONNXRUNTIME, CPP_ONNXRUNTIME})),
    GraphEntry(RING, "vgpt.export.gpdit_graphs:RingGraph", _ring_spec, _ring_bind, present=exact_rolling,
               tolerance=dict(_RING_TOLERANCE), loaded_by=frozenset({ONNXRUNTIME, CPP_ONNXRUNTIME})),
)  # fmt: skip
ENTRIES = {e.name: e for e in REGISTRY}
GRAPHS = tuple(ENTRIES)
REQUIRED_GRAPHS = tuple(e.name for e in REGISTRY if e.required)
TRANSFORMER_GRAPHS = tuple(e.name for e in REGISTRY if e.transformer)
# The engines vgpt-build builds: the graphs TensorRT loads, by plan file.
PLAN_FILES = {e.name: e.engine_file for e in REGISTRY if e.engine_file is not None}
ENGINE_GRAPHS = tuple(PLAN_FILES)


def entries(config: ModelConfig) -> tuple[GraphEntry, ...]:
    """The graphs a bundle of this model holds."""
    return tuple(e for e in REGISTRY if e.present(config))


def loaded_graphs(entry, runtime: str) -> tuple[str, ...]:
    """The graphs of a bundle layout (anything with `graphs` by name) that `runtime` loads."""
    return tuple(g for g in entry.graphs if runtime in ENTRIES[g].loaded_by)


def graph_specs(config: ModelConfig, layout: Layout, dtype: str = "float32") -> dict[str, GraphSpec]:
    """The graphs of one layout. Latents and z stay fp32 (the sampler computes in fp32); the KV cache is in the
    model's dtype."""
    dims = Dims(config, layout, dtype)
    return {e.name: e.spec(dims) for e in entries(config)}


def binding_plan(specs: dict[str, GraphSpec], layout: Layout) -> BindingPlan:
    """The plan of these graphs: every entry's buffers (one allocation per name, its shape from the tensor that
    names it first) and phases, checked."""
    buffers: dict[str, BufferSpec] = {}
    phases: dict[str, Phase] = {}
    for entry in REGISTRY:
        if entry.name not in specs:
            continue
        named, contributed = entry.bind(specs, layout)
        for name, tensor in named.items():
            buffer = BufferSpec(name, tensor.shape, tensor.dtype)
            if buffers.setdefault(name, buffer) != buffer:
                raise PlanError(f"graph {entry.name!r} binds buffer {name!r} as {tensor.dtype} {list(tensor.shape)}, "
                                f"another graph as {buffers[name].dtype} {list(buffers[name].shape)}")  # fmt: skip
        phases.update(contributed)
    plan = BindingPlan(tuple(buffers.values()), phases)
    plan.check(specs, layout.history_frames)
    return plan
