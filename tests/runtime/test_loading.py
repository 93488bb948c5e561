"""One loader turns a bundle, a graph inside one, a checkpoint, an engines folder or the bundled default
into a backend, and refuses combinations that cannot mean anything, naming the fix."""

import pytest

from vgpt.export.manifest import BundleError, load_bundle
from vgpt.runtime.loading import cache_root, open_backend


def test_a_checkpoint_is_exported_once_then_its_bundle_or_any_graph_in_it_loads(model_folder):
    backend = open_backend(model_folder)
    assert backend.name == "onnxruntime" and backend.layout.history_frames == 3
    bundle = next(p for p in cache_root().iterdir() if p.is_dir() and not p.name.startswith("."))
    for source in (bundle, next(bundle.rglob("denoise.onnx"))):
        assert open_backend(source).layout == backend.layout
    assert open_backend(model_folder, "torch").layout == backend.layout


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
        open_backend(bundle, "torch")
    steps = load_bundle(bundle).sampler.steps
    with pytest.raises(BundleError, match=f"exported with steps={steps}, not {steps + 1}: .*--steps {steps + 1}"):
        open_backend(bundle, steps=steps + 1)
