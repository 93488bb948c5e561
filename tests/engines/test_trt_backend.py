"""The TensorRT backend over stand-ins of TensorRT's engines and of torch's CUDA runtime (streams, graph
capture): what runs during a capture, the fallback where capture fails, the step reset before every
replay, the shared activation block, refused tensor addresses, and streams that outlive each other.

The stand-in runs each engine on CPU tensors (a denoising step adds 1 to z and advances the step index)
and records every enqueue with its stream and whether that stream was capturing; a captured enqueue is
recorded into the graph and runs at replay, as CUDA does."""

import contextlib
import itertools
import logging
import threading
import time

import numpy as np
import pytest
import torch

from vgpt.config import get_preset
from vgpt.engines.buffers import shared_activation_bytes
from vgpt.export.contract import EngineError
from vgpt.export.registry import binding_plan, graph_specs
from vgpt.export.spec import DECODER, DENOISE, ENCODER, PREFILL
from vgpt.layout import Layout
from vgpt.runtime.backends.trt_backend import TensorRTBackend

STEPS = 3  # odd: the clip ends in z1
SIZES = {ENCODER: 5000, PREFILL: 3000, DENOISE: 7000, DECODER: 1000}  # activation bytes per engine


class Sim:
    """What the stand-ins share: every backend's buffers (to resolve addresses), the streams that are
    capturing, and the log of enqueues."""

    def __init__(self) -> None:
        self.backends, self.capturing, self.log = [], {}, []
        self.fail_capture, self.capture_started, self.slow_capture = False, threading.Event(), 0.0
        self.refuse = set()  # tensor names whose address the stand-in refuses
        self.mu = threading.Lock()

    def tensor(self, ptr: int) -> torch.Tensor:
        for b in self.backends:
            for t in b.buffers.values():
                if t.data_ptr() == ptr:
                    return t
        raise AssertionError(f"address {ptr} is no buffer")

    def record(self, what: str, stream: int) -> None:
        with self.mu:
            self.log.append((what, stream, stream in self.capturing, threading.current_thread().name))


class Context:
    def __init__(self, sim: Sim, graph: str, strategy) -> None:
        self.sim, self.graph, self.strategy, self.addresses, self.memory = sim, graph, strategy, {}, None

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        if name in self.sim.refuse:
            return False
        self.addresses[name] = ptr
        return True

    def set_device_memory(self, ptr: int, size: int) -> None:
        self.memory = (ptr, size)

    def _compute(self) -> None:
        t = {name: self.sim.tensor(ptr) for name, ptr in self.addresses.items()}
        if self.graph == DENOISE:
            self.sim.steps_seen.append(int(t["step"][0]))
            t["z_next"].copy_(t["z"] + 1)
            t["step_next"].copy_(t["step"] + 1)
        elif self.graph == ENCODER:
            t["latents"].fill_(7.0)
        elif self.graph == DECODER:
            t["frames"].fill_(float(t["latents"].sum()))

    def execute_async_v3(self, stream: int) -> bool:
        sim = self.sim
        sim.record(self.graph, stream)
        graph = sim.capturing.get(stream)
        if graph is None:
            self._compute()
            return True
        if sim.fail_capture:
            return False
        sim.capture_started.set()
        time.sleep(sim.slow_capture)  # another thread's chance to run during the capture
        graph.ops.append(self._compute)
        return True


class Engine:
    def __init__(self, sim: Sim, graph: str) -> None:
        self.sim, self.graph, self.device_memory_size_v2, self.contexts = sim, graph, SIZES[graph], []

    def create_execution_context(self, strategy) -> Context:
        self.contexts.append(Context(self.sim, self.graph, strategy))
        return self.contexts[-1]


class Stream:
    handles = itertools.count(1)

    def __init__(self) -> None:
        self.cuda_stream = next(self.handles)

    def synchronize(self) -> None:
        pass


class CUDAGraph:
    def __init__(self) -> None:
        self.ops = []

    def replay(self) -> None:
        for op in self.ops:
            op()


class FakeCuda:
    """torch.cuda's streams and graph capture, as the backend uses them."""

    Stream, CUDAGraph = Stream, CUDAGraph

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    @contextlib.contextmanager
    def stream(self, stream):
        yield

    @contextlib.contextmanager
    def graph(self, graph, stream, capture_error_mode="global"):
        assert capture_error_mode == "thread_local"  # other threads' CUDA calls may not break it
        self.sim.record("capture_begin", stream.cuda_stream)
        self.sim.capturing[stream.cuda_stream] = graph
        try:
            yield
        finally:
            del self.sim.capturing[stream.cuda_stream]
            self.sim.record("capture_end", stream.cuda_stream)


class TorchWithFakeCuda:
    def __init__(self, cuda) -> None:
        self.cuda = cuda

    def __getattr__(self, name):
        return getattr(torch, name)


