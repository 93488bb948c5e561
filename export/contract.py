"""The deployment contract: what an export bundle's `manifest.json` and an engine folder's `engines.json`
hold, as frozen dataclasses.

Every stage writes and reads these files only through `BundleManifest` and `EngineManifest`:
`to_dict()` gives the JSON document, `from_dict()` checks one field by field, once, at load, and
names the field in its error. The format is described in docs/manifest.md and, as a JSON Schema, in
docs/manifest.schema.json (tests keep the schema and these classes in step). This module sits just
above the core: it imports `vgpt` core modules and `vgpt.export.spec`, never the runtime, engines,
training or calibration, and never torch (`vgpt-build --help` reads it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vgpt.config import ConfigError, ModelConfig, SamplerConfig
from vgpt.errors import VgptError
from vgpt.export.registry import ENGINE_GRAPHS, REQUIRED_GRAPHS, BindingPlan, PlanError, binding_plan, graph_specs
from vgpt.export.spec import GraphSpec, layout_name
from vgpt.integrity import canonical_sha256, check_file
from vgpt.layout import Layout
from vgpt.student import StudentSampler
from vgpt.untrusted import inside, plain_name

MANIFEST = "manifest.json"
FORMAT = "vgpt-onnx-bundle"
# 1: the first bundles. 2: the manifest records its own sha256 (`manifest_sha256`); every file's sha256
# is checked at load. 3: each layout records its binding plan (`layouts[].bindings`). See docs/manifest.md
# for each version's fields.
FORMAT_VERSION = 3
MANIFEST_HASH = "manifest_sha256"
ENGINE_FORMAT = "vgpt-tensorrt-engines"
ENGINE_MANIFEST = "engines.json"

BUNDLE_DTYPES = ("float32", "float16", "bfloat16")  # model weights and KV cache of a bundle
QUANTIZED_PRECISIONS = ("fp8", "int8")  # bundles whose transformer graphs hold Q/DQ nodes
BUNDLE_PRECISIONS = ("fp32", *QUANTIZED_PRECISIONS)
FACTOR_SETS = ("short", "long")  # LongRoPE factors a layout's positions select (vgpt.rope)
FP8_MIN_CAPABILITY = (8, 9)  # FP8 tensor cores: Ada, Hopper, Blackwell

REBUILD = "re-export it with vgpt-export (add --force to replace the folder)"
REBUILD_ENGINES = "rebuild with vgpt-build"


class BundleError(VgptError, RuntimeError):
    """A bundle that is incomplete, altered or made for something else; the message says how to rebuild."""


class EngineError(VgptError, RuntimeError):
    """A build or an engine that cannot be used here; the message says what to do."""


# --- reading JSON field by field ------------------------------------------------------------------------

_KINDS: dict[type, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                           dict: "an object", list: "a list"}  # fmt: skip


@dataclass(frozen=True)
class _Reader:
    """Checks one document; every error names the file, the field's path in it, and the fix."""

    source: str
    error: type[VgptError]
    fix: str

    def fail(self, path: str, problem: str) -> Exception:
        where = f"field {path!r}" if path else "the document"
        return self.error(f"{self.source}: {where} {problem}; {self.fix}")

    def value(self, value: Any, path: str, kind: type, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            wanted = _KINDS[kind] + (" or null" if optional else "")
            raise self.fail(path, f"must be {wanted}, found {_short(value)}")
        return value

    def obj(self, data: Any, path: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """`data` as an object holding at least `keys`."""
        self.value(data, path, dict)
        missing = [k for k in keys if k not in data]
        if missing:
            raise self.fail(path, f"lacks {missing}")
        return data

    def field(self, data: dict[str, Any], path: str, key: str, kind: type, optional: bool = False) -> Any:
        return self.value(data[key], f"{path}.{key}" if path else key, kind, optional)

    def items(self, value: Any, path: str, kind: type) -> tuple[Any, ...]:
        return tuple(self.value(v, f"{path}[{i}]", kind) for i, v in enumerate(self.value(value, path, list)))

    def mapping(self, value: Any, path: str, kind: type) -> dict[str, Any]:
        return {k: self.value(v, f"{path}.{k}", kind) for k, v in self.value(value, path, dict).items()}

    def build(self, path: str, make: Callable[[], Any]) -> Any:
        """A core config built from the document; its own validation error becomes this document's."""
        try:
            return make()
        except (ConfigError, TypeError, ValueError, KeyError) as err:
            raise self.fail(path, f"is not valid ({err})") from err


def _short(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _file_name(name: Any, r: _Reader, path: str) -> str:
    """A file name from the manifest: a plain name inside the artifact's folder (vgpt.untrusted)."""
    if not plain_name(name):
        raise r.fail(path, f"names {_short(name)}: only plain file names inside the folder are allowed "
                           "(this manifest was crafted or damaged; do not load it)")  # fmt: skip
    return name


def _bundle_reader(source: str) -> _Reader:
    return _Reader(source, BundleError, REBUILD)


# --- the records both manifests share -------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """One file of an artifact: its size and content hash, checked at load."""

    bytes: int
    sha256: str

    def check(
        self, path, error: type[Exception], fix: str, verify_hash: bool = True, trust_cache: bool = False
    ) -> None:
        check_file(path, self.bytes, self.sha256, error, fix, verify_hash, trust_cache)

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str) -> FileRecord:
        r.obj(d, path, ("bytes", "sha256"))
        return cls(r.field(d, path, "bytes", int), r.field(d, path, "sha256", str))


@dataclass(frozen=True)
class SamplerRecord:
    """The sampler baked into the graphs: its settings and the noise levels they give (steps + 1). A
    distilled student's bundle also holds its `student` record (vgpt.student.StudentSampler): its graphs
    run one branch (guidance 1, the teacher's guidance distilled in) at the K-step table `schedule`."""

    steps: int
    shift: float
    guidance: float
    schedule: tuple[float, ...]
    student: StudentSampler | None = None

    @property
    def config(self) -> SamplerConfig:
        if self.student is not None:
            return self.student.sampler()
        return SamplerConfig(steps=self.steps, shift=self.shift, guidance=self.guidance)

    @property
    def distilled(self) -> bool:
        return self.student is not None

    def to_dict(self) -> dict[str, Any]:
        out = {"steps": self.steps, "shift": self.shift, "guidance": self.guidance, "schedule": list(self.schedule)}
        if self.student is not None:  # a teacher's record stays as it always was
            out["student"] = self.student.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str = "sampler") -> SamplerRecord:
        r.obj(d, path, ("steps", "shift", "guidance", "schedule"))
        student = None
        if d.get("student") is not None:
            student = r.build(f"{path}.student", lambda: StudentSampler.from_dict(r.field(d, path, "student", dict)))
        record = cls(r.field(d, path, "steps", int), r.field(d, path, "shift", float),
                     r.field(d, path, "guidance", float),
                     r.items(d["schedule"], f"{path}.schedule", float), student)  # fmt: skip
        r.build(path, lambda: record.config)
        if len(record.schedule) != record.steps + 1:
            raise r.fail(f"{path}.schedule", f"has {len(record.schedule)} levels; {record.steps} steps need "
                                             f"{record.steps + 1}")  # fmt: skip
        if student is not None:
            record._check_student(r, path)
        return record

    def _check_student(self, r: _Reader, path: str) -> None:
        """A student's graphs bake in its own table and one branch: the record must say so."""
        student = self.student
        if self.steps != student.steps or self.guidance != 1.0 or self.shift != student.shift:
            raise r.fail(path, f"records {self.steps} steps, guidance {self.guidance}, shift {self.shift}, but its "
                               f"student samples {student.steps} steps with one branch (guidance 1.0), shift "
                               f"{student.shift}")  # fmt: skip
        # the table as float32 (the graph's constants) against the record's float64 values
        if any(abs(a - b) > 1e-6 for a, b in zip(self.schedule, student.timesteps, strict=True)):
            raise r.fail(f"{path}.schedule", f"is {list(self.schedule)}, but the student's table is "
                                             f"{list(student.timesteps)}")  # fmt: skip


# --- the export bundle ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecRecord:
    type: str  # the codec's class name
    latent_channels: int
    downsample: int
    scaling_factor: float
    weights_sha256: str | None  # None for a codec without weights

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str = "codec") -> CodecRecord:
        r.obj(d, path, ("type", "latent_channels", "downsample", "scaling_factor", "weights_sha256"))
        return cls(r.field(d, path, "type", str), r.field(d, path, "latent_channels", int),
                   r.field(d, path, "downsample", int), r.field(d, path, "scaling_factor", float),
                   r.field(d, path, "weights_sha256", str, optional=True))  # fmt: skip


