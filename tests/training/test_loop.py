import itertools
import json

import pytest
import torch

from vgpt.checkpoint import CheckpointError, load_checkpoint
from vgpt.config import ConfigError
from vgpt.training.checkpointing import find_resume
from vgpt.training.config import TrainConfig, load_train_config
from vgpt.training.loop import train


def _weights(path):
    return load_checkpoint(path / "model").model.state_dict()


def test_short_tiny_training_learns(tiny_train_config):
    """Twenty steps of tiny on generated videos: the loss falls well below its start."""
    config = tiny_train_config.replace(steps=20, log_every=1, checkpoint_every=20, lr=1e-2)
    last = train(config)
    assert last.name == "step-0000020"
    trainer = torch.load(last / "trainer.pt", weights_only=True)
    assert trainer["step"] == 20 and trainer["data_position"] == 20 * 2  # samples: steps x batch
    manifest = json.loads((last / "model" / "manifest.json").read_text())
    assert manifest["extra"]["step"] == 20
    assert manifest["extra"]["train_config"]["preset"] == "tiny"


def test_losses_fall(tiny_train_config, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="vgpt.training.loop"):
        train(tiny_train_config.replace(steps=30, log_every=1, checkpoint_every=30, lr=1e-2))
    losses = [float(r.getMessage().split("loss ")[1].split()[0]) for r in caplog.records if " loss " in r.getMessage()]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_resume_continues_exactly(tiny_train_config, tmp_path):
    straight = train(tiny_train_config.replace(out_dir=str(tmp_path / "a"), grad_accum=2))
    # The same run, stopped after the checkpoint at step 3 and resumed from it.
    first = tiny_train_config.replace(out_dir=str(tmp_path / "b"), grad_accum=2, steps=3)
    train(first)
    resumed = train(first.replace(steps=6, resume="auto"))
    assert resumed.name == straight.name == "step-0000006"
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), "resume reproduces the uninterrupted run bit for bit"
    checkpoints = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert checkpoints == ["latest", "step-0000003", "step-0000006"]


def test_resume_errors(tiny_train_config, tmp_path):
    with pytest.raises(CheckpointError, match="is not a training checkpoint"):
        find_resume(str(tmp_path), tmp_path)
    assert find_resume("auto", tmp_path / "fresh") is None


def test_a_fresh_run_into_a_folder_holding_a_run_is_refused_and_leaves_it_whole(tiny_train_config, tmp_path):
    """A second vgpt-train into the same --out without --resume would overwrite the run's checkpoints as
    it saved its own: it is refused before anything is written, naming both ways on."""
    first = train(tiny_train_config.replace(steps=3))
    before = {p: p.read_bytes() for p in first.parent.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match=r"already holds a run .*step-0000003.*--resume auto.*another --out"):
        train(tiny_train_config.replace(steps=6))
    assert {p: p.read_bytes() for p in first.parent.rglob("*") if p.is_file()} == before
    assert train(tiny_train_config.replace(steps=6, resume="auto")).name == "step-0000006"


def test_shipped_stage_configs_load():
    for name in ("stage1", "stage2", "stage3", "stage4"):
        config = load_train_config(name)
        assert isinstance(config, TrainConfig) and config.lr in (1e-4, 2e-5)
    assert load_train_config("stage1").partition == "per_frame"
    assert load_train_config("stage3").data.stride == (4, 12)
    assert load_train_config("stage4").data.num_frames == 80
    assert load_train_config("stage2").init == "runs/stage1"
    assert load_train_config("stage2", **{"data.source": "x", "steps": 5}).steps == 5
    # The bundled default's three stages chain: each starts from the one before and reads its latents.
    a, b, c, d = (load_train_config(n) for n in ("bundled", "bundled-finetune", "bundled-refine", "bundled-layout"))
    assert b.init == a.out_dir and c.init == b.out_dir and c.ema_decay > 0 and c.lr < b.lr
    assert c.latent_cache_dir.resolve() == b.latent_cache_dir.resolve() and c.data.source == b.data.source
    # Stage D trains at the bundled layout (4 observed frames, a clip of 4): defaults.json's.
    assert d.init == c.out_dir and d.partition == (4, 4)
    assert d.latent_cache_dir.resolve() == b.latent_cache_dir.resolve()
    with pytest.raises(ConfigError, match=r"partition=\[4, 3\]: fixed clip sizes need .* data.num_frames=8"):
        load_train_config("bundled-layout", partition=[4, 3])
    with pytest.raises(ConfigError, match="'random', 'per_frame' or a list of clip sizes"):
        load_train_config("bundled-layout", partition="per_clip")


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    from vgpt.training.loop import lr_factor

    config = TrainConfig(data={"source": "x"}, warmup_steps=10, steps=110, lr_schedule="cosine", min_lr_ratio=0.1)
    factors = [lr_factor(step, config) for step in range(110)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)  # linear warm-up
    assert factors[59] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert factors[109] == pytest.approx(0.1)  # the floor at the last step
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))  # never rises after warm-up
    constant = config.replace(lr_schedule="constant")
    assert [lr_factor(s, constant) for s in (9, 50, 109)] == [1.0, 1.0, 1.0]


