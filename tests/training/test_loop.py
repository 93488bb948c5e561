import json

import pytest
import torch

from vgpt.checkpoint import CheckpointError, load_checkpoint
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


def test_shipped_stage_configs_load():
    for name in ("stage1", "stage2", "stage3", "stage4"):
        config = load_train_config(name)
        assert isinstance(config, TrainConfig) and config.lr in (1e-4, 2e-5)
    assert load_train_config("stage1").partition == "per_frame"
    assert load_train_config("stage3").data.stride == (4, 12)
    assert load_train_config("stage4").data.num_frames == 80
    assert load_train_config("stage2").init == "runs/stage1"
    assert load_train_config("stage2", **{"data.source": "x", "steps": 5}).steps == 5
