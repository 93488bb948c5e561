"""One loader turns a bundle, a graph inside one, a checkpoint, an engines folder or the bundled default
into a backend, and refuses combinations that cannot mean anything, naming the fix."""

import numpy as np
import pytest

from vgpt.export.manifest import BundleError, load_bundle
from vgpt.runtime.loading import cache_root, open_backend


def test_a_checkpoint_is_exported_once_then_its_bundle_or_any_graph_in_it_loads(model_folder):
    backend = open_backend(model_folder)
    assert backend.name == "onnxruntime" and backend.layout.history_frames == 3
    bundle = next(p for p in cache_root().iterdir() if p.is_dir() and not p.name.startswith("."))
    for source in (bundle, next(bundle.rglob("denoise.onnx"))):
        assert open_backend(source).layout == backend.layout
    assert open_backend(model_folder, backend="torch").layout == backend.layout


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tflite"}, "backend 'tflite': choose one of"),
        ({"backend": "torch", "providers": ["cuda"]}, "are ONNX Runtime's; the torch backend takes none"),
        ({"backend": "tensorrt"}, "needs --engine model.plan"),
    ],
)
def test_combinations_that_mean_nothing_are_refused(kwargs, message):
    with pytest.raises(BundleError, match=message):
        open_backend(None, **kwargs)


def test_a_bundle_refuses_a_codec_the_torch_backend_and_other_baked_settings(model_folder):
    open_backend(model_folder)
    bundle = next(p for p in cache_root().iterdir() if p.is_dir() and not p.name.startswith("."))
    with pytest.raises(BundleError, match="--codec applies to checkpoints"):
        open_backend(bundle, codec=model_folder / "codec")
    with pytest.raises(BundleError, match="the torch backend needs a checkpoint folder"):
        open_backend(bundle, backend="torch")
    steps = load_bundle(bundle).sampler.steps
    with pytest.raises(BundleError, match=f"exported with steps={steps}, not {steps + 1}: .*--steps {steps + 1}"):
        open_backend(bundle, steps=steps + 1)


def test_a_warm_start_finds_the_cached_export_without_loading_the_weights(model_folder, monkeypatch):
    import vgpt.checkpoint
    from vgpt.runtime.loading import cached_export

    first = cached_export(model_folder, None, None)

    def no_load(*args, **kwargs):
        raise AssertionError("the weights were loaded on a warm start")

    monkeypatch.setattr(vgpt.checkpoint, "load_checkpoint", no_load)
    assert cached_export(model_folder, None, None) == first


def test_a_first_run_that_waits_for_another_processs_export_says_so(model_folder, caplog):
    import fcntl
    import logging
    import threading
    import time

    from vgpt.runtime.loading import LOCK_SUFFIX, cached_export

    bundle = cached_export(model_folder, None, None)
    caplog.set_level(logging.INFO, "vgpt.runtime.loading")
    with open(bundle.parent / f"{bundle.name}{LOCK_SUFFIX}", "a") as other:  # another process exporting
        fcntl.flock(other, fcntl.LOCK_EX)
        waiter = threading.Thread(target=cached_export, args=(model_folder, None, None))
        waiter.start()
        deadline = time.monotonic() + 120
        while "waiting for another process" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
        fcntl.flock(other, fcntl.LOCK_UN)
    waiter.join(timeout=120)
    assert f"waiting for another process that is exporting {model_folder}" in caplog.text
    assert "the other export finished after" in caplog.text


def test_any_layout_of_a_bundle_is_chosen_by_name_or_by_shape(two_layout_bundle):
    """load_model(layout=...) runs a bundle's second layout, as the C API's options.layout does; the first
    stays the default, and a layout the bundle lacks is refused with the ones it has."""
    from vgpt.layout import LayoutRequest
    from vgpt.runtime.loading import history_frames
    from vgpt.runtime.predictor import load_model

    assert load_model(two_layout_bundle).layout.history_frames == 3  # the first, as before
    for wanted in ("m2-g1-4x4", LayoutRequest(2, 1), LayoutRequest(2, 1, (4, 4)), LayoutRequest(2, 1, (32, 32), True)):
        model = load_model(two_layout_bundle, layout=wanted)
        assert (model.layout.history_frames, model.layout.clip_frames) == (2, 1), wanted
        assert history_frames(two_layout_bundle, wanted) == 2
        stream = model.stream(seed=0)
        stream.observe(np.zeros((2, 32, 32, 3), np.uint8))
        assert stream.predict().frames.shape == (1, 32, 32, 3)
    for wanted, message in ((LayoutRequest(5, 1), r"has no layout 5,1; it has m3-g2-4x4 \(3,2,4x4\), m2-g1-4x4"),
                            ("m9-g9-4x4", "has no layout 'm9-g9-4x4'")):  # fmt: skip
        with pytest.raises(BundleError, match=message):
            load_model(two_layout_bundle, layout=wanted)


def test_a_checkpoint_exports_or_runs_at_the_layout_asked_for(model_folder):
    from vgpt.layout import LayoutRequest

    for backend in ("onnxruntime", "torch"):
        chosen = open_backend(model_folder, backend=backend, layout=LayoutRequest(2, 1))
        assert (chosen.layout.history_frames, chosen.layout.clip_frames) == (2, 1), backend
    with pytest.raises(BundleError, match=r"names one of a bundle's layouts, and .* is a checkpoint"):
        open_backend(model_folder, layout="m2-g1-4x4")
