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


def test_the_readmes_quantization_table_states_the_bundled_models_settings_and_figures():
    # It stated guidance 1.5 and ratios of weights long replaced (0.671 for fp32 against 0.369).
    import json
    import re
    from pathlib import Path

    from vgpt.default_model import DEFAULT_DIR, SETTINGS

    root = Path(__file__).parents[2]
    settings = json.loads((DEFAULT_DIR / SETTINGS).read_text())
    readme = (root / "README.md").read_text()
    section = readme.split("## Quantization")[1].split("\n## ")[0]
    assert f"{settings['steps']} steps, guidance {settings['guidance']:g}, shift {settings['shift']:g}" in section
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in section.splitlines()
            if line.startswith("| fp32") or line.startswith("| int8")}  # fmt: skip
    assert rows["fp32"] == f"{settings['eval']['ratio']:.4f}"
    int8 = re.search(r"\| INT8 \| ([0-9.]+) ", (root / "docs" / "benchmarks.md").read_text()).group(1)
    assert rows["int8"] == int8
