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


def _comparison(teacher_presence, student_presence, teacher_error, student_error, record, num_clips=2):
    """A `vgpt-eval --student` JSON as vgpt.comparison writes it: the teacher, its K-step floor, the student."""
    return {"num_clips": num_clips, "rows": {
        "teacher 50x2": {"network_evaluations": 100, "presence_by_horizon": teacher_presence,
                         "centroid_error_by_horizon": teacher_error},
        "teacher 4x2": {"network_evaluations": 8, "presence_by_horizon": [0.0] * len(teacher_presence),
                        "centroid_error_by_horizon": [9.0] * len(teacher_error)},
        "self-forcing student 4x1": {"network_evaluations": 4, "distilled": record,
                                     "presence_by_horizon": student_presence,
                                     "centroid_error_by_horizon": student_error}}}  # fmt: skip


def test_the_student_is_the_default_only_when_its_figures_meet_the_teachers_at_every_horizon():
    from vgpt.default_model import meets_the_bar

    record = {"distilled_from": "a" * 64, "stage": "self_forcing", "timesteps": [0.0, 0.5, 1.0]}
    teacher = [0.9, 0.7, 0.5], [1.0, 2.0, 3.0]
    assert meets_the_bar(_comparison(teacher[0], [0.9, 0.8, 0.5], teacher[1], [1.0, 1.5, 3.0], record), record,
                         "a" * 64) is None  # fmt: skip
    # the floor row (teacher 4x2) is worse everywhere: the bar is the full teacher's row, not it
    worse_at_3 = meets_the_bar(_comparison(teacher[0], [0.95, 0.8, 0.49], teacher[1], [0.5, 1.0, 2.0], record),
                               record, "a" * 64)  # fmt: skip
    assert "presence_by_horizon at +3: the student's 0.490 against the teacher's 0.500 (teacher 50x2)" == worse_at_3
    off_at_2 = meets_the_bar(_comparison(teacher[0], teacher[0], teacher[1], [1.0, 2.1, 3.0], record), record, "a" * 64)
    assert off_at_2.startswith("centroid_error_by_horizon at +2")
    same = _comparison(teacher[0], teacher[0], teacher[1], teacher[1], record)
    assert meets_the_bar(same, record, "a" * 64) is None  # "at least the teacher's": equal is enough
    assert "distilled from aaaaaaaaaaaa..., not this teacher" in meets_the_bar(same, record, "b" * 64)
    assert "no row of this student" in meets_the_bar(same, {**record, "stage": "consistency"}, "a" * 64)
    one_clip = _comparison(teacher[0], teacher[0], teacher[1], teacher[1], record, num_clips=1)
    assert "at least 2" in meets_the_bar(one_clip, record, "a" * 64)
    none = _comparison(teacher[0], [0.9, None, 0.5], teacher[1], teacher[1], record)
    assert "no figure" in meets_the_bar(none, record, "a" * 64)


def test_the_bundled_choice_reads_the_shipped_students_comparison(tmp_path):
    """`--model` names a bundled model; without it the student is taken once its comparison meets the bar."""
    import json

    from tests.conftest import random_model
    from vgpt.checkpoint import content_hash, save_checkpoint
    from vgpt.default_model import COMPARISON, named_model, resolve_checkpoint
    from vgpt.student import StudentSampler

    model = random_model(get_preset("tiny"))
    save_checkpoint(model, tmp_path / "model")
    (tmp_path / "codec").mkdir()
    (tmp_path / "defaults.json").write_text(json.dumps({"steps": 8, "guidance": 2.0, "shift": 1.5}))
    default = default_model(tmp_path)
    assert default.shipped() == ["teacher"] and default.preferred_model() == "teacher"
    with pytest.raises(ConfigError, match="ships no student"):
        default.model_path("student")
    record = StudentSampler((0.0, 0.5, 1.0), 2.0, 1.5, 8, content_hash(model.state_dict()), "self_forcing")
    save_checkpoint(model, tmp_path / "student", extra={"student": record.to_dict()})
    assert default.preferred_model() == "teacher"  # no comparison recorded
    good = _comparison([0.9, 0.5], [0.9, 0.6], [1.0, 2.0], [1.0, 2.0], record.to_dict())
    (tmp_path / "student" / COMPARISON).write_text(json.dumps(good))
    assert default.preferred_model() == "student"
    assert resolve_checkpoint(tmp_path)[0] == str(tmp_path / "student")
    assert resolve_checkpoint(tmp_path, model="teacher")[0] == str(tmp_path / "model")
    # the student's folder itself takes the layout and codec of the folder it sits in
    assert resolve_checkpoint(tmp_path / "student")[1:] == (str(tmp_path / "codec"), default.defaults)
    bad = _comparison([0.9, 0.5], [0.9, 0.4], [1.0, 2.0], [1.0, 2.0], record.to_dict())
    (tmp_path / "student" / COMPARISON).write_text(json.dumps(bad))
    assert default.preferred_model() == "teacher"
    assert named_model(tmp_path, "student") == str(tmp_path / "student")
    with pytest.raises(ConfigError, match="is not a folder laid out like the bundled one"):
        named_model(tmp_path / "model", "student")
    with pytest.raises(ConfigError, match="is a checkpoint itself"):
        resolve_checkpoint(tmp_path / "model", model="teacher")


def test_the_bundled_default_is_the_teacher_until_a_student_is_shipped():
    default = default_model()
    if "student" not in default.shipped():
        assert default.preferred_model() == "teacher"
    assert resolve_checkpoint_name(default) in default.shipped()


def resolve_checkpoint_name(default):
    from pathlib import Path

    from vgpt.default_model import BUNDLED_MODELS, resolve_checkpoint

    folder = Path(resolve_checkpoint(None)[0]).name
    return next(name for name, sub in BUNDLED_MODELS.items() if sub == folder)


def test_the_bundled_gpdit_model_is_taken_by_name_and_slides_its_window_exactly():
    """The GPDiT model shipped beside the teacher (docs/gpdit.md section 9): its own family at the default's
    layout and codec, taken only by `--model gpdit` (never the default). Its rolling window, slid over 6
    frames, predicts what a fresh exact prefill of the same newest frames predicts."""
    import numpy as np
    import torch

    from vgpt.checkpoint import load_checkpoint
    from vgpt.default_model import resolve_checkpoint
    from vgpt.runtime.predictor import load_predictor
    from vgpt.synthetic import SceneConfig, render_video

    default = default_model()
    assert "gpdit" in default.shipped() and default.preferred_model() != "gpdit"
    config = load_checkpoint(default.model_path("gpdit")).model.config
    assert (config.family, config.attention_mask, config.time_conditioning) == ("gpdit", "lightweight", "rotation")
    assert resolve_checkpoint(None, model="gpdit")[1:] == (str(default.codec_dir), default.defaults)
    frames = render_video(1_000_000, SceneConfig(height=64, width=64, frames=10))
    exact = load_predictor(None, "torch", steps=2, model="gpdit", mode="exact")
    rolling = load_predictor(None, "torch", steps=2, model="gpdit", mode="rolling")
    rolling.observe(frames[:4])
    rolling.predict(1, torch.Generator().manual_seed(0))  # the window filled, then slid by one frame 6 times
    for frame in frames[4:]:
        rolling.observe(frame)
    exact.observe(frames[-4:])
    a = rolling.predict(1, torch.Generator().manual_seed(1), return_latents=True).latents
    b = exact.predict(1, torch.Generator().manual_seed(1), return_latents=True).latents
    # fp32 round-off of the same attention over the window's keys in another order (the ring's slot order)
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