@dataclass(frozen=True)
class Requirements:
    """What a deployment target needs to run the graphs (the TensorRT build checks it)."""

    min_compute_capability: tuple[int, int] | None
    strongly_typed: bool
    note: str

    @classmethod
    def for_precision(cls, precision: str) -> Requirements:
        if precision == "fp8":
            return cls(FP8_MIN_CAPABILITY, True, "FP8 tensor cores: Ada (8.9), Hopper (9.0), Blackwell; not Ampere "
                                                 "or Jetson Orin (8.7): export --int8 or build fp16 there")  # fmt: skip
        if precision == "int8":
            return cls(None, True, "INT8 Q/DQ: every GPU TensorRT 10 supports, Jetson Orin included")
        return cls(None, False, "")

    def to_dict(self) -> dict[str, Any]:
        cc = self.min_compute_capability
        return {"min_compute_capability": None if cc is None else list(cc), "strongly_typed": self.strongly_typed,
                "note": self.note}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str = "requires") -> Requirements:
        r.obj(d, path, ("min_compute_capability", "strongly_typed", "note"))
        cc = r.field(d, path, "min_compute_capability", list, optional=True)
        if cc is not None:
            cc = r.items(cc, f"{path}.min_compute_capability", int)
            if len(cc) != 2:
                raise r.fail(f"{path}.min_compute_capability", f"must be [major, minor], found {list(cc)}")
        return cls(cc, r.field(d, path, "strongly_typed", bool), r.field(d, path, "note", str))


