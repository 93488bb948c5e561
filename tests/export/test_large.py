"""The medium preset (2.3 GB of fp32 weights) exports with external data and runs in ONNX Runtime."""

import resource

import numpy as np
import onnxruntime as ort
import pytest
import torch

from vgpt.config import get_preset
from vgpt.export.graphs import DenoiseGraph, PrefillGraph
from vgpt.export.onnx_export import export_onnx
from vgpt.export.registry import graph_specs
from vgpt.export.spec import DENOISE
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.sampler import SamplerConfig


@pytest.mark.slow
def test_medium_denoise_graph_uses_external_data(tmp_path):
    config = get_preset("medium")
    torch.manual_seed(0)
    model = VideoGPT(config).eval()
    layout = Layout.for_model(config, 1, 1, 2, 2)
    sampler = SamplerConfig(steps=2, guidance=2.0)
    spec = graph_specs(config, layout)[DENOISE]
    with torch.no_grad():
        kv = PrefillGraph(model, layout, sampler)(torch.randn(1, 1, 4, 2, 2))
    z, step = torch.randn(1, 1, 4, 2, 2), torch.zeros(1, dtype=torch.int64)
    graph = DenoiseGraph(model, layout, sampler)
    with torch.no_grad():
        expected, _ = graph(z, kv, step)
    path = export_onnx(graph, spec, (z, kv, step), tmp_path / "denoise.onnx", opset=23)
    data = tmp_path / "denoise.onnx.data"
    assert data.stat().st_size > 2 * 2**30 and path.stat().st_size < 50 * 2**20
    del model, graph
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z_next, step_next = session.run(None, {"z": z.numpy(), "kv_cache": kv.numpy(), "step": step.numpy()})
    assert step_next.tolist() == [1]
    # fp32 through 20 layers of width 1536 with different kernels: ~1e-5 on O(1) values.
    np.testing.assert_allclose(z_next, expected.numpy(), atol=1e-3, rtol=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"medium: data {data.stat().st_size / 2**30:.2f} GiB, peak RSS of the test process {peak:.1f} GiB")
