import logging

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import random_model
from vgpt.checkpoint import load_checkpoint, save_checkpoint
from vgpt.cli.train import distill_main
from vgpt.config import ConfigError, SamplerConfig, get_preset
from vgpt.predictors import CachedPredictor
from vgpt.sampler import schedule
from vgpt.student import StudentSampler, student_indices
from vgpt.training.data import DataConfig
from vgpt.training.distill import (
    Teacher,
    consistency_loss,
    consistency_target,
    distill,
    load_teacher,
    student_record,
    student_rollout,
)
from vgpt.training.distill_config import DistillConfig, load_distill_config


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return save_checkpoint(random_model(get_preset("tiny"), seed=1), tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture
def consistency_config(videos, codec_dir, teacher_dir, tmp_path):
    return DistillConfig(
        data=DataConfig(source=str(videos), num_frames=4, height=32, width=32, seed=3),
        stage="consistency",
        out_dir=str(tmp_path / "s1"),
        teacher=str(teacher_dir),
        codec=str(codec_dir),
        student_steps=2,
        teacher_steps=8,
        guidance=2.0,
        shift=3.0,
        history=2,
        clip=2,
        lr=1e-3,
        steps=4,
        batch_size=2,
        log_every=1,
        checkpoint_every=2,
        progress=False,
    )


def _weights(path):
    return load_checkpoint(path / "model").model.state_dict()


def _equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_consistency_target_by_hand():
    # z = 1 at sigma 0.5 -> 0.75; x-predictions: conditional 0.8, unconditional 0.4; guidance 2.
    # v_c = (0.8 - 1) / 0.5 = -0.4, v_u = (0.4 - 1) / 0.5 = -1.2, v = -1.2 + 2 (-0.4 + 1.2) = 0.4,
    # z_next = 1 + 0.25 * 0.4 = 1.1; the target network here returns 2 z: 2.2.
    z = torch.ones(1, 1, 1, 1, 1)
    branches = (lambda zt, t: torch.full_like(zt, 0.8), lambda zt, t: torch.full_like(zt, 0.4))
    seen = []

    def target(zn, sn):
        seen.append(float(sn))
        return 2 * zn

    aim = consistency_target(z, torch.tensor([0.5]), torch.tensor([0.75]), branches, target, 2.0, "x")
    assert aim.item() == pytest.approx(2.2, abs=1e-6)  # fp32 arithmetic on O(1) values
    assert seen == [0.75], "the target network is asked at the teacher's next level"
    # At sigma_next = 1 the target is the teacher's end point itself: 1 + 0.5 * 0.4 = 1.2.
    aim = consistency_target(z, torch.tensor([0.5]), torch.tensor([1.0]), branches, target, 2.0, "x")
    assert aim.item() == pytest.approx(1.2, abs=1e-6)


def test_student_table_sits_on_the_teachers_levels():
    assert student_indices(50, 4) == [0, 12, 25, 37, 50]
    assert student_indices(50, 1) == [0, 50]
    with pytest.raises(ConfigError, match=r"timesteps .*K = 3 steps, expected one of"):
        StudentSampler((0.0, 0.2, 0.5, 1.0), 2.0, 3.0, 50, "x" * 64, "consistency")
    with pytest.raises(ConfigError, match=r"need steps \+ 1 = 3 rising values from 0\.0 to 1\.0"):
        SamplerConfig(steps=2, timesteps=(0.0, 0.7, 0.5))


def test_student_checkpoint_samples_its_table_with_one_branch(teacher_dir, tmp_path):
    teacher = load_checkpoint(teacher_dir)
    record = student_record(Teacher(teacher.model, SamplerConfig(50, 3.0, 2.0), teacher.weights_sha256, ""), 4,
                            "consistency")  # fmt: skip
    path = save_checkpoint(teacher.model, tmp_path / "student", extra={"student": record.to_dict()})
    loaded = load_checkpoint(path)
    sampler = loaded.sampler(SamplerConfig(steps=50, guidance=2.0, shift=3.0))
    assert sampler.steps == 4 and not sampler.guided
    assert list(sampler.timesteps) == [float(schedule(50, 3.0)[i]) for i in (0, 12, 25, 37, 50)]
    assert load_checkpoint(teacher_dir).sampler(sampler) is sampler, "a teacher keeps the sampler it is given"
    calls = []
    model = loaded.model
    forward = model.forward

    def counting(call, **kw):
        if kw.get("noisy") is not None:
            calls.append((kw.get("cache") is not None, kw["t"][0, 0].item()))
        return forward(call, **kw)

    model.forward = counting
    history = torch.randn(1, 2, 4, 8, 8)
    predicted = CachedPredictor(model, sampler).predict(history, 1, 2, torch.Generator().manual_seed(0))
    assert len(calls) == 4 and all(cond for cond, _ in calls), "K calls, all of the conditional branch"
    assert [t for _, t in calls] == pytest.approx(list(sampler.timesteps[:-1]), abs=0)
    # The same clip by hand: Euler steps of the x-prediction over the table.
    model.forward = forward
    z = torch.randn((1, 2, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    plain = CachedPredictor(model, SamplerConfig(guidance=1.0))
    plain.prepare(history, 1, 2)
    cond, _ = plain.branches(history, 0, 2)
    with torch.no_grad():
        for a, b in zip(sampler.timesteps, sampler.timesteps[1:], strict=False):
            z = z + (b - a) * (cond(z, torch.full((1, 2), a)) - z) / (1 - a)
    assert torch.allclose(predicted, z, atol=1e-5)  # fp32 round-off of a different association order


def test_eval_of_a_student_checkpoint_uses_its_sampler(teacher_dir, codec_dir, tmp_path):
    from vgpt.evaluation import EvalConfig, rollout_checkpoint

    teacher = load_checkpoint(teacher_dir)
    record = student_record(Teacher(teacher.model, SamplerConfig(8, 3.0, 2.0), teacher.weights_sha256, ""), 2,
                            "self_forcing")  # fmt: skip
    path = save_checkpoint(teacher.model, tmp_path / "student", extra={"student": record.to_dict()})
    config = EvalConfig(checkpoint=str(path), codec=str(codec_dir), history=2, clip=2, height=32, width=32,
                        count=1, progress=False)  # fmt: skip
    info = rollout_checkpoint(config).info
    assert (info["steps"], info["guidance"], info["network_evaluations"]) == (2, 1.0, 2)
    assert info["distilled"]["distilled_from"] == teacher.weights_sha256


def test_stage1_resumes_exactly(consistency_config, tmp_path):
    straight = distill(consistency_config.replace(out_dir=str(tmp_path / "a")))
    first = consistency_config.replace(out_dir=str(tmp_path / "b"), steps=2)
    distill(first)
    resumed = distill(first.replace(steps=4, resume="auto"))
    assert resumed.name == straight.name == "step-0000004"
    assert _equal(_weights(straight), _weights(resumed)), "resume reproduces the uninterrupted run bit for bit"
    ta = torch.load(straight / "trainer.pt", weights_only=True)["extra"]["target"]
    tb = torch.load(resumed / "trainer.pt", weights_only=True)["extra"]["target"]
    assert _equal(ta, tb), "and so does the EMA target"
    student = load_checkpoint(resumed)
    assert student.student.steps == 2 and student.student.stage == "consistency"
    assert student.student.distilled_from == load_checkpoint(consistency_config.teacher).weights_sha256


def test_stage2_resumes_exactly(consistency_config, tmp_path):
    stage1 = distill(consistency_config.replace(out_dir=str(tmp_path / "s1"), steps=1))
    config = consistency_config.replace(stage="self_forcing", init=str(stage1), steps=4, lr=1e-3, critic_lr=1e-3)
    straight = distill(config.replace(out_dir=str(tmp_path / "a")))
    first = config.replace(out_dir=str(tmp_path / "b"), steps=2)
    distill(first)
    resumed = distill(first.replace(steps=4, resume="auto"))
    assert _equal(_weights(straight), _weights(resumed))
    assert not _equal(_weights(straight), _weights(stage1)), "stage 2 changed the student"
    ca = torch.load(straight / "trainer.pt", weights_only=True)["extra"]["critic"]
    cb = torch.load(resumed / "trainer.pt", weights_only=True)["extra"]["critic"]
    assert _equal(ca, cb), "and the critic"
    assert load_checkpoint(resumed).student.stage == "self_forcing"
    with pytest.raises(ConfigError, match="is not a consistency distillation checkpoint"):
        distill(consistency_config.replace(out_dir=str(tmp_path / "b"), steps=6, resume="auto"))


def _logged_figure(config: DistillConfig, caplog, name: str) -> list[float]:
    """Run `config` and return the figure `name` of every step's log line."""
    with caplog.at_level(logging.INFO, logger="vgpt.training.distill"):
        distill(config)
    lines = [r.getMessage() for r in caplog.records if f" {name} " in r.getMessage()]
    return [float(line.split(f" {name} ")[1].split()[0]) for line in lines]


def _falls(values: list[float], steps: int, factor: float) -> bool:
    """Whether one figure per step for `steps` steps ends below `factor` times where it began (10-step means)."""
    return len(values) == steps and sum(values[-10:]) < factor * sum(values[:10])


def test_tiny_stage1_lowers_its_loss(consistency_config, caplog):
    config = consistency_config.replace(steps=40, checkpoint_every=40, lr=3e-3, target_decay=0.5)
    assert _falls(_logged_figure(config, caplog, "loss"), 40, 0.5)


def _tiny_teacher(teacher_dir) -> Teacher:
    """The random tiny teacher with an 8-step guided sampler (guidance 2, shift 3)."""
    return Teacher(load_checkpoint(teacher_dir).model, SamplerConfig(8, 3.0, 2.0), "0" * 64, "")


def test_the_ground_truth_term_adds_the_students_error_to_the_true_clip(teacher_dir):
    teacher = _tiny_teacher(teacher_dir)
    model = teacher.model
    latents = torch.randn(2, 4, 4, 8, 8)
    terms = {w: consistency_loss(model, model, teacher, latents, 2, 2, torch.Generator().manual_seed(4), w)
             for w in (0.0, 0.5)}  # fmt: skip
    plain, mixed = terms[0.0], terms[0.5]
    torch.testing.assert_close(plain["loss"], plain["consistency"])
    torch.testing.assert_close(mixed["consistency"], plain["consistency"])  # the same draws
    torch.testing.assert_close(mixed["loss"], mixed["consistency"] + 0.5 * mixed["data"])
    # another quantity than the consistency term: random latents are farther from what a random model
    # predicts (7x here) than its prediction is from its own prediction one teacher step later
    assert mixed["data"] > 2 * mixed["consistency"]


def test_stage1_with_the_ground_truth_term_lowers_it(consistency_config, caplog):
    config = consistency_config.replace(steps=30, checkpoint_every=30, lr=3e-3, data_weight=1.0)
    assert _falls(_logged_figure(config, caplog, "data"), 30, 0.7)


def test_stage2_rollout_fills_the_cache_as_inference_does(teacher_dir):
    teacher = _tiny_teacher(teacher_dir)
    student = teacher.model
    record = student_record(teacher, 2, "self_forcing")
    history = torch.randn(2, 2, 4, 8, 8)
    seen = []

    def keep(rolled):  # the student's cache after each clip, before the next one changes it
        seen.append(rolled)

    rolled = student_rollout(student, record, history, 3, 2, torch.Generator().manual_seed(5), [1, 0, 1], keep)
    reference = CachedPredictor(student, record.sampler(), window=2)
    expected = reference.predict(history, 3, 2, torch.Generator().manual_seed(5))
    got = torch.cat([r.clip for r in rolled], dim=1)
    assert torch.equal(got, expected), "the same clips, bit for bit: the same calls on the same inputs"
    # The history of the last clip is the student's own second clip, and the inference predictor's cache holds
    # exactly it.
    assert torch.equal(rolled[2].history, expected[:, 2:4])
    assert len(seen) == 3 and all(r.estimate.requires_grad for r in rolled)
    check = CachedPredictor(student, record.sampler(), window=2)
    check.prepare(rolled[2].history, 1, 2)
    check.branches(rolled[2].history, 0, 2)
    n = reference.cache.length
    assert n == check.cache.length == 2 * (16 + 2)
    assert torch.equal(reference.cache.k[:, :, :, :n], check.cache.k[:, :, :, :n])


def test_config_errors_are_one_line(consistency_config, tmp_path):
    cases = [
        ({"student_steps": 3}, "student_steps=3: choose one of \\[1, 2, 4\\]"),
        ({"stage": "dmd"}, "stage='dmd': choose one of"),
        ({"history": 4}, "data.num_frames=4: stage consistency reads 6 frames"),
        ({"dmd_sigma": (0.5, 0.2)}, "dmd_sigma=\\[0.5, 0.2\\]: need 0 < low < high < 1"),
        ({"teacher_steps": 1}, "teacher_steps=1: fewer than the student's 2 steps"),
        ({"data_weight": -1.0}, "data_weight=-1.0: a weight >= 0 of stage 1's ground-truth term"),
        ({"data_weight": 0.5, "stage": "self_forcing"}, "stage 2 has no true clip to compare with"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            consistency_config.replace(**change)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="no such config file or shipped distillation stage"):
        load_distill_config(tmp_path / "missing.json")
    result = CliRunner().invoke(distill_main, ["--config", "distill-consistency", "--student-steps", "4",
                                               "--data", "x", "--out", str(tmp_path / "o"), "--teacher",
                                               str(tmp_path / "nowhere")])  # fmt: skip
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "does not exist" in lines[0]


def test_a_student_is_refused_as_teacher(consistency_config, tmp_path):
    stage1 = distill(consistency_config.replace(out_dir=str(tmp_path / "s1"), steps=1))
    with pytest.raises(ConfigError, match="is itself a distilled student"):
        load_teacher(consistency_config.replace(teacher=str(stage1)))
    # A student continues only with its own teacher and its own K.
    other = save_checkpoint(random_model(get_preset("tiny"), seed=7), tmp_path / "other")
    with pytest.raises(ConfigError, match=r"was distilled from weights \w{12}\.\.\., not this teacher's"):
        distill(consistency_config.replace(out_dir=str(tmp_path / "x"), teacher=str(other), init=str(stage1)))
    with pytest.raises(ConfigError, match=r"is a 2-step student at guidance 2\.0; this run makes a 4-step one"):
        distill(consistency_config.replace(out_dir=str(tmp_path / "y"), student_steps=4, init=str(stage1)))
    wide = save_checkpoint(random_model(get_preset("small")), tmp_path / "small")
    with pytest.raises(ConfigError, match="is not the teacher's shape"):
        distill(consistency_config.replace(out_dir=str(tmp_path / "z"), init=str(wide)))


def test_shipped_distillation_stages_chain():
    one, two = load_distill_config("distill-consistency"), load_distill_config("distill-self-forcing")
    assert (one.stage, two.stage) == ("consistency", "self_forcing")
    assert two.init == one.out_dir and one.student_steps == two.student_steps == 4
    assert one.latent_cache_dir.resolve() == two.latent_cache_dir.resolve()
    assert one.teacher is None and two.teacher is None, "the bundled default teaches"


def test_the_bundled_default_teaches_with_its_teacher_even_when_the_student_is_the_default(monkeypatch):
    """With no teacher named, the bundled teacher teaches, never the model the commands take by default (once
    a shipped student meets the bar that is the student, which cannot be a teacher)."""
    from vgpt.checkpoint import recorded_identity
    from vgpt.default_model import DefaultModel, default_model

    monkeypatch.setattr(DefaultModel, "preferred_model", lambda self: "student")
    teacher = load_teacher(load_distill_config("distill-consistency"))
    assert teacher.weights_sha256 == recorded_identity(default_model().model_path("teacher"))[0]
