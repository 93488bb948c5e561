"""Calibration sets: deterministic, cached with a manifest, spread over the schedule."""

import json

import pytest
import torch

from tests.conftest import random_model
from vgpt.calibration.data import CalibrationConfig, CalibrationError, build_calibration, recorded_steps
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.layout import Layout
from vgpt.sampler import SamplerConfig
from vgpt.synthetic import SceneConfig, write_dataset
from vgpt.video import VideoError

SAMPLER = SamplerConfig(steps=6, guidance=2.0)


@pytest.fixture(scope="module")
def parts():
    model = random_model(get_preset("tiny"))
    torch.manual_seed(0)
    return model, LightCodec().eval(), Layout.from_pixels(model.config, 3, 2, 32, 32)


def test_recorded_steps_cover_the_schedule():
    assert recorded_steps(50, 8) == [0, 7, 14, 21, 28, 35, 42, 49]
    assert recorded_steps(4, 8) == [0, 1, 2, 3]
    assert recorded_steps(50, 1) == [0]


def test_calibration_set_is_deterministic_and_cached(parts, tmp_path):
    model, codec, layout = parts
    config = CalibrationConfig(count=3, levels=3)
    a = build_calibration(model, codec, layout, SAMPLER, config, tmp_path / "a")
    b = build_calibration(model, codec, layout, SAMPLER, config, tmp_path / "b")
    assert torch.equal(a.history, b.history) and torch.equal(a.z, b.z)
    assert a.history.shape == (3, 3, 4, 4, 4) and a.z.shape == (3, 3, 2, 4, 4, 4)
    assert a.steps.tolist() == [0, 2, 5]
    # Levels are points of one trajectory: the last one is much closer to the clean prediction than noise.
    assert not torch.equal(a.z[:, 0], a.z[:, 2])
    (folder,) = (tmp_path / "a").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["clips"] == 3 and manifest["source"] == "synthetic seeds 3000000..3000002"
    # Reused, not rebuilt: a changed data file would show up in the reload.
    again = build_calibration(model, codec, layout, SAMPLER, config, tmp_path / "a")
    assert torch.equal(again.z, a.z)
    # Another seed is another set, in its own folder.
    other = build_calibration(
        model, codec, layout, SAMPLER, CalibrationConfig(count=3, levels=3, seed=1), tmp_path / "a"
    )
    assert not torch.equal(other.z, a.z) and len(list((tmp_path / "a").iterdir())) == 2
    samples = list(a.samples())
    assert len(samples) == 3 and samples[0][0].shape == (1, 3, 4, 4, 4) and samples[0][1][2][1].tolist() == [5]


def test_calibration_from_videos_and_bad_inputs(parts, tmp_path):
    model, codec, layout = parts
    write_dataset(tmp_path / "v", [1, 2], SceneConfig(height=40, width=40, frames=6))
    calib = build_calibration(model, codec, layout, SAMPLER, CalibrationConfig(count=3, levels=2,
                              videos=str(tmp_path / "v")), tmp_path / "c")  # fmt: skip
    assert calib.history.shape[0] == 3
    write_dataset(tmp_path / "short", [3], SceneConfig(height=40, width=40, frames=2))
    with pytest.raises(CalibrationError, match="at least 3"):
        build_calibration(model, codec, layout, SAMPLER, CalibrationConfig(count=1, videos=str(tmp_path / "short")),
                          tmp_path / "c")  # fmt: skip
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no videos found"):
        build_calibration(model, codec, layout, SAMPLER, CalibrationConfig(videos=str(tmp_path / "empty")), tmp_path)
    with pytest.raises(CalibrationError, match="count"):
        CalibrationConfig(count=0)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "{broken", "[]"])
def test_a_damaged_cached_calibration_manifest_is_recorded_again(parts, tmp_path, text):
    """A cached manifest nested 100,000 deep was a RecursionError on every run; now it is replaced."""
    model, codec, layout = parts
    config = CalibrationConfig(count=2, levels=2)
    first = build_calibration(model, codec, layout, SAMPLER, config, tmp_path)
    (folder,) = tmp_path.iterdir()
    (folder / "manifest.json").write_text(text)
    again = build_calibration(model, codec, layout, SAMPLER, config, tmp_path)
    assert torch.equal(again.z, first.z) and json.loads((folder / "manifest.json").read_text())["clips"] == 2
