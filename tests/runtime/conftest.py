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
