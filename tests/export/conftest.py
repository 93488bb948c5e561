import pytest
import torch

from tests.conftest import random_model
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.layout import Layout
from vgpt.sampler import SamplerConfig

pytest.importorskip("onnxruntime")
pytest.importorskip("polygraphy")

SAMPLER = SamplerConfig(steps=4, guidance=2.0, shift=1.5)


@pytest.fixture(scope="session")
def tiny_parts():
    model = random_model(get_preset("tiny"))
    torch.manual_seed(0)
    return model, LightCodec().eval()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_parts, tmp_path_factory):
    """A verified opset-23 bundle of tiny with two layouts."""
    model, codec = tiny_parts
    layouts = (Layout.for_model(model.config, 3, 2, 4, 4), Layout.for_model(model.config, 2, 3, 4, 6))
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_bundle(model, codec, out, ExportConfig(layouts=layouts, sampler=SAMPLER))
    return out
