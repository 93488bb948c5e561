import numpy as np
import pytest

from tests.vgpt.test_metrics import BACKGROUND, SIZE, _blur, _frame, _scene
from vgpt.metrics import score_objects
from vgpt.misses import CAUSES, NOT_SCORED, PRESENT, miss_causes, summarise_misses

CENTRE = (30.0, 24.0)
GREEN = np.array([0.3, 0.8, 0.25])


def _cause(predicted: np.ndarray, truth: np.ndarray, scene=None, round_trip=None) -> str:
    scene = scene or _scene([CENTRE])
    rt = None if round_trip is None else round_trip[None]
    code = miss_causes(predicted[None], truth[None], scene, 0, rt)[0, 0]
    return {NOT_SCORED: "not scored", PRESENT: "present"}.get(code) or CAUSES[code - 1]


def _block_codec(img: np.ndarray, block: int = 8) -> np.ndarray:
    """A stand-in codec: each block x block tile replaced by its mean, as a latent grid 8x coarser keeps
    only what a tile holds on average."""
    tiles = img.reshape(SIZE // block, block, SIZE // block, block, 3).mean(axis=(1, 3), keepdims=True)
    return np.broadcast_to(tiles, (SIZE // block, block, SIZE // block, block, 3)).reshape(SIZE, SIZE, 3)


def test_each_constructed_miss_gets_its_cause():
    truth = _frame(CENTRE)
    faded = BACKGROUND + 0.5 * (truth - BACKGROUND)  # half-way to the background: the right hue
    cases = {
        "present": truth,
        "colour": _frame(CENTRE, colour=GREEN),  # the right place and size, another hue
        "faded": faded,
        "place": _frame((CENTRE[0] + 15, CENTRE[1])),  # 2.5 radii off: outside the search disc
        "vanished": _frame(),
    }
    for cause, predicted in cases.items():
        assert _cause(predicted, truth) == cause, cause


def test_a_blurred_ball_of_the_right_hue_is_faded():
    truth = _frame(CENTRE)
    blurred = _blur(truth, 6)  # the 13 x 13 box blur under which test_metrics finds the ball absent
    assert not score_objects(blurred[None], truth[None], _scene([CENTRE]), 0).present[0, 0]
    assert _cause(blurred, truth) == "faded"


def test_a_ball_the_codec_misses_is_codec_loss_whatever_the_prediction_shows():
    # A small ball on the corner of four tiles: the stand-in codec spreads it over 256 px, a fifth of
    # the way to its colour at most, and so misses it.
    centre = (32.0, 32.0)
    truth, scene = _frame(centre, radius=4.0), _scene([centre], radius=4.0)
    round_trip = _block_codec(truth)
    assert not score_objects(round_trip[None], truth[None], scene, 0).present[0, 0]
    assert _cause(round_trip, truth, scene, round_trip) == "codec"
    assert _cause(_frame(centre, radius=4.0, colour=GREEN), truth, scene, round_trip) == "codec"
    # Without the round trip the same prediction has vanished (a blend under FAINTEST), and the
    # truth itself is present.
    assert _cause(round_trip, truth, scene) == "vanished"
    assert _cause(truth, truth, scene, round_trip) == "present"


def test_the_ball_shown_elsewhere_comes_before_a_blob_of_another_hue_at_its_place():
    truth = _frame(CENTRE)
    both = _frame(CENTRE, colour=GREEN)
    elsewhere = _frame((CENTRE[0] + 15, CENTRE[1]))
    ball = np.any(elsewhere != BACKGROUND, axis=-1)
    both[ball] = elsewhere[ball]
    assert _cause(both, truth) == "place"


def test_another_balls_true_pixels_are_not_a_blob_of_a_foreign_colour():
    # Ball 1 (green) overlaps ball 0's search disc in the truth and the prediction; ball 0 is gone.
    # Its place leaves ball 1's pixels out, so nothing of a ball's size is left there.
    red, green = _frame(CENTRE), _frame((CENTRE[0] + 9, CENTRE[1]), colour=GREEN)
    one, two = _scene([CENTRE]), _scene([(CENTRE[0] + 9, CENTRE[1])])
    front = two.visible[0, 0]
    truth = red.copy()
    truth[front] = green[front]
    visible = np.stack([one.visible[:, 0] & ~front[None], two.visible[:, 0]], axis=1)  # [F, 2, H, W]
    scene = type(one)(np.concatenate([one.centre, two.centre], axis=1), np.array([6.0, 6.0]),
                      np.stack([one.colour[0], GREEN]), BACKGROUND, None, visible,
                      np.concatenate([one.disc_area, two.disc_area], axis=1))  # fmt: skip
    codes = miss_causes(green[None], truth[None], scene, 0)
    assert codes[0, 1] == PRESENT and CAUSES[codes[0, 0] - 1] == "vanished"


def test_summary_shares_add_up_with_presence():
    truth = _frame(CENTRE)
    predicted = np.stack([truth, _frame(CENTRE, colour=GREEN), _frame(), _frame()])
    scene = _scene([CENTRE] * 4)
    codes = miss_causes(predicted, np.stack([truth] * 4), scene, 0)
    summary = summarise_misses([codes, codes])
    assert summary["counts_by_horizon"]["colour"] == [0, 2, 0, 0]
    assert summary["counts_by_horizon"]["vanished"] == [0, 0, 2, 2]
    assert summary["dominant_by_horizon"] == [None, "colour", "vanished", "vanished"]
    assert summary["dominant"] == "vanished" and summary["missed"] == 6
    assert summary["overall"]["vanished"] == pytest.approx(0.5)
    presence = score_objects(predicted, np.stack([truth] * 4), scene, 0).present.mean(axis=1)
    for j in range(4):
        assert presence[j] + sum(summary["by_horizon"][c][j] for c in CAUSES) == pytest.approx(1.0)
