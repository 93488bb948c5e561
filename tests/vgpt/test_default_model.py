"""The bundled default's settings are read in one place: `Defaults` gives every command its layout and
sampler, options a user gives win, and a malformed defaults.json is one clear error."""

import pytest

from vgpt.config import ConfigError, SamplerConfig, get_preset
from vgpt.default_model import Defaults, default_model
from vgpt.layout import Layout


def test_the_default_model_gives_its_layout_and_sampler():
    default = default_model()
    config = get_preset("small")
    s = default.settings
    assert default.layout(config) == Layout.from_pixels(config, s["history"], s["clip"], s["height"], s["width"])
    assert default.sampler() == SamplerConfig(steps=s["steps"], guidance=s["guidance"], shift=s["shift"])


def test_options_win_over_the_defaults_and_unknown_settings_are_ignored():
    defaults = Defaults.from_settings({"history": 3, "clip": 2, "height": 32, "width": 48, "steps": 7, "eval": {}})
    layout = defaults.layout(get_preset("tiny"), clip=5)
    assert (layout.history_frames, layout.clip_frames, layout.latent_height, layout.latent_width) == (3, 5, 4, 6)
    assert defaults.sampler(guidance=2.0) == SamplerConfig(steps=7, guidance=2.0, shift=1.0)
    assert Defaults().sampler() == SamplerConfig()  # a checkpoint without defaults.json: the sampler's own defaults


def test_a_malformed_setting_names_the_file_and_the_key():
    with pytest.raises(ConfigError, match=r"x/defaults\.json: steps='50' must be an integer"):
        Defaults.from_settings({"steps": "50"}, "x/defaults.json")
