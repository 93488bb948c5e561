"""vgpt.engines.build against a stand-in of TensorRT's Python API: the progress monitor called as TensorRT
calls it, the timing cache TensorRT refuses, and the builder settings of TensorRT 10 and 11."""

import logging
import re
import sys
import types

import pytest

from vgpt.engines.build import build_engine
from vgpt.engines.settings import build_settings
from vgpt.export.contract import EngineError

# What TensorRT's builder calls on the progress monitor during a build, in order, with the arguments
# positional as TensorRT passes them: phase_start(phase_name, parent_phase, num_steps),
# step_complete(phase_name, step), phase_finish(phase_name).
TRT_CALLS = [
    ("phase_start", "Building engine", None, 2),
    ("phase_start", "Tactic selection", "Building engine", 3),
    ("step_complete", "Tactic selection", 0),
    ("step_complete", "Tactic selection", 1),
    ("step_complete", "Tactic selection", 2),
    ("phase_finish", "Tactic selection"),
    ("phase_start", "Serialization", "Building engine", 1),
    ("step_complete", "Serialization", 0),
    ("phase_finish", "Serialization"),
    ("phase_finish", "Building engine"),
]


class _Cache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data or b"fresh-cache"


class _Config:
    def __init__(self, trt) -> None:
        self.trt, self.flags, self.cache, self.progress_monitor = trt, [], None, None

    def set_memory_pool_limit(self, pool, size) -> None:
        pass

    def set_flag(self, flag) -> None:
        self.flags.append(flag)

    def add_optimization_profile(self, profile) -> None:
        pass

    def create_timing_cache(self, data: bytes):
        return _Cache(data)

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        # TensorRT refuses a cache written on another GPU and leaves the config without one.
        accepted = cache.data not in self.trt.foreign_caches
        self.cache = cache if accepted else None
        return accepted

    def get_timing_cache(self):
        return self.cache


class _Builder:
    def __init__(self, trt) -> None:
        self.trt = trt

    def create_network(self, flags: int):
        self.trt.network_flags = flags
        return object()

    def create_builder_config(self):
        self.trt.config = _Config(self.trt)
        return self.trt.config

    def create_optimization_profile(self):
        return types.SimpleNamespace(set_shape=lambda *shape: None)

    def build_serialized_network(self, network, config):
        for name, *args in TRT_CALLS:
            result = getattr(config.progress_monitor, name)(*args)
            assert name != "step_complete" or result is True  # False would cancel the build
        return b"serialized-engine"


def fake_tensorrt(version: str, foreign_caches=()) -> types.SimpleNamespace:
    """The part of TensorRT's Python API that build_engine uses. TensorRT 11 has no precision flags."""
    trt = types.SimpleNamespace(__version__=version, foreign_caches=set(foreign_caches), network_flags=None)

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    flags = {"TF32": "TF32"} if version.startswith("11.") else {"FP16": "FP16", "BF16": "BF16", "TF32": "TF32"}
    trt.IProgressMonitor = IProgressMonitor
    trt.BuilderFlag = types.SimpleNamespace(**flags)
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.Builder = lambda logger: _Builder(trt)
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.OnnxParser = lambda network, logger: types.SimpleNamespace(parse_from_file=lambda path: True, num_errors=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    return trt


SHAPES = {"z": ((1, 4), (1, 4), (1, 4))}


def test_progress_monitor_logs_each_phase_under_its_parent_with_its_duration(monkeypatch, caplog, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.15.1"))
    with caplog.at_level(logging.INFO, logger="vgpt.engines.build"):
        build_engine(tmp_path / "g.onnx", build_settings("fp32", "float32", "fp16", (10, 15)), SHAPES, None)
    lines = [re.sub(r"done in \d+\.\d s", "done in T s", r.getMessage()) for r in caplog.records]
    assert lines == [
        "  [trt] Building engine (2 steps)",
        "  [trt]   Tactic selection (3 steps)",  # indented: a phase inside another
        "  [trt] Tactic selection done in T s",
        "  [trt]   Serialization (1 steps)",
        "  [trt] Serialization done in T s",
        "  [trt] Building engine done in T s",
    ]
    # Each phase's duration is its own (the stand-in builds in microseconds), not time since the epoch.
    durations = re.findall(r"done in (\d+\.\d) s", " ".join(r.getMessage() for r in caplog.records))
    assert len(durations) == 3 and all(float(d) < 1 for d in durations)


def test_a_timing_cache_tensorrt_refuses_is_replaced_by_a_fresh_one(monkeypatch, caplog, tmp_path):
    trt = fake_tensorrt("10.15.1", foreign_caches={b"from-another-gpu"})
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    cache = tmp_path / "engines.timing-cache"
    cache.write_bytes(b"from-another-gpu")
    with caplog.at_level(logging.WARNING, logger="vgpt.engines.build"):
        data = build_engine(tmp_path / "g.onnx", build_settings("fp32", "float32", "fp32", (10, 15)), SHAPES, cache)
    assert data == b"serialized-engine"  # the build is not lost to the refused cache
    assert "from another GPU or TensorRT version; starting a fresh one" in caplog.text
    assert cache.read_bytes() == b"fresh-cache"  # rewritten from the fresh cache
    assert [p.name for p in tmp_path.iterdir()] == ["engines.timing-cache"]  # written atomically
    # A cache TensorRT takes is kept and written back.
    cache.write_bytes(b"this-gpu")
    build_engine(tmp_path / "g.onnx", build_settings("fp32", "float32", "fp32", (10, 15)), SHAPES, cache)
    assert cache.read_bytes() == b"this-gpu" and trt.config.cache.data == b"this-gpu"
    # Where even a fresh cache is refused, the build stops before it starts.
    trt.foreign_caches.add(b"")
    with pytest.raises(EngineError, match="refuses a fresh timing cache"):
        build_engine(tmp_path / "g.onnx", build_settings("fp32", "float32", "fp32", (10, 15)), SHAPES, None)


@pytest.mark.parametrize(("version", "dtype", "flags"), [("10.15.1", "float32", ["FP16"]), ("11.4.0", "float16", [])])
def test_fp16_builds_with_the_flag_on_tensorrt_10_and_strongly_typed_on_11(monkeypatch, tmp_path, version, dtype,
                                                                        flags):  # fmt: skip
    trt = fake_tensorrt(version)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    settings = build_settings("fp32", dtype, "fp16", (int(version[:2]), int(version.split(".")[1])))
    build_engine(tmp_path / "g.onnx", settings, SHAPES, None)
    assert trt.config.flags == flags
    assert trt.network_flags == (0 if flags else 1 << 1)  # STRONGLY_TYPED where no flag decides


def test_an_unsupported_tensorrt_is_refused_when_imported(monkeypatch):
    from vgpt.engines.build import import_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("12.0.0"))
    with pytest.raises(EngineError, match=r"TensorRT 12\.0\.0 is not supported"):
        import_tensorrt()
