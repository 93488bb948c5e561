"""The bundled default model through the whole export: ONNX Runtime reproduces the cached predictor."""

import numpy as np
import torch

from tests.conftest import default_model_parts
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.manifest import load_bundle
from vgpt.predictors import CachedPredictor

from .test_bundle import run_bundle_loop


def test_default_model_bundle_reproduces_the_cached_predictor(tmp_path):
    _, model, codec, layout, sampler = default_model_parts()
    assert sampler.guided
    export_bundle(model, codec, tmp_path / "b", ExportConfig(layouts=(layout,), sampler=sampler))
    entry = load_bundle(tmp_path / "b").layout()
    history = torch.randn(1, layout.history_frames, 4, layout.latent_height, layout.latent_width,
                          generator=torch.Generator().manual_seed(3))  # fmt: skip
    expected = CachedPredictor(model, sampler, window=layout.history_frames).predict(
        history, 1, layout.clip_frames, torch.Generator().manual_seed(8)
    )
    z0 = torch.randn(expected.shape, generator=torch.Generator().manual_seed(8))
    got = run_bundle_loop(entry, history.numpy(), z0.numpy(), sampler.steps)
    # 50 steps of fp32 kernels that differ between ONNX Runtime and PyTorch; the last steps divide the
    # model's output by 1 - sigma >= 1/50 before adding dt = 1/50 of it, so each step's error stays
    # ~1e-6 relative and they add up over 50 steps: seen ~3e-5 on latents of magnitude ~3.
    print(f"bundled model: ORT vs cached predictor max abs error {np.abs(got - expected.numpy()).max():.2e}")
    np.testing.assert_allclose(got, expected.numpy(), atol=5e-4, rtol=0)
