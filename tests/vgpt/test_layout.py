import pytest

from vgpt.config import ConfigError, get_preset
from vgpt.layout import Layout


def test_layout_counts_tokens():
    layout = Layout(56, 24, 22, 40)  # the released inference layout at 176 x 320
    assert layout.grid == (11, 20)
    assert layout.tokens_per_frame == 220 and layout.block == 222
    assert layout.pixel_size == (176, 320)
    assert Layout.from_pixels(get_preset("videogpt-3.8b"), 56, 24, 176, 320) == layout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((8, 4, 7, 8), r"Layout.latent_height=7 is not divisible by the patch size 2; use 6 or 8"),
        ((8, 4, 8, 386), r"Layout.latent_width=386 gives 193 patches, beyond the 192x192 patch grid"),
        ((0, 4, 8, 8), r"Layout.history_frames=0: must be a positive integer"),
    ],
)
def test_layout_errors_name_the_field_and_fix(args, message):
    with pytest.raises(ConfigError, match=message):
        Layout(*args)


def test_layout_for_a_model_uses_its_grid():
    tiny = get_preset("tiny")
    with pytest.raises(ConfigError, match="beyond the 32x32 patch grid"):
        Layout.for_model(tiny, 2, 2, 8, 66)
    with pytest.raises(ConfigError, match="frame width=100 px is not a multiple of 16"):
        Layout.from_pixels(tiny, 2, 2, 64, 100)
