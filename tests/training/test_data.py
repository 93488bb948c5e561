import itertools
import shutil

import numpy as np
import pytest
import torch

from vgpt.codecs import LightCodec
from vgpt.config import ConfigError
from vgpt.frames import fit_frames
from vgpt.synthetic import SceneConfig, render_video
from vgpt.training.data import DataConfig, LatentCache, StreamSampler, VideoClipDataset
from vgpt.video import VideoError, write_video


def test_rejects_unusable_videos_with_reasons_and_counts(tmp_path, caplog):
    write_video(tmp_path / "good.mp4", render_video(0, SceneConfig(frames=8)))
    write_video(tmp_path / "short.mp4", render_video(1, SceneConfig(frames=3)))
    write_video(tmp_path / "small.mp4", np.zeros((8, 16, 16, 3), np.uint8))
    write_video(tmp_path / "wide.mp4", np.zeros((8, 32, 200, 3), np.uint8))
    (tmp_path / "broken.mp4").write_bytes(b"garbage" * 50)
    dataset = VideoClipDataset(DataConfig(source=str(tmp_path), num_frames=6))
    assert [p.name for p in dataset.videos] == ["good.mp4"]
    assert dataset.rejections.reasons == {"too short": 1, "too small": 1, "extreme aspect": 1, "undecodable": 1}
    assert str(dataset.rejections).startswith("4 of 5 videos rejected")
    assert "rejected" in caplog.text and "broken.mp4: undecodable" in caplog.text
    with pytest.raises(VideoError, match="no usable video; 1 of 1 videos rejected"):
        VideoClipDataset(DataConfig(source=str(tmp_path / "short.mp4"), num_frames=6))


def test_samples_are_deterministic_and_strided(videos):
    dataset = VideoClipDataset(DataConfig(source=str(videos), num_frames=4, stride=(1, 3), height=32, width=32))
    assert torch.equal(dataset[17], dataset[17])
    strides = set()
    for code in range(40):
        _, indices = dataset.window(code)
        assert len(indices) == 4 and indices[-1] < 10
        strides.add(indices[1] - indices[0])
    assert strides == {1, 2, 3}
    assert dataset[5].shape == (4, 3, 32, 32)


def test_stream_sampler_resumes_and_shards():
    full = list(itertools.islice(iter(StreamSampler(5, seed=1)), 23))
    resumed = list(itertools.islice(iter(StreamSampler(5, seed=1, start=9)), 14))
    assert resumed == full[9:]
    # Each epoch visits every video once.
    assert sorted(c % 5 for c in full[:5]) == list(range(5)) and all(c // 5 == 1 for c in full[5:10])
    ranks = [list(itertools.islice(iter(StreamSampler(5, seed=1, rank=r, world=2)), 10)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(full[:20]), "two ranks split the single-process stream"


def test_latent_cache_encodes_once_and_checks_its_manifest(videos, tmp_path):
    codec = LightCodec().eval()
    data = DataConfig(source=str(videos), num_frames=4, height=32, width=32)
    cache = LatentCache(tmp_path / "cache", codec, "codec-a", data)
    dataset = VideoClipDataset(data, cache)
    sample = dataset[3]
    assert sample.shape == (4, 4, 4, 4)  # latents: [n, C, h, w]
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    # A fresh cache object reads the file without a codec.
    again = VideoClipDataset(data, LatentCache(tmp_path / "cache", None, "codec-a", data))
    torch.testing.assert_close(again[3], sample)
    with pytest.raises(ConfigError, match=r"was made with another codec 'codec-a' \(now 'codec-b'\): .*\(--codec\)"):
        LatentCache(tmp_path / "cache", codec, "codec-b", data)
    # No codec id (a run without a codec over cached latents) takes the one the cache records.
    assert LatentCache(tmp_path / "cache", None, None, data).key["codec"] == "codec-a"


def test_bags_are_data_with_the_same_rejection_rules_and_counts(tmp_path, caplog):
    pytest.importorskip("rosbags")
    from tests.bags import storage_file, write_bag

    scene = render_video(0, SceneConfig(frames=8))
    write_bag(tmp_path / "good", scene)  # a bag folder (metadata.yaml and an .mcap): one recording
    single = storage_file(write_bag(tmp_path / "sqlite", scene, storage="sqlite3"))
    single.rename(tmp_path / "loose.db3")  # a bare .db3 file
    shutil.rmtree(single.parent)
    write_bag(tmp_path / "short", scene[:3])
    write_bag(tmp_path / "small", np.zeros((8, 16, 16, 3), np.uint8))
    write_bag(tmp_path / "other_topic", scene, topic="/rear/image_raw")
    cut = storage_file(write_bag(tmp_path / "cut", scene))
    cut.write_bytes(cut.read_bytes()[:300])
    write_video(tmp_path / "video.mp4", scene)
    dataset = VideoClipDataset(DataConfig(source=str(tmp_path), num_frames=6, topic="/camera/image_raw"))
    assert sorted(p.name for p in dataset.videos) == ["good", "loose.db3", "video.mp4"]
    assert dataset.rejections.reasons == {"too short": 1, "too small": 1, "no image topic": 1, "undecodable": 1}
    assert str(dataset.rejections).startswith("4 of 7 videos rejected")
    assert "has no topic /camera/image_raw; its image topics: /rear/image_raw" in caplog.text
    assert "cannot read the bag" in caplog.text and "mcap recover" in caplog.text
    # A bag's sample is its frames (lossless rgb8), fitted like a video's.
    bag = dataset.videos.index(tmp_path / "good")
    code = next(c for c in range(30) if dataset.window(c)[0] == bag)
    _, indices = dataset.window(code)
    assert torch.equal(dataset[code], fit_frames(scene[indices], 64, 64))
    cache = LatentCache(tmp_path / "cache", LightCodec().eval(), "light", dataset.config)
    assert cache.latents(tmp_path / "good").shape == (8, 4, 8, 8)
