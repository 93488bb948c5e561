import pytest

from vgpt.config import get_preset
from vgpt.export.registry import GRAPHS, graph_specs
from vgpt.export.spec import (
    APPEND,
    DECODER,
    DENOISE,
    ENCODER,
    FRAME,
    PREFILL,
    RING,
    GraphSpec,
    TensorSpec,
    kv_cache_shape,
    layout_name,
)
from vgpt.layout import Layout


@pytest.fixture
def layout():
    return Layout.for_model(get_preset("tiny"), 3, 2, 4, 6)


def test_the_kv_cache_is_one_buffer_prefill_writes_and_denoise_and_append_read(layout):
    c = get_preset("tiny")
    specs = graph_specs(c, layout, "float16")
    assert set(specs) == set(GRAPHS) - {FRAME, RING}  # GPDiT's lightweight mask only: test_gpdit_export.py
    kv = specs[PREFILL].tensor("kv_cache")
    # layers, (k, v), batch 1, KV heads, M frames of (4/2 * 6/2 patches + 2 boundary tokens), head dim
    expected = (c.num_hidden_layers, 2, 1, c.num_key_value_heads, 3 * 8, c.head_dim)
    assert kv.shape == kv_cache_shape(c, layout) == expected
    assert specs[DENOISE].tensor("kv_cache") == kv == specs[APPEND].tensor("kv_cache")
    assert kv.dtype == "float16" and specs[APPEND].tensor("kv_next").shape == kv.shape
    # Latents and the sampler's z stay fp32 whatever the model's dtype.
    assert {specs[DENOISE].tensor(n).dtype for n in ("z", "z_next")} == {"float32"}
    assert specs[ENCODER].tensor("frames").shape == (1, 3, 32, 48)
    assert specs[DECODER].tensor("frames").shape == (2, 3, 32, 48)


def test_specs_round_trip_and_name_what_is_missing(layout):
    spec = graph_specs(get_preset("tiny"), layout)[DENOISE]
    assert GraphSpec.from_dict(spec.to_dict()) == spec and spec.file == "denoise.onnx"
    assert TensorSpec("x", (2, 3), "float16").nbytes == 12 and TensorSpec("x", (2, 3), "int64").nbytes == 48
    with pytest.raises(KeyError, match="denoise has no tensor 'kv_next'"):
        spec.tensor("kv_next")
    assert layout_name(layout) == "m3-g2-4x6"
