import numpy as np
import torch

from tests.conftest import random_model
from vgpt.config import get_preset
from vgpt.export.graphs import PrefillGraph
from vgpt.layout import Layout
from vgpt.rolling import roll_window
from vgpt.rope import rope_tables, shift_rotary
from vgpt.runtime.predictor import load_predictor
from vgpt.sampler import SamplerConfig
from vgpt.synthetic import SceneConfig, render_video


def test_shifting_rotated_keys_equals_rotating_at_the_new_position():
    c = get_preset("tiny")
    k = torch.randn(1, 4, 10, c.head_dim)
    pos = torch.arange(20, 30)
    from vgpt.rope import apply_rotary

    cos, sin = rope_tables(c, pos, "long")
    cos2, sin2 = rope_tables(c, pos - 7, "long")
    torch.testing.assert_close(shift_rotary(apply_rotary(k, cos, sin), c, "long", -7), apply_rotary(k, cos2, sin2))


def test_rolled_layer0_equals_an_exact_prefill_and_m1_is_exact():
    """Layer 0 keys/values depend only on each frame's embeddings and positions, so after a roll they
    must equal the exact prefill of the slid window; with M = 1 nothing is kept and rolling is exact."""
    model = random_model(get_preset("tiny"))
    for M in (3, 1):
        layout = Layout.for_model(model.config, M, 2, 4, 4)
        prefill = PrefillGraph(model, layout, SamplerConfig())
        frames = torch.randn(1, M + 1, 4, 4, 4)
        with torch.no_grad():
            rolled = roll_window(model, prefill(frames[:, :M]), frames[:, M:], layout.tokens_per_frame, "long")
            exact = prefill(frames[:, 1:])
        # Same arithmetic in another order (a shifted rotation): fp32 round-off, 1e-5.
        torch.testing.assert_close(rolled[0], exact[0], atol=1e-5, rtol=0)
        if M == 1:
            torch.testing.assert_close(rolled, exact, atol=1e-5, rtol=0)
        else:
            assert (rolled[1:] - exact[1:]).abs().max() > 1e-4, "deeper layers remember the dropped frame"


def test_rolling_predictor_on_onnxruntime_matches_torch_and_drifts_boundedly(model_folder):
    frames = render_video(5, SceneConfig(height=32, width=32, frames=8))
    results = {}
    for backend in ("torch", "onnxruntime"):
        for mode in ("exact", "rolling"):
            p = load_predictor(model_folder, backend, mode=mode)
            p.observe(frames[:3])  # fills the window: rolling mode's first prediction prefills it exactly
            first = p.predict(1, torch.Generator().manual_seed(2), return_latents=True).latents
            for frame in frames[3:]:  # 5 rolls, each applied before the prediction that follows it
                p.observe(frame)
                last = p.predict(1, torch.Generator().manual_seed(2), return_latents=True).latents
            results[backend, mode] = first, last
    # The rolling graph in ONNX Runtime computes what the PyTorch reference computes (fp32, 1e-4 as
    # for the exact mode).
    for k in (0, 1):
        np.testing.assert_allclose(results["onnxruntime", "rolling"][k], results["torch", "rolling"][k],
                                   atol=1e-4, rtol=0)  # fmt: skip
    exact, rolling = results["onnxruntime", "exact"], results["onnxruntime", "rolling"]
    # Before any roll the cache is an exact prefill: the same graph on the same inputs, so the same bits
    # up to ONNX Runtime's run-to-run order of sums.
    np.testing.assert_allclose(rolling[0], exact[0], atol=1e-6, rtol=0)
    drift = np.linalg.norm(rolling[1] - exact[1]) / np.linalg.norm(exact[1])
    print(f"rolling vs exact after 5 rolls (tiny, random weights): relative error {drift:.3f}")
    # The rolls ran (the kept frames remember dropped ones, so the prediction moves by more than
    # round-off) and stay near the exact prediction (a drift near 1 would be a wrong window).
    assert 1e-3 < drift < 0.5
