import math

import pytest

from vgpt.config import PRESETS, ConfigError, ModelConfig, get_preset


def test_presets_are_valid_and_sized_as_promised():
    gpdit = {"gpdit-tiny", "gpdit-small", "gpdit-b", "gpdit-h"}
    assert set(PRESETS) == {"tiny", "small", "medium", "videogpt-3.8b"} | gpdit
    tiny = get_preset("tiny")
    assert tiny.num_hidden_layers > 1 and tiny.num_attention_heads > 1
    assert len(tiny.rope_long_factor) == tiny.head_dim // 2 and len(set(tiny.rope_long_factor)) > 1
    assert tiny.num_parameters() < 100_000
    assert 1e6 < get_preset("small").num_parameters() < 1e7  # "a few million"
    assert get_preset("medium").num_parameters() * 4 > 2 * 2**30  # over 2 GiB of fp32: ONNX external data
    released = get_preset("videogpt-3.8b")
    assert abs(released.num_parameters() / 1e9 - 3.76) < 0.01
    assert (released.hidden_size, released.num_hidden_layers, released.head_dim) == (3072, 32, 96)
    assert len(released.rope_long_factor) == 48


def test_longrope_attention_factor_of_the_released_model():
    # sqrt(1 + ln(131072 / 4096) / ln(4096)), "about 1.19" in the reference.
    expected = math.sqrt(1 + math.log(32) / math.log(4096))
    assert get_preset("videogpt-3.8b").rope_attention_factor == pytest.approx(expected)
    assert expected == pytest.approx(1.1902, abs=1e-4)


def test_config_round_trips_through_json():
    c = get_preset("tiny")
    assert ModelConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hidden_size": 30}, "hidden_size=30 is not divisible by num_attention_heads=4"),
        ({"num_key_value_heads": 3}, "num_key_value_heads=3 must divide num_attention_heads=4"),
        ({"rope_long_factor": (1.0, 2.0)}, "rope_long_factor has 2 values; head_dim=8 needs 4"),
        ({"rope_factor_policy": "auto"}, "rope_factor_policy='auto'"),
        ({"num_hidden_layers": 0}, "num_hidden_layers=0: must be a positive integer"),
        ({"image_end_token_id": 13}, "must be distinct"),
    ],
)
def test_config_errors_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        get_preset("tiny").replace(**changes)


def test_unknown_preset_and_fields():
    with pytest.raises(ConfigError, match="unknown preset 'huge'; choose one of"):
        get_preset("huge")
    with pytest.raises(ConfigError, match=r"unknown fields \['colour'\]"):
        ModelConfig.from_dict({**get_preset("tiny").to_dict(), "colour": 1})


def test_gpdit_presets_name_the_family_and_the_papers_shapes():
    for name in ("gpdit-tiny", "gpdit-small", "gpdit-b", "gpdit-h"):
        c = get_preset(name)
        assert (c.family, c.attention_mask, c.time_conditioning) == ("gpdit", "lightweight", "rotation")
    small, bundled = get_preset("gpdit-small"), get_preset("small")
    shape = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    assert all(getattr(small, f) == getattr(bundled, f) for f in shape)  # the bundled model's size
    # gpdit-reference.md section 5: layers, hidden, MLP, heads.
    b, h = get_preset("gpdit-b"), get_preset("gpdit-h")
    assert (b.num_hidden_layers, b.hidden_size, b.intermediate_size, b.num_attention_heads) == (12, 768, 3072, 12)
    assert (h.num_hidden_layers, h.hidden_size, h.intermediate_size, h.num_attention_heads) == (24, 2816, 11264, 22)
    # Our gated (Phi-3) MLP has three matrices where the paper's has two: 113M and 3.05B, not 80-85M and 2B.
    assert abs(b.num_parameters() / 1e6 - 113.3) < 0.1 and abs(h.num_parameters() / 1e9 - 3.05) < 0.01
    assert ModelConfig.from_dict(b.to_dict()) == b


def test_a_config_saved_before_the_family_fields_loads_as_video_gpt():
    data = get_preset("tiny").to_dict()
    for name in ("family", "attention_mask", "time_conditioning"):
        del data[name]
    assert ModelConfig.from_dict(data) == get_preset("tiny")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"family": "dit"}, r"ModelConfig.family='dit': choose one of \['gpdit', 'videogpt'\]"),
        ({"attention_mask": "lightweight"},
         r"attention_mask='lightweight': family='videogpt' allows \['hierarchical'\]; 'lightweight' belongs to "
         r"family='gpdit'"),
        ({"time_conditioning": "rotation"}, r"time_conditioning='rotation': family='videogpt' allows \['time_token'\]"),
        ({"family": "gpdit"},
         r"attention_mask='hierarchical': family='gpdit' allows \['lightweight', 'vanilla'\]; 'hierarchical' belongs "
         r"to family='videogpt'"),
        ({"family": "gpdit", "attention_mask": "causal"}, r"attention_mask='causal': family='gpdit' allows"),
        ({"family": "gpdit", "attention_mask": "vanilla", "time_conditioning": "adaln"},
         r"time_conditioning='adaln': family='gpdit' allows \['rotation', 'time_token'\]"),
    ],
)  # fmt: skip
def test_family_options_are_checked(changes, message):
    with pytest.raises(ConfigError, match=message):
        get_preset("tiny").replace(**changes)