def test_weight_average_is_saved_beside_the_model_and_resumes_exactly(tiny_train_config, tmp_path):
    # Constant after warm-up: a cosine schedule's shape depends on `steps`, which the stop-and-resume
    # below changes from 3 to 6.
    config = tiny_train_config.replace(ema_decay=0.5)
    straight = train(config.replace(out_dir=str(tmp_path / "a")))
    first = config.replace(out_dir=str(tmp_path / "b"), steps=3)
    train(first)
    resumed = train(first.replace(steps=6, resume="auto"))
    ema_a = load_checkpoint(straight / "ema").model.state_dict()
    ema_b = load_checkpoint(resumed / "ema").model.state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a), "the average resumes bit for bit"
    raw = _weights(straight)
    assert any(not torch.equal(raw[k], ema_a[k]) for k in raw), "the average is not the last weights"
    # A run or checkpoint folder names its averaged weights: that is what gets evaluated and shipped.
    from vgpt.checkpoint import weights_dir

    assert weights_dir(tmp_path / "a") == straight / "ema"
    assert weights_dir(straight) == straight / "ema"


def test_resuming_without_the_average_it_was_trained_with_is_refused(tiny_train_config, tmp_path):
    train(tiny_train_config.replace(steps=3))
    with pytest.raises(CheckpointError, match="has no weight average"):
        train(tiny_train_config.replace(steps=6, resume="auto", ema_decay=0.9))


def test_latent_cache_goes_under_the_run_folder(tiny_train_config, tmp_path):
    config = tiny_train_config.replace(latent_cache="latents", steps=1, checkpoint_every=1)
    train(config)
    assert any((tmp_path / "run" / "latents").iterdir())
    assert not (tmp_path / "latents").exists()


def test_a_tiny_gpdit_trains(tiny_train_config, caplog):
    """The same objective machinery on GPDiT's lightweight mask and rotation: the loss falls as Video-GPT's."""
    import logging

    with caplog.at_level(logging.INFO, logger="vgpt.training.loop"):
        last = train(
            tiny_train_config.replace(preset="gpdit-tiny", steps=30, log_every=1, checkpoint_every=30, lr=1e-2)
        )
    losses = [float(r.getMessage().split("loss ")[1].split()[0]) for r in caplog.records if " loss " in r.getMessage()]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    model = load_checkpoint(last / "model").model
    assert (model.config.family, model.config.attention_mask, model.config.time_conditioning) == (
        "gpdit", "lightweight", "rotation")  # fmt: skip


@pytest.mark.parametrize("partition", ["random", (2, 2)])
def test_a_tiny_gpdit_saves_resumes_exactly_and_loads(tiny_train_config, tmp_path, partition):
    from vgpt.predictors import CachedPredictor, RollingPredictor
    from vgpt.sampler import SamplerConfig

    config = tiny_train_config.replace(preset="gpdit-tiny", ema_decay=0.5, partition=partition)
    straight = train(config.replace(out_dir=str(tmp_path / "a")))
    first = config.replace(out_dir=str(tmp_path / "b"), steps=3)
    train(first)
    resumed = train(first.replace(steps=6, resume="auto"))
    for sub in ("model", "ema"):
        a = load_checkpoint(straight / sub).model.state_dict()
        b = load_checkpoint(resumed / sub).model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{sub}: resume reproduces the uninterrupted run bit for bit"
    loaded = load_checkpoint(tmp_path / "a").model  # the run folder: its latest checkpoint's averaged weights
    assert loaded.config == config.model_config()
    assert not any(k.startswith(("time_token.", "t_embedder.")) for k in loaded.state_dict())  # no time parameters
    # The loaded model predicts, and its exact rolling window agrees with the KV cache (fp32 round-off).
    history = torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    sampler = SamplerConfig(steps=2)
    cached = CachedPredictor(loaded, sampler, window=3).predict(history, 2, 1, torch.Generator().manual_seed(1))
    rolling = RollingPredictor(loaded, sampler, window=3).predict(history, 2, 1, torch.Generator().manual_seed(1))
    assert cached.isfinite().all()
    torch.testing.assert_close(rolling, cached, atol=1e-4, rtol=0)


