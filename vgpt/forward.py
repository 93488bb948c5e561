"""What one forward call of the model computes: the query frames, their position ids, the mask
rows against the keys (cached prefix + own tokens) and the LongRoPE factor set.

A call is cut out of a full sequence, so a call on a suffix of the sequence (with the prefix in a
KV cache) sees exactly the mask rows and positions that the full call would give those tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vgpt.config import ModelConfig
from vgpt.masks import RowSplit, attention_mask, split_rows
from vgpt.rope import FactorSet, select_factor_set
from vgpt.tokens import Frame, TokenSequence


@dataclass(frozen=True)
class ForwardCall:
    frames: tuple[Frame, ...]  # the query frames, in sequence order
    tokens_per_frame: int  # N
    positions: torch.Tensor  # [Lq] int64
    mask: torch.Tensor  # [Lq, Lk] bool; Lk = past + Lq, the past being the cached prefix
    factor_set: FactorSet
    past_tokens: int  # tokens that must already be in the KV cache
    rows: RowSplit | None = field(init=False, repr=False, compare=False)  # the mask's open rows (vgpt.masks)

    def __post_init__(self) -> None:
        # Decided here, from the constant mask, so that no traced graph computes it (data-dependent).
        object.__setattr__(self, "rows", split_rows(self.mask))

    @property
    def block(self) -> int:
        return self.tokens_per_frame + 2

    @property
    def clean_frames(self) -> list[int]:
        return [i for i, f in enumerate(self.frames) if f.clean]

    @property
    def noisy_frames(self) -> list[int]:
        return [i for i, f in enumerate(self.frames) if not f.clean]

    def frame_order(self) -> torch.Tensor:
        """Gather index putting [clean blocks..., noisy blocks...] into sequence order. [F]."""
        clean, noisy = self.clean_frames, self.noisy_frames
        order = [0] * len(self.frames)
        for k, i in enumerate(clean):
            order[i] = k
        for k, i in enumerate(noisy):
            order[i] = len(clean) + k
        return torch.tensor(order, dtype=torch.int64)


def forward_call(
    config: ModelConfig,
    seq: TokenSequence,
    query_start: int = 0,
    query_end: int | None = None,
    factor_set: FactorSet | None = None,
) -> ForwardCall:
    """The call on the frames [query_start, query_end) of `seq`, attending keys [0, query_end).

    The factor set defaults to the choice for the largest position id of the whole `seq`, so that a
    call on part of the sequence rotates exactly as the call on the whole sequence would.
    """
    query_end = len(seq.frames) if query_end is None else query_end
    if not 0 <= query_start < query_end <= len(seq.frames):
        raise ValueError(f"query frames [{query_start}, {query_end}) outside 0..{len(seq.frames)}")
    if factor_set is None:
        factor_set = select_factor_set(config, int(seq.positions.max()))
    b = seq.block
    q0, q1 = query_start * b, query_end * b
    mask = attention_mask(config.attention_mask, seq)[q0:q1, :q1]  # [Lq, Lk]
    return ForwardCall(
        frames=seq.frames[query_start:query_end],
        tokens_per_frame=seq.tokens_per_frame,
        positions=seq.positions[q0:q1],
        mask=mask,
        factor_set=factor_set,
        past_tokens=q0,
    )