@dataclass(frozen=True)
class Quantization:
    """How the transformer graphs of an fp8/int8 bundle were quantized and calibrated."""

    tool: str
    version: str
    algorithm: str
    format: str
    policy: dict[str, Any]  # vgpt.calibration.policy.PrecisionPolicy.to_dict()
    quantized_layers: int
    quantizers: int
    kept_layers: tuple[str, ...]  # Linear/Conv layers left in high precision
    graphs: tuple[str, ...]
    calibration: tuple[dict[str, Any], ...]  # one calibration set per layout
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "kept_layers": list(self.kept_layers), "graphs": list(self.graphs),
                "calibration": [dict(c) for c in self.calibration]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str = "quantization") -> Quantization:
        names = [f.name for f in dataclasses.fields(cls)]
        r.obj(d, path, tuple(names))
        return cls(
            tool=r.field(d, path, "tool", str), version=r.field(d, path, "version", str),
            algorithm=r.field(d, path, "algorithm", str), format=r.field(d, path, "format", str),
            policy=r.field(d, path, "policy", dict), quantized_layers=r.field(d, path, "quantized_layers", int),
            quantizers=r.field(d, path, "quantizers", int),
            kept_layers=r.items(d["kept_layers"], f"{path}.kept_layers", str),
            graphs=r.items(d["graphs"], f"{path}.graphs", str),
            calibration=r.items(d["calibration"], f"{path}.calibration", dict),
            seconds=r.field(d, path, "seconds", float),
        )  # fmt: skip


@dataclass(frozen=True)
class Environment:
    """The machine the export and its verification ran on (its CPU picks the kernels that verified)."""

    machine: str
    system: str
    cpu: str
    cores: int | None
    cpu_flags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "cpu_flags": list(self.cpu_flags)}

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str = "environment") -> Environment:
        r.obj(d, path, ("machine", "system", "cpu", "cores", "cpu_flags"))
        return cls(r.field(d, path, "machine", str), r.field(d, path, "system", str), r.field(d, path, "cpu", str),
                   r.field(d, path, "cores", int, optional=True),
                   r.items(d["cpu_flags"], f"{path}.cpu_flags", str))  # fmt: skip


@dataclass(frozen=True)
class TensorRTReadiness:
    """vgpt.export.readiness's verdict on a graph: parses in TensorRT from `min_version` on."""

    ready: bool
    min_version: str | None
    unsupported: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "min_version": self.min_version, "unsupported": list(self.unsupported)}

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str) -> TensorRTReadiness:
        r.obj(d, path, ("ready", "min_version", "unsupported"))
        return cls(r.field(d, path, "ready", bool), r.field(d, path, "min_version", str, optional=True),
                   r.items(d["unsupported"], f"{path}.unsupported", str))  # fmt: skip