def test_model_changes_apply_to_a_fresh_preset_only(tiny_train_config):
    config = tiny_train_config.replace(preset="gpdit-tiny", model={"attention_mask": "vanilla"})
    assert config.model_config().attention_mask == "vanilla"
    assert config.model_config().rope_factor_policy == "long"
    with pytest.raises(ConfigError, match=r"attention_mask='causal': family='gpdit' allows"):
        tiny_train_config.replace(preset="gpdit-tiny", model={"attention_mask": "causal"})
    with pytest.raises(ConfigError, match=r"ModelConfig: unknown fields \['mask'\]"):
        tiny_train_config.replace(model={"mask": "vanilla"})
    with pytest.raises(ConfigError, match=r"keeps the checkpoint's config \(drop one of the two\)"):
        tiny_train_config.replace(init="runs/x", model={"attention_mask": "vanilla"})


def test_the_shipped_gpdit_stage_trains_the_bundled_size():
    config = load_train_config("gpdit-bundled")
    model = config.model_config()
    assert (model.family, model.attention_mask, model.time_conditioning) == ("gpdit", "lightweight", "rotation")
    bundled = load_train_config("bundled")
    assert model.hidden_size == bundled.model_config().hidden_size
    assert config.data.num_frames == bundled.data.num_frames and config.ema_decay > 0
    # The shipped GPDiT model is what this stage trains: 6000 steps of 8 samples, 40% of the steps of the
    # Video-GPT default's four stages and about as much CPU time (docs/gpdit.md section 9 says why).
    from vgpt.default_model import default_model

    manifest = json.loads((default_model().model_path("gpdit") / "manifest.json").read_text())
    shipped = manifest["extra"]["train_config"]
    assert {k: shipped[k] for k in ("preset", "steps", "batch_size", "lr", "lr_schedule", "partition")} == {
        "preset": config.preset, "steps": config.steps, "batch_size": config.batch_size, "lr": config.lr,
        "lr_schedule": config.lr_schedule, "partition": config.partition}  # fmt: skip
    assert manifest["extra"]["step"] == config.steps, "the shipped weights are the average at the last step"


def test_a_truncated_or_foreign_trainer_state_is_refused_on_resume(tiny_train_config, tmp_path):
    import io

    last = train(tiny_train_config.replace(steps=3))
    trainer = last / "trainer.pt"
    good = trainer.read_bytes()
    state = torch.load(io.BytesIO(good), weights_only=True)
    resume = tiny_train_config.replace(steps=6, resume="auto")
    for data in (good[: len(good) // 2], b"\x00garbage" * 100):  # truncated; not a torch file
        trainer.write_bytes(data)
        with pytest.raises(CheckpointError, match=r"trainer\.pt cannot be loaded .*resume from an earlier"):
            train(resume)
    for hostile, message in (([1, 2], "holds a list"), ({"step": 3}, "lacks or has malformed optimizer"),
                             ({**state, "step": "3"}, "malformed step")):  # fmt: skip
        torch.save(hostile, trainer)
        with pytest.raises(CheckpointError, match=message):
            train(resume)
    torch.save({**state, "rng": {"torch": torch.zeros(3)}}, trainer)  # the right keys, foreign contents
    with pytest.raises(CheckpointError, match="does not fit this model and optimizer"):
        train(resume)


def test_the_next_run_removes_the_checkpoint_temporaries_of_a_killed_one(tiny_train_config, tmp_path):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid is no longer running: as a run killed mid-checkpoint
    root = tmp_path / "run" / "checkpoints"
    (root / f".step-0000003.{child.pid}-abcdefgh.tmp" / "model").mkdir(parents=True)
    (root / f".latest.{child.pid}-abcdefgh.tmp").write_text("step-0000003\n")
    train(tiny_train_config.replace(steps=3))
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-0000003"]
