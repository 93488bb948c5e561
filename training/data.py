"""Training data from real video files and ROS 2 bags (an image topic sampled at a frame rate: vgpt.recordings).

`VideoClipDataset` samples n frames at a fixed or random stride from a random start, brought to one
frame size (resize to cover, centre crop). Every random draw of a sample comes from (seed, sample
code), so the data are the same whatever the worker count, and a run resumes at an exact position.
Unusable videos (undecodable, too short, too small, extreme aspect; a bag: no image topic) are rejected up front with a
logged reason and a count; a video that fails later is replaced by the next one, never a crash.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch.utils.data import Dataset, Sampler

from vgpt.atomic import atomic_file
from vgpt.bag import AmbiguousTopicError, TopicError
from vgpt.codecs.base import LatentCodec
from vgpt.config import ConfigError
from vgpt.frames import fit_frames
from vgpt.recordings import list_recordings, probe_recording, read_recording, recording_key
from vgpt.video import VideoError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    source: str  # folder, glob pattern, or a text file listing videos (or bags)
    topic: str | None = None  # bags: the image topic (None: each bag's only image topic)
    fps: float | None = None  # bags: frames per second sampled from the stamps (None: the bundled model's)
    num_frames: int = 8  # n frames per sample
    stride: tuple[int, int] = (1, 1)  # frame stride drawn uniformly from [lo, hi]
    height: int = 64
    width: int = 64
    min_side: int = 32  # reject videos whose shorter side is below this (px)
    max_aspect: float = 4.0  # reject videos wider or taller than this ratio
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stride", tuple(self.stride))
        lo, hi = self.stride
        if not 1 <= lo <= hi:
            raise ValueError(f"DataConfig.stride={self.stride}: need 1 <= lo <= hi")
        if self.num_frames < 1:
            raise ValueError(f"DataConfig.num_frames={self.num_frames}: must be positive")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"DataConfig.fps={self.fps}: must be positive")


@dataclass(frozen=True)
class Rejections:
    reasons: dict[str, int]
    total: int

    def __str__(self) -> str:
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(self.reasons.items()))
        return f"{sum(self.reasons.values())} of {self.total} videos rejected ({parts or 'none'})"


class VideoClipDataset(Dataset):
    """Item `code` (from `StreamSampler`) -> float frames [n, 3, H, W] in [-1, 1]."""

    def __init__(self, config: DataConfig, latent_cache: LatentCache | None = None) -> None:
        self.config = config
        self.cache = latent_cache
        self.videos: list[Path] = []
        self.lengths: list[int] = []
        counts: collections.Counter[str] = collections.Counter()
        paths = list_recordings(config.source)
        for path in paths:
            reason = self._reject_reason(path)
            if reason is None:
                continue
            counts[reason] += 1
            log.warning("rejected %s: %s", path, reason)
        self.rejections = Rejections(dict(counts), len(paths))
        if not self.videos:
            raise VideoError(f"{config.source}: no usable video; {self.rejections}")
        if counts:
            log.info("%s", self.rejections)

    def _reject_reason(self, path: Path) -> str | None:
        c = self.config
        try:
            info = probe_recording(path, c.topic, c.fps)
        except AmbiguousTopicError:
            raise  # not the bag's fault: --topic is missing
        except TopicError as err:
            log.warning("%s", err)
            return "no image topic"
        except VideoError as err:
            log.warning("%s", err)
            return "undecodable"
        if info.frames < c.num_frames:
            return "too short"
        if min(info.height, info.width) < c.min_side:
            return "too small"
        if max(info.height, info.width) / min(info.height, info.width) > c.max_aspect:
            return "extreme aspect"
        self.videos.append(path)
        self.lengths.append(info.frames)
        return None

    def __len__(self) -> int:
        return len(self.videos)

    def window(self, code: int) -> tuple[int, list[int]]:
        """(video index, frame indices) of sample `code`: its stride and start from (seed, code)."""
        c = self.config
        video = code % len(self.videos)
        rng = np.random.default_rng([c.seed, code])
        stride = int(rng.integers(c.stride[0], c.stride[1] + 1))
        frames = self.lengths[video]
        stride = min(stride, max(1, (frames - 1) // max(1, c.num_frames - 1)))  # fit short videos
        span = (c.num_frames - 1) * stride + 1
        start = int(rng.integers(0, frames - span + 1))
        return video, list(range(start, start + span, stride))

    def __getitem__(self, code: int) -> torch.Tensor:
        for attempt in range(len(self.videos)):
            video, indices = self.window(code + attempt)
            try:
                if self.cache is not None:
                    return self.cache.latents(self.videos[video])[indices]
                frames = read_recording(self.videos[video], indices, self.config.topic, self.config.fps)
                return fit_frames(frames, self.config.height, self.config.width)  # [n, 3, H, W]
            except VideoError as err:
                log.warning("skipping %s: %s", self.videos[video], err)
        raise VideoError("every video failed to decode")


class StreamSampler(Sampler[int]):
    """An endless, resumable, distributed stream of sample codes.

    Global draw g (rank r takes g = j * world + r) falls in epoch e = g // N, which visits the N videos
    in a permutation seeded by (seed, e); the code is e * N + video. `start` skips draws already
    consumed, so a resumed run sees exactly the samples the uninterrupted run would.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0) -> None:
        self.size, self.seed, self.rank, self.world, self.start = size, seed, rank, world, start

    def _perm(self, epoch: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        j = self.start
        epoch, perm = -1, []
        while True:
            g = j * self.world + self.rank
            if g // self.size != epoch:
                epoch = g // self.size
                perm = self._perm(epoch)
            yield epoch * self.size + perm[g % self.size]
            j += 1


def recorded_codec(root: str | Path | None) -> str | None:
    """The codec id a filled latent cache was made with (None: no cache there yet)."""
    manifest = None if root is None else Path(root) / "manifest.json"
    if manifest is None or not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("codec")


class LatentCache:
    """Latents of every frame of every video, encoded once, with a manifest naming the codec and the
    preprocessing; a cache made with another codec or frame size is refused."""

    def __init__(self, root: str | Path, codec: LatentCodec | None, codec_id: str | None, data: DataConfig) -> None:
        """`codec_id` None (no codec: a run over latents already cached) takes the codec the cache records."""
        self.root = Path(root)
        self.codec = codec
        recorded = recorded_codec(self.root)
        self.key = {"codec": recorded if codec_id is None else codec_id, "height": data.height, "width": data.width,
                    "preprocessing": "fit_frames"}  # fmt: skip
        self.topic, self.fps = data.topic, data.fps
        manifest = self.root / "manifest.json"
        if manifest.is_file():
            found = json.loads(manifest.read_text())
            if found != self.key:
                changed = ", ".join(
                    f"{k} {found.get(k)!r} (now {v!r})" for k, v in self.key.items() if found.get(k) != v
                )
                raise ConfigError(
                    f"the latent cache {self.root} was made with another {changed}: train with the codec and "
                    "frame size it was made with (--codec), delete the folder, or set another latent_cache in "
                    "the config"
                )
        self._memory: dict[Path, torch.Tensor] = {}

    def _file(self, video: Path) -> Path:
        digest = hashlib.sha256(recording_key(video, self.topic, self.fps).encode()).hexdigest()[:16]
        return self.root / f"{video.stem}-{digest}.safetensors"

    def latents(self, video: Path) -> torch.Tensor:
        """[F, C, h, w] latents of every frame of `video`, encoding on first use."""
        if video in self._memory:
            return self._memory[video]
        file = self._file(video)
        if file.is_file():
            lat = load_file(str(file))["latents"]
        else:
            if self.codec is None:
                raise VideoError(f"{video} is not in the latent cache {self.root} and no codec was given")
            frames = fit_frames(
                read_recording(video, None, self.topic, self.fps), self.key["height"], self.key["width"]
            )
            with torch.no_grad():
                lat = torch.cat([self.codec.encode(frames[i : i + 32]) for i in range(0, len(frames), 32)])
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "manifest.json").write_text(json.dumps(self.key, indent=2))
            with atomic_file(file) as f:
                f.write(save({"latents": lat.contiguous()}))
        self._memory[video] = lat
        return lat