@dataclass(frozen=True)
class GraphRecord:
    """One ONNX graph of a layout: its tensors (written flat, as GraphSpec writes them), its files, and
    what the export found about it."""

    spec: GraphSpec
    files: dict[str, FileRecord]  # the .onnx file and its external data file, if any
    nodes: int
    ops: dict[str, int]
    tensorrt: TensorRTReadiness
    verification: tuple[dict[str, Any], ...]  # vgpt.export.verify.OutputError.to_dict() per output

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "files": {n: f.to_dict() for n, f in self.files.items()}, "nodes": self.nodes,
                "ops": dict(self.ops), "tensorrt": self.tensorrt.to_dict(),
                "verification": [dict(v) for v in self.verification]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str) -> GraphRecord:
        r.obj(d, path, ("name", "file", "inputs", "outputs", "files", "nodes", "ops", "tensorrt", "verification"))
        spec = r.build(path, lambda: GraphSpec.from_dict(d))
        if r.field(d, path, "file", str) != spec.file:
            raise r.fail(f"{path}.file", f"is {d['file']!r}; graph {spec.name!r} is stored as {spec.file!r}")
        files = {_file_name(n, r, f"{path}.files"): FileRecord.from_dict(f, r, f"{path}.files.{n}")
                 for n, f in r.field(d, path, "files", dict).items()}  # fmt: skip
        if spec.file not in files:
            raise r.fail(f"{path}.files", f"has no record of {spec.file}")
        return cls(spec, files, r.field(d, path, "nodes", int), r.mapping(d["ops"], f"{path}.ops", int),
                   TensorRTReadiness.from_dict(d["tensorrt"], r, f"{path}.tensorrt"),
                   r.items(d["verification"], f"{path}.verification", dict))  # fmt: skip


@dataclass(frozen=True)
class LayoutRecord:
    """The graphs of one layout, in the bundle folder `name`, and how a stream binds them (`bindings`)."""

    name: str
    layout: Layout
    graphs: dict[str, GraphRecord]
    bindings: BindingPlan | None  # None only while a manifest older than format 3 is read

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layout": self.layout.to_dict(),
                "graphs": {g: rec.to_dict() for g, rec in self.graphs.items()},
                "bindings": self.bindings.to_dict()}  # fmt: skip

    @property
    def specs(self) -> dict[str, GraphSpec]:
        return {g: rec.spec for g, rec in self.graphs.items()}

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str, version: int = FORMAT_VERSION) -> LayoutRecord:
        """A format 3 layout records its binding plan; an older one is given the plan this vgpt writes for its
        graphs (the plan writes down how every runtime already bound them) by BundleManifest.from_dict."""
        r.obj(d, path, ("name", "layout", "graphs") + (("bindings",) if version >= 3 else ()))
        name = r.field(d, path, "name", str)
        layout = r.build(f"{path}.layout", lambda: Layout.from_dict(r.field(d, path, "layout", dict)))
        if name != layout_name(layout):
            raise r.fail(f"{path}.name", f"is {name!r} but its layout is {layout_name(layout)!r}")
        graphs = {g: GraphRecord.from_dict(rec, r, f"{path}.graphs.{g}")
                  for g, rec in r.field(d, path, "graphs", dict).items()}  # fmt: skip
        missing = [g for g in REQUIRED_GRAPHS if g not in graphs]
        if missing:
            raise r.fail(f"{path}.graphs", f"lacks {missing}")
        plan = None  # checked against the graphs by BundleManifest, after their shapes
        if "bindings" in d:
            try:
                plan = BindingPlan.from_dict(d["bindings"])
            except (PlanError, TypeError, KeyError) as err:
                raise r.fail(f"{path}.bindings", f"is not a binding plan: {err}") from err
        return cls(name, layout, graphs, plan)


