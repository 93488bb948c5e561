import pytest
import torch

from vgpt.codecs import LightCodec
from vgpt.synthetic import SceneConfig, write_dataset
from vgpt.training.config import TrainConfig
from vgpt.training.data import DataConfig

pytest.importorskip("av")
pytest.importorskip("cv2")


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """Twelve short synthetic videos of 32 x 32 px."""
    root = tmp_path_factory.mktemp("videos")
    write_dataset(root, range(12), SceneConfig(height=32, width=32, frames=10))
    return root


@pytest.fixture(scope="session")
def codec_dir(tmp_path_factory):
    torch.manual_seed(0)
    return LightCodec().eval().save(tmp_path_factory.mktemp("codec") / "codec")


@pytest.fixture
def tiny_train_config(videos, codec_dir, tmp_path):
    return TrainConfig(
        data=DataConfig(source=str(videos), num_frames=4, height=32, width=32, seed=3),
        out_dir=str(tmp_path / "run"),
        preset="tiny",
        codec=str(codec_dir),
        lr=3e-3,
        warmup_steps=2,
        steps=6,
        batch_size=2,
        log_every=2,
        checkpoint_every=3,
        progress=False,
    )