TRT = type("trt", (), {"ExecutionContextAllocationStrategy": type("S", (), {"USER_MANAGED": "user-managed"})})


@pytest.fixture
def sim():
    return Sim()


def open_backend(sim: Sim, use_cuda_graph: bool = True) -> TensorRTBackend:
    config = get_preset("tiny")
    layout = Layout.for_model(config, 3, 2, 4, 4)
    buffers = binding_plan(graph_specs(config, layout), layout)
    sim.steps_seen = []
    engines = {g: Engine(sim, g) for g in (ENCODER, PREFILL, DENOISE, DECODER)}
    backend = TensorRTBackend.from_engines(TRT, TorchWithFakeCuda(FakeCuda(sim)), engines, buffers, layout, STEPS,
                                           "cpu", use_cuda_graph)  # fmt: skip
    sim.backends.append(backend)
    return backend


def noise(backend) -> np.ndarray:
    return np.zeros(backend.plan.buffer(backend.io.noise).shape, np.float32)


def test_every_clip_starts_at_step_0_and_the_replay_is_the_loop(sim):
    backend = open_backend(sim)
    first = backend.denoise(noise(backend))
    assert backend.captured
    # Warm-up, then two clips replayed: each indexes the schedule 0..S-1 (the step index is reset on the
    # device before every replay), and each clip is S steps from its noise.
    sim.steps_seen.clear()
    second = backend.denoise(noise(backend))
    backend.launch()  # what gpu_check times: the same reset, then the replay
    assert sim.steps_seen == [0, 1, 2, 0, 1, 2]
    assert np.all(first == STEPS) and np.all(second == STEPS)
    plain = open_backend(sim, use_cuda_graph=False)
    assert np.array_equal(plain.denoise(noise(plain)), second) and not plain.captured


def test_an_encode_in_another_thread_is_never_recorded_into_the_capture(sim):
    backend = open_backend(sim)
    sim.slow_capture = 0.05
    encoded = []

    def observe() -> None:
        sim.capture_started.wait(5)
        encoded.append(backend.encode(np.zeros((1, 3, 32, 32), np.float32)))

    other = threading.Thread(target=observe, name="observe")
    other.start()
    backend.denoise(noise(backend))
    other.join(5)
    assert encoded and np.all(encoded[0] == 7.0)
    (encode,) = [e for e in sim.log if e[0] == ENCODER]
    assert encode[1] != backend.cuda_stream.cuda_stream and not encode[2]  # its own stream, never capturing
    begin, end = (sim.log.index(e) for e in sim.log if e[0].startswith("capture_"))
    assert not any(e[0] == ENCODER for e in sim.log[begin:end])  # and not while the capture ran
    assert [e[0] for e in sim.log[begin + 1 : end]] == [DENOISE] * STEPS


def test_a_failed_capture_falls_back_to_the_plain_loop_with_one_warning(sim, caplog):
    backend = open_backend(sim)
    sim.fail_capture = True
    with caplog.at_level(logging.WARNING, logger="vgpt.runtime.backends.trt_backend"):
        clips = [backend.denoise(noise(backend)) for _ in range(2)]
    assert not backend.captured
    assert all(np.all(c == STEPS) for c in clips)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "capture of the denoising loop failed" in warnings[0]
    assert sum(e[0] == "capture_begin" for e in sim.log) == 1  # not retried per clip


def test_the_contexts_that_run_in_turn_share_one_user_managed_block(sim):
    backend = open_backend(sim)
    engines = backend._engines
    contexts = [c for e in engines.values() for c in e.contexts]
    assert len(contexts) == 5 and all(c.strategy == "user-managed" for c in contexts)
    shared = {c.memory for g in (PREFILL, DENOISE, DECODER) for c in engines[g].contexts}
    (block,) = shared  # one block: prefill, both steps, decoder
    assert block[1] == shared_activation_bytes(SIZES) == 7168
    (encoder,) = engines[ENCODER].contexts
    assert encoder.memory[0] not in {c.memory[0] for c in contexts if c is not encoder} and encoder.memory[1] >= 5000


def test_a_refused_tensor_address_is_an_error(sim):
    sim.refuse.add("kv_cache")
    with pytest.raises(EngineError, match=r"refuses the address of prefill's kv_cache \(buffer kv\)"):
        open_backend(sim)


def test_closing_a_stream_leaves_the_engines_to_the_others(sim):
    backend = open_backend(sim)
    other = backend.stream()
    assert other.buffers["z0"].data_ptr() != backend.buffers["z0"].data_ptr()
    assert other.cuda_stream.cuda_stream != backend.cuda_stream.cuda_stream
    sim.backends.append(other)
    other.close()
    third = backend.stream()  # the engines table is not emptied by another stream's close()
    sim.backends.append(third)
    assert np.all(third.denoise(noise(third)) == STEPS) and np.all(backend.denoise(noise(backend)) == STEPS)
    with pytest.raises(EngineError, match="closed"):
        other.stream()