@dataclass(frozen=True, kw_only=True)
class BundleManifest:
    """`manifest.json` of an export bundle. On disk it also holds `format` (FORMAT) and, last, its own
    canonical sha256 (`manifest_sha256`), so that an edited manifest is refused at load."""

    format_version: int = FORMAT_VERSION
    model_config: ModelConfig
    rope_factor_set: dict[str, str]  # layout name -> the LongRoPE factor set its positions select
    sampler: SamplerRecord
    codec: CodecRecord
    dtype: str  # model weights and KV cache; z, latents and frames stay fp32
    precision: str  # fp32, or fp8/int8: Q/DQ transformer graphs
    quantization: Quantization | None  # fp8/int8 only
    requires: Requirements
    opset: int
    layouts: tuple[LayoutRecord, ...]
    weights_sha256: str  # content hash of the model weights the graphs were exported from
    sources: dict[str, Any]  # what was exported: checkpoint and codec paths, a cache key
    versions: dict[str, str]  # vgpt, torch, onnx, onnxruntime, python
    environment: Environment
    verified: bool  # whether ONNX Runtime was compared with eager PyTorch on every graph
    export_seconds: float

    @property
    def quantized(self) -> bool:
        return self.precision in QUANTIZED_PRECISIONS

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, keys in the order they have always been written, its hash last."""
        body = {"format": FORMAT, "format_version": self.format_version, "model_config": self.model_config.to_dict(),
                "rope_factor_set": dict(self.rope_factor_set), "sampler": self.sampler.to_dict(),
                "codec": self.codec.to_dict(), "dtype": self.dtype, "precision": self.precision,
                "quantization": None if self.quantization is None else self.quantization.to_dict(),
                "requires": self.requires.to_dict(), "opset": self.opset,
                "layouts": [e.to_dict() for e in self.layouts], "weights_sha256": self.weights_sha256,
                "sources": dict(self.sources), "versions": dict(self.versions),
                "environment": self.environment.to_dict(), "verified": self.verified,
                "export_seconds": self.export_seconds}  # fmt: skip
        return {**body, MANIFEST_HASH: canonical_sha256(body, MANIFEST_HASH)}

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST) -> BundleManifest:
        """Check a manifest document (any version this vgpt reads) and build it; every error is a
        BundleError naming `source` and the field."""
        r = _bundle_reader(source)
        if not isinstance(data, dict):
            raise BundleError(f"{source} holds no JSON object but {_short(data)}; {REBUILD}")
        if data.get("format") != FORMAT:
            raise BundleError(f"{source}: format {data.get('format')!r}, expected {FORMAT!r}")
        version = r.value(data.get("format_version", 1), "format_version", int)
        if version > FORMAT_VERSION:
            raise BundleError(f"{source} was written by a newer vgpt (format {version}); upgrade vgpt")
        _check_own_hash(data, version, source)
        d = _migrate(data, version)
        names = [f.name for f in dataclasses.fields(cls)]
        r.obj(d, "", tuple(names))
        model_config = r.build("model_config", lambda: ModelConfig.from_dict(r.field(d, "", "model_config", dict)))
        dtype, precision = r.field(d, "", "dtype", str), r.field(d, "", "precision", str)
        if dtype not in BUNDLE_DTYPES:
            raise r.fail("dtype", f"is {dtype!r}; a bundle holds one of {BUNDLE_DTYPES}")
        if precision not in BUNDLE_PRECISIONS:
            raise r.fail("precision", f"is {precision!r}; a bundle holds one of {BUNDLE_PRECISIONS}")
        quantization = d["quantization"]
        if (quantization is None) == (precision in QUANTIZED_PRECISIONS):
            raise r.fail("quantization", f"is {'missing' if quantization is None else 'present'}, but precision "
                                         f"is {precision!r}")  # fmt: skip
        layouts = r.field(d, "", "layouts", list)
        manifest = cls(
            format_version=FORMAT_VERSION,
            model_config=model_config,
            rope_factor_set=r.mapping(d["rope_factor_set"], "rope_factor_set", str),
            sampler=SamplerRecord.from_dict(d["sampler"], r),
            codec=CodecRecord.from_dict(d["codec"], r),
            dtype=dtype,
            precision=precision,
            quantization=None if quantization is None else Quantization.from_dict(quantization, r),
            requires=Requirements.from_dict(d["requires"], r),
            opset=r.field(d, "", "opset", int),
            layouts=tuple(LayoutRecord.from_dict(e, r, f"layouts[{i}]", version) for i, e in enumerate(layouts)),
            weights_sha256=r.field(d, "", "weights_sha256", str),
            sources=r.field(d, "", "sources", dict),
            versions=r.mapping(d["versions"], "versions", str),
            environment=Environment.from_dict(d["environment"], r),
            verified=r.field(d, "", "verified", bool),
            export_seconds=r.field(d, "", "export_seconds", float),
        )
        manifest._check_agreement(r)
        layouts = tuple(dataclasses.replace(e, bindings=e.bindings or binding_plan(e.specs, e.layout))
                        for e in manifest.layouts)  # fmt: skip
        return dataclasses.replace(manifest, layouts=layouts)

    def _check_agreement(self, r: _Reader) -> None:
        """Fields that must agree with each other: the graphs' shapes with the model and the layout."""
        if not self.layouts:
            raise r.fail("layouts", "lists no layout")
        names = [e.name for e in self.layouts]
        if sorted(self.rope_factor_set) != sorted(names):
            raise r.fail("rope_factor_set", f"names layouts {sorted(self.rope_factor_set)}, the bundle has {names}")
        for name, factor_set in self.rope_factor_set.items():
            if factor_set not in FACTOR_SETS:
                raise r.fail(f"rope_factor_set.{name}", f"is {factor_set!r}; use one of {FACTOR_SETS}")
        if self.codec.latent_channels != self.model_config.latent_channels:
            raise r.fail("codec.latent_channels", f"is {self.codec.latent_channels}; the model takes "
                                                  f"{self.model_config.latent_channels}")  # fmt: skip
        for i, entry in enumerate(self.layouts):
            expected = graph_specs(self.model_config, entry.layout, self.dtype)
            for graph, record in entry.graphs.items():
                if graph not in expected or record.spec != expected[graph]:
                    want = expected[graph].to_dict() if graph in expected else f"one of {sorted(expected)}"
                    raise r.fail(f"layouts[{i}].graphs.{graph}", f"records {record.spec.to_dict()}, but model_config "
                                                                 f"and the layout give {want}")  # fmt: skip
            try:
                if entry.bindings is not None:
                    entry.bindings.check(entry.specs, entry.layout.history_frames)
                plan = binding_plan(entry.specs, entry.layout)
            except PlanError as err:
                raise r.fail(f"layouts[{i}].bindings", f"is not a plan a runtime can bind by: {err}") from err
            if entry.bindings is not None and entry.bindings != plan:
                raise r.fail(f"layouts[{i}].bindings", "is not the plan this vgpt writes for its graphs: a "
                                                       "runtime would bind them otherwise than exported")  # fmt: skip

    def layout(self, name: str | None = None) -> LayoutRecord:
        """The layout `name`, or the first one."""
        for entry in self.layouts:
            if name is None or entry.name == name:
                return entry
        raise BundleError(f"the bundle has no layout {name!r}; it has {[e.name for e in self.layouts]}")


