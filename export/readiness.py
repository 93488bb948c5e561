"""TensorRT readiness: every op of every graph against the table of ops TensorRT's ONNX parser imports
(`data/tensorrt_onnx_ops.json`), plus the opset, tensor dtypes, static shapes and control flow."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

TABLE_FILE = Path(__file__).parent / "data" / "tensorrt_onnx_ops.json"
CONTROL_FLOW = {"If", "Loop", "Scan"}


@lru_cache(maxsize=1)
def trt_table() -> dict:
    return json.loads(TABLE_FILE.read_text())


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@dataclass
class GraphReadiness:
    name: str
    opset: int
    nodes: int
    ops: dict[str, int]
    unsupported: list[str] = field(default_factory=list)
    control_flow: list[str] = field(default_factory=list)
    custom_domains: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)
    bad_dtypes: list[str] = field(default_factory=list)
    min_tensorrt: str | None = None  # None when no release parses it

    @property
    def ready(self) -> bool:
        problems = self.unsupported or self.control_flow or self.custom_domains or self.dynamic or self.bad_dtypes
        return not problems and self.min_tensorrt is not None

    def to_dict(self) -> dict:
        return {**self.__dict__, "ready": self.ready}

    def __str__(self) -> str:
        head = f"{self.name}: opset {self.opset}, {self.nodes} nodes, {len(self.ops)} op types"
        if self.ready:
            return f"{head}: ready for TensorRT >= {self.min_tensorrt}"
        issues = []
        for title, items in (("ops TensorRT cannot parse", self.unsupported), ("control flow", self.control_flow),
                             ("custom domains", self.custom_domains), ("dynamic dimensions", self.dynamic),
                             ("unsupported dtypes", self.bad_dtypes)):  # fmt: skip
            if items:
                issues.append(f"{title}: {', '.join(items)}")
        if self.min_tensorrt is None and not issues:
            issues.append(f"opset {self.opset} is beyond every TensorRT release in the table")
        return f"{head}: NOT ready ({'; '.join(issues)})"


def _dtype_name(elem_type: int) -> str:
    import onnx

    # ONNX's own names where numpy has none (bfloat16, float8) or a vague one (strings are numpy objects).
    special = {onnx.TensorProto.BFLOAT16: "bfloat16", onnx.TensorProto.FLOAT8E4M3FN: "float8e4m3fn",
               onnx.TensorProto.STRING: "string"}  # fmt: skip
    return special.get(elem_type) or onnx.helper.tensor_dtype_to_np_dtype(elem_type).name


def check_graph(path: str | Path, name: str | None = None) -> GraphReadiness:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    table = trt_table()
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    nodes = list(model.graph.node)
    counts = collections.Counter(n.op_type for n in nodes if n.domain in ("", "ai.onnx"))
    report = GraphReadiness(name or Path(path).stem, opset, len(nodes), dict(sorted(counts.items())))
    report.custom_domains = sorted({n.domain for n in nodes if n.domain not in ("", "ai.onnx")})
    report.control_flow = sorted(CONTROL_FLOW & set(counts))
    report.unsupported = sorted(op for op in counts if op not in table["ops"])
    for value in (*model.graph.input, *model.graph.output):
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if any(d is None or d <= 0 for d in dims):
            report.dynamic.append(value.name)
        dtype = _dtype_name(t.elem_type)
        if dtype not in table["dtypes"]:
            report.bad_dtypes.append(f"{value.name}:{dtype}")
    if not report.unsupported:
        needed = [table["ops"][op] for op in counts]
        opset_versions = [v for v, top in table["max_opset"].items() if top >= opset]
        if opset_versions:
            needed.append(min(opset_versions, key=_version_key))
            report.min_tensorrt = max(needed, key=_version_key)
    return report
