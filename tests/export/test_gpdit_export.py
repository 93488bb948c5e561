"""GPDiT bundles: the frame and ring graphs (export/gpdit_graphs.py) and the exact rolling mode of the
ONNX Runtime and PyTorch backends."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import random_model
from tests.export.conftest import SAMPLER
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.manifest import load_bundle
from vgpt.export.registry import graph_specs
from vgpt.export.spec import APPEND, FRAME, RING
from vgpt.layout import Layout
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.runtime.backends.torch_backend import TorchBackend
from vgpt.runtime.predictor import VideoPredictor
from vgpt.synthetic import SceneConfig, render_video

M, G = 3, 2


@pytest.fixture(scope="module")
def gpdit_parts():
    model = random_model(get_preset("gpdit-tiny"))
    torch.manual_seed(0)
    return model, LightCodec().eval(), Layout.for_model(model.config, M, G, 4, 4)


@pytest.fixture(scope="module")
def gpdit_bundle(gpdit_parts, tmp_path_factory):
    """A verified bundle of gpdit-tiny: ONNX Runtime against eager PyTorch on every graph."""
    model, codec, layout = gpdit_parts
    out = tmp_path_factory.mktemp("bundles") / "gpdit-tiny"
    export_bundle(model, codec, out, ExportConfig(layouts=(layout,), sampler=SAMPLER))
    return out


def _relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_the_lightweight_mask_gets_the_frame_and_ring_graphs_and_no_append():
    layout = Layout.for_model(get_preset("gpdit-tiny"), 4, 2, 8, 8)
    specs = graph_specs(get_preset("gpdit-tiny"), layout)
    assert list(specs) == ["encoder", "prefill", "denoise", "decoder", FRAME, RING]
    c = get_preset("gpdit-tiny")
    slot = (c.num_hidden_layers, 2, 1, c.num_key_value_heads, layout.block, c.head_dim)
    assert specs[FRAME].tensor("frame_kv").shape == slot
    assert specs[RING].tensor("ring").shape == (4, *slot)
    assert specs[RING].outputs == (specs["prefill"].tensor("kv_cache"),)
    # Video-GPT and GPDiT's vanilla mask: clean keys depend on earlier frames; the approximate append.
    for config in (get_preset("tiny"), c.replace(attention_mask="vanilla")):
        assert list(graph_specs(config, layout))[4:] == [APPEND]


def test_the_manifest_records_verified_frame_and_ring_graphs(gpdit_bundle):
    bundle = load_bundle(gpdit_bundle)  # the contract's check of every graph against the model and layout
    graphs = bundle.manifest.layouts[0].graphs
    assert sorted(graphs) == sorted(["encoder", "prefill", "denoise", "decoder", FRAME, RING])
    for name in (FRAME, RING):
        assert graphs[name].verification and all(v["passed"] for v in graphs[name].verification)
        assert (gpdit_bundle / bundle.manifest.layouts[0].name / f"{name}.onnx").exists()


def test_a_gpdit_manifest_is_valid_against_the_schema(gpdit_bundle):
    from tests.export.test_contract import _validator

    document = json.loads((gpdit_bundle / "manifest.json").read_text())
    _validator().validate(document)
    assert {FRAME, RING} <= set(document["layouts"][0]["graphs"])


def _backend(kind, gpdit_bundle, gpdit_parts):
    model, codec, layout = gpdit_parts
    if kind == "onnxruntime":
        return OrtBackend(load_bundle(gpdit_bundle), threads=1)
    return TorchBackend(model, codec, layout, SAMPLER, threads=1)


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_the_ring_after_1000_single_frame_shifts_equals_a_fresh_window(kind, gpdit_bundle, gpdit_parts):
    backend = _backend(kind, gpdit_bundle, gpdit_parts)
    assert backend.exact_rolling and backend.supports_rolling
    stream = np.random.default_rng(0).standard_normal((M + 1000, 1, 1, 4, 4, 4)).astype(np.float32)
    for i, latents in enumerate(stream):
        backend.push(latents)
        if i == M:  # the window after one shift, and its denoised clip
            backend.read_window()
            first = backend.cache()
    backend.read_window()
    got = backend.cache()
    backend.prefill(stream[-M:, 0, 0][None])  # a fresh computation of the same window
    want = backend.cache()
    # fp32 round-off of one frame's arithmetic, computed alone at its canonical place and rotated to its
    # window place when read (~3e-7 measured); nothing accumulates over the shifts. A wrong slot or
    # position, or drift, shows at 1e-3 or more.
    assert _relative(got, want) < 1e-5
    z = np.random.default_rng(1).standard_normal((1, G, 4, 4, 4)).astype(np.float32)
    want_clip = backend.denoise(z).copy()
    backend.read_window()
    # The S = 4 denoising steps over that window: the same round-off, carried through 4 Euler steps.
    assert _relative(backend.denoise(z), want_clip) < 1e-5
    backend.prefill(stream[1 : M + 1, 0, 0][None])
    assert _relative(first, backend.cache()) < 1e-5  # and after one shift


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
def test_rolling_predictions_equal_exact_ones(kind, gpdit_bundle, gpdit_parts):
    frames = render_video(3, SceneConfig(40, 30, M + 9))
    exact = VideoPredictor(_backend(kind, gpdit_bundle, gpdit_parts), mode="exact")
    rolling = VideoPredictor(_backend(kind, gpdit_bundle, gpdit_parts), mode="rolling")
    for start, end, clips in ((0, M + 1, 1), (M + 1, M + 2, 2), (M + 2, M + 9, 1)):
        for p in (exact, rolling):
            p.observe(frames[start:end])
        a, b = (p.predict(clips, torch.Generator().manual_seed(end), return_latents=True) for p in (exact, rolling))
        # fp32 round-off of the ring against prefill (see above), through S = 4 steps and, for two clips,
        # the second clip's prefill on a history holding the first.
        assert _relative(b.latents, a.latents) < 1e-5
    assert rolling.backend.exact_rolling


def test_the_torch_backend_matches_onnx_runtime_on_the_ring(gpdit_bundle, gpdit_parts):
    ort, eager = (_backend(k, gpdit_bundle, gpdit_parts) for k in ("onnxruntime", "torch"))
    for latents in np.random.default_rng(2).standard_normal((M + 2, 1, 1, 4, 4, 4)).astype(np.float32):
        ort.push(latents)
        eager.push(latents)
    ort.read_window()
    eager.read_window()
    # The same graph computed by ONNX Runtime's kernels and PyTorch's: round-off (~1e-6 on O(1) values).
    assert _relative(ort.cache(), eager.cache()) < 1e-4


def test_a_quantized_gpdit_export_is_refused(gpdit_parts, tmp_path):
    model, codec, layout = gpdit_parts

    class Int8:
        precision = "int8"

    with pytest.raises(ValueError, match="quantization of a model with the lightweight mask"):
        export_bundle(model, codec, tmp_path / "b", ExportConfig(layouts=(layout,), precision="int8"), quantizer=Int8())
    assert not (tmp_path / "b").exists()