def _check_own_hash(data: dict[str, Any], version: int, source: str) -> None:
    recorded = data.get(MANIFEST_HASH)
    if recorded is None:
        if version >= 2:
            raise BundleError(f"{source} lacks its {MANIFEST_HASH}; {REBUILD}")
        return  # format 1 manifests predate the field; their graph files are still checked
    if canonical_sha256(data, MANIFEST_HASH) != recorded:
        raise BundleError(f"{source} was edited after the export (its content no longer matches its "
                          f"{MANIFEST_HASH}): the graphs bake in what it first said; {REBUILD}")  # fmt: skip


def _migrate(data: dict[str, Any], version: int) -> dict[str, Any]:
    """A manifest of an older format as the current one. Format 1 differs from 2 only by lacking
    `manifest_sha256` (which `_check_own_hash` allows it) and, in its first bundles, `format_version`; format 2
    from 3 by lacking the layouts' `bindings` (LayoutRecord.from_dict gives them the plan of their graphs)."""
    return {**data, "format_version": version}


# --- the engine folder ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildSettings:
    precision: str  # fp16, bf16, fp32 (flags on an fp32 bundle) or fp8/int8 (strongly typed Q/DQ bundle)
    strongly_typed: bool  # types come from the graph (Q/DQ bundles): no precision flags
    flags: tuple[str, ...]  # trt.BuilderFlag names
    optimization_level: int = 3  # TensorRT's builder optimization level, 0..5
    workspace_bytes: int = 4 << 30

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "flags": list(self.flags)}

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str = "builder") -> BuildSettings:
        r.obj(d, path, tuple(f.name for f in dataclasses.fields(cls)))
        return cls(r.field(d, path, "precision", str), r.field(d, path, "strongly_typed", bool),
                   r.items(d["flags"], f"{path}.flags", str), r.field(d, path, "optimization_level", int),
                   r.field(d, path, "workspace_bytes", int))  # fmt: skip


