import json

import pytest
import torch

from tests.conftest import random_model
from vgpt.checkpoint import save_checkpoint
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.synthetic import SceneConfig, write_dataset

pytest.importorskip("onnxruntime")
pytest.importorskip("av")

SETTINGS = {"history": 3, "clip": 2, "height": 32, "width": 32, "steps": 3, "guidance": 2.0}


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory):
    """A folder laid out like the bundled default: tiny model, light codec, defaults.json."""
    root = tmp_path_factory.mktemp("model")
    save_checkpoint(random_model(get_preset("tiny")), root / "model")
    torch.manual_seed(0)
    LightCodec().eval().save(root / "codec")
    (root / "defaults.json").write_text(json.dumps(SETTINGS))
    return root


@pytest.fixture(scope="session")
def clip_video(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return write_dataset(root, [7], SceneConfig(height=48, width=48, frames=12))[0]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VGPT_CACHE", str(tmp_path_factory.getbasetemp() / "vgpt-cache"))


@pytest.fixture(scope="session")
def two_layout_bundle(model_folder, tmp_path_factory):
    """The tiny model exported at two layouts: m3-g2-4x4 first, m2-g1-4x4 second."""
    import torch

    from vgpt.checkpoint import load_checkpoint
    from vgpt.codecs import load_codec
    from vgpt.export.bundle import ExportConfig, export_bundle
    from vgpt.layout import Layout
    from vgpt.sampler import SamplerConfig

    model = load_checkpoint(model_folder / "model").model
    codec = load_codec(model_folder / "codec")
    layouts = tuple(Layout.for_model(model.config, m, g, 4, 4) for m, g in ((3, 2), (2, 1)))
    out = tmp_path_factory.mktemp("two") / "bundle"
    torch.manual_seed(0)
    export_bundle(model, codec, out, ExportConfig(layouts=layouts, sampler=SamplerConfig(steps=2), verify=False))
    return out
