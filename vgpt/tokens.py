"""The token sequence: which frames, in which order, with which roles and position ids.

Reference: videogpt-reference.md section 4. Every frame occupies `block = N + 2` consecutive tokens:
a clean frame is [<img>, N image tokens, </img>], a noisy frame [<|diffusion|>, time token, N image
tokens]. Position ids count through the clean stream only: a frame at clean-stream index `time`
holds positions time*block ... time*block + block - 1, and a noisy frame takes the positions of the
clean frame it will become.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import torch


class Role(IntEnum):
    """Token roles. Clean frame: B I.. E. Noisy frame: S T X.."""

    IMG_START = 0  # B: <img>
    IMAGE = 1  # I: clean image token
    IMG_END = 2  # E: </img>
    DIFFUSION = 3  # S: <|diffusion|>
    TIME = 4  # T: time token
    NOISY = 5  # X: noisy image token


@dataclass(frozen=True)
class Frame:
    """One frame of a sequence.

    clean: a clean (history/context) frame or a noisy (being denoised) frame.
    clip: index of the clip it belongs to; noisy frames of one clip see each other.
    time: index in the clean stream, which fixes the frame's position ids.
    """

    clean: bool
    clip: int
    time: int


def training_frames(clip_sizes: Sequence[int]) -> list[Frame]:
    """[noisy clip 1, clean clip 1, noisy clip 2, clean clip 2, ..., noisy clip K].

    Each noisy clip holds the same frames, at the same positions, as its clean copy.
    """
    if len(clip_sizes) < 1 or any(f < 1 for f in clip_sizes):
        raise ValueError(f"clip sizes must be positive, got {list(clip_sizes)}")
    frames: list[Frame] = []
    offset = 0
    for k, size in enumerate(clip_sizes):
        frames += [Frame(False, k, offset + i) for i in range(size)]
        if k < len(clip_sizes) - 1:
            frames += [Frame(True, k, offset + i) for i in range(size)]
        offset += size
    return frames


def history_frames(num_frames: int, start: int = 0) -> list[Frame]:
    """Clean frames at clean-stream indices start ... start + num_frames - 1 (clip 0)."""
    return [Frame(True, 0, start + i) for i in range(num_frames)]


def conditional_frames(history: int, clip: int) -> list[Frame]:
    """Inference, conditional branch: M clean history frames, then the G-frame noisy clip."""
    return history_frames(history) + [Frame(False, 1, history + i) for i in range(clip)]


def unconditional_frames(clip: int) -> list[Frame]:
    """Inference, unconditional branch: the noisy clip alone, positions from 0."""
    return [Frame(False, 0, i) for i in range(clip)]


@dataclass(frozen=True)
class TokenSequence:
    """Per-token attributes of a frame sequence, each a [L] tensor (L = len(frames) * block)."""

    frames: tuple[Frame, ...]
    tokens_per_frame: int  # N
    roles: torch.Tensor  # [L] int64 Role values
    clean: torch.Tensor  # [L] bool
    clip: torch.Tensor  # [L] int64
    positions: torch.Tensor  # [L] int64 RoPE position ids

    @property
    def block(self) -> int:
        return self.tokens_per_frame + 2

    def __len__(self) -> int:
        return len(self.frames) * self.block


def build_sequence(frames: Sequence[Frame], tokens_per_frame: int) -> TokenSequence:
    n = tokens_per_frame
    block = n + 2
    clean_roles = [Role.IMG_START] + [Role.IMAGE] * n + [Role.IMG_END]
    noisy_roles = [Role.DIFFUSION, Role.TIME] + [Role.NOISY] * n
    roles, clean, clip, positions = [], [], [], []
    for frame in frames:
        roles += clean_roles if frame.clean else noisy_roles
        clean += [frame.clean] * block
        clip += [frame.clip] * block
        positions += range(frame.time * block, frame.time * block + block)
    return TokenSequence(
        frames=tuple(frames),
        tokens_per_frame=n,
        roles=torch.tensor(roles, dtype=torch.int64),
        clean=torch.tensor(clean, dtype=torch.bool),
        clip=torch.tensor(clip, dtype=torch.int64),
        positions=torch.tensor(positions, dtype=torch.int64),
    )