@dataclass(frozen=True)
class GpuRecord:
    name: str
    compute_capability: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": list(self.compute_capability)}

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str = "gpu") -> GpuRecord:
        r.obj(d, path, ("name", "compute_capability"))
        cc = r.items(d["compute_capability"], f"{path}.compute_capability", int)
        if len(cc) != 2:
            raise r.fail(f"{path}.compute_capability", f"must be [major, minor], found {list(cc)}")
        return cls(r.field(d, path, "name", str), cc)


@dataclass(frozen=True)
class EngineFile:
    """One serialized engine of the folder: its file name and record."""

    file: str
    bytes: int
    sha256: str

    def check(self, folder, graph: str, verify_hash: bool = True, trust_cache: bool = False) -> None:
        path = inside(folder, self.file, EngineError, f"{ENGINE_MANIFEST}: plans.{graph}.file")
        check_file(path, self.bytes, self.sha256, EngineError, f"{REBUILD_ENGINES} ({graph} engine)", verify_hash,
                   trust_cache)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, r: _Reader, path: str) -> EngineFile:
        r.obj(d, path, ("file", "bytes", "sha256"))
        file = _file_name(r.field(d, path, "file", str), r, f"{path}.file")
        return cls(file, r.field(d, path, "bytes", int), r.field(d, path, "sha256", str))


@dataclass(frozen=True, kw_only=True)
class EngineManifest:
    """`engines.json` of an engine folder: one layout of a bundle built for one GPU by one TensorRT.
    On disk it also holds `format` (ENGINE_FORMAT)."""

    tensorrt_version: str
    gpu: GpuRecord
    layout: str  # the bundle's layout name
    bundle_precision: str
    builder: BuildSettings
    sampler: SamplerRecord  # the bundle's, baked into the engines
    plans: dict[str, EngineFile]  # graph -> its engine
    source_graphs_sha256: dict[str, str]  # graph -> sha256 of the ONNX file it was built from
    bundle: str  # the bundle folder (absolute) the engines were built from

    @property
    def precision(self) -> str:
        return self.builder.precision

    def to_dict(self) -> dict[str, Any]:
        return {"format": ENGINE_FORMAT, "tensorrt_version": self.tensorrt_version, "gpu": self.gpu.to_dict(),
                "layout": self.layout, "bundle_precision": self.bundle_precision, "builder": self.builder.to_dict(),
                "sampler": self.sampler.to_dict(), "plans": {g: p.to_dict() for g, p in self.plans.items()},
                "source_graphs_sha256": dict(self.source_graphs_sha256), "bundle": self.bundle}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any, source: str = ENGINE_MANIFEST) -> EngineManifest:
        r = _Reader(source, EngineError, REBUILD_ENGINES)
        if not isinstance(data, dict) or data.get("format") != ENGINE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else data
            raise EngineError(f"{source}: not a vgpt engine manifest (format {found!r}); {REBUILD_ENGINES}")
        r.obj(data, "", tuple(f.name for f in dataclasses.fields(cls)))
        precision = r.field(data, "", "bundle_precision", str)
        if precision not in BUNDLE_PRECISIONS:
            raise r.fail("bundle_precision", f"is {precision!r}; a bundle holds one of {BUNDLE_PRECISIONS}")
        plans = {g: EngineFile.from_dict(p, r, f"plans.{g}") for g, p in r.field(data, "", "plans", dict).items()}
        missing = [g for g in ENGINE_GRAPHS if g not in plans]
        if missing:
            raise r.fail("plans", f"lacks {missing}")
        return cls(
            tensorrt_version=r.field(data, "", "tensorrt_version", str),
            gpu=GpuRecord.from_dict(data["gpu"], r),
            layout=r.field(data, "", "layout", str),
            bundle_precision=precision,
            builder=BuildSettings.from_dict(data["builder"], r),
            sampler=SamplerRecord.from_dict(data["sampler"], r),
            plans=plans,
            source_graphs_sha256=r.mapping(data["source_graphs_sha256"], "source_graphs_sha256", str),
            bundle=r.field(data, "", "bundle", str),
        )
