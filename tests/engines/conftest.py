import pytest
import torch

from tests.conftest import random_model
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.layout import Layout
from vgpt.sampler import SamplerConfig


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory):
    """An fp32 bundle of a random tiny model (one layout, 2 steps, unverified: only its files are read)."""
    pytest.importorskip("onnxruntime")
    from vgpt.export.bundle import ExportConfig, export_bundle

    model = random_model(get_preset("tiny"))
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bundle") / "fp32"
    config = ExportConfig(layouts=(Layout.for_model(model.config, 3, 2, 4, 4),), sampler=SamplerConfig(steps=2),
                          verify=False)  # fmt: skip
    export_bundle(model, LightCodec().eval(), out, config)
    return out
