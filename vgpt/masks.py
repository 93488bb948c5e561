"""The attention masks (True = query may attend key): Video-GPT's hierarchical rule and GPDiT's two.

`attention_mask(rule, seq)` picks one by `ModelConfig.attention_mask`.

Hierarchical (videogpt-reference.md section 5):
1. A clean key is visible to every query at or after the start of its token group: <img> from
   itself, the image tokens from the frame's first image token, </img> from itself.
2. A noisy key is visible only inside its own noisy clip, by role: S sees S; T sees S, T; X sees
   S, T, X (bidirectional across the frames of the clip).
3. Nothing else: clean queries never see noisy keys, noisy clips never see each other.

GPDiT (gpdit-reference.md section 2), by unit: a clean frame, or a noisy unit (our noisy clip).
- lightweight: a clean frame sees only itself (B -> I -> E inside it, as above), so its keys and values
  never depend on other frames; vanilla: a clean frame sees itself and every earlier clean frame.
- A noisy unit sees every clean frame of an earlier unit, and every token of its own unit (the page's
  table has no role order inside a noisy unit); never another noisy unit.
Both are written over the units' clip and time indices, not the order of the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vgpt.config import MaskRule
from vgpt.tokens import Role, TokenSequence

# Rank of each noisy role: a noisy query sees the noisy keys of its clip whose rank is not higher.
_NOISY_RANK = {Role.DIFFUSION: 0, Role.TIME: 1, Role.NOISY: 2}


def clean_visible_from(seq: TokenSequence) -> torch.Tensor:
    """For each token, the first sequence index whose queries may see it as a clean key. [L]."""
    index = torch.arange(len(seq))
    first_image = index - (index % seq.block) + 1  # the frame's first image token
    return torch.where(seq.roles == Role.IMAGE, first_image, index)


def noisy_rank(seq: TokenSequence) -> torch.Tensor:
    """0/1/2 for S/T/X tokens, -1 for clean tokens. [L]."""
    rank = torch.full_like(seq.roles, -1)
    for role, value in _NOISY_RANK.items():
        rank[seq.roles == role] = value
    return rank


def hierarchical_mask(seq: TokenSequence) -> torch.Tensor:
    """Boolean [L, L] mask, rows = queries, columns = keys."""
    index = torch.arange(len(seq))
    clean_k = seq.clean[None, :]
    visible_clean = clean_k & (index[:, None] >= clean_visible_from(seq)[None, :])
    rank = noisy_rank(seq)
    noisy_q, noisy_k = ~seq.clean[:, None], ~seq.clean[None, :]
    same_clip = seq.clip[:, None] == seq.clip[None, :]
    visible_noisy = noisy_q & noisy_k & same_clip & (rank[None, :] <= rank[:, None])
    return visible_clean | visible_noisy


def gpdit_mask(seq: TokenSequence, clean_sees_earlier: bool) -> torch.Tensor:
    """GPDiT's boolean [L, L] mask: lightweight (`clean_sees_earlier` False) or vanilla (True)."""
    index = torch.arange(len(seq))
    time = seq.positions // seq.block  # the frame's index in the clean stream
    clean_q, clean_k = seq.clean[:, None], seq.clean[None, :]
    own_frame = (time[:, None] == time[None, :]) & (index[:, None] >= clean_visible_from(seq)[None, :])
    clean_rows = own_frame | (time[:, None] > time[None, :]) if clean_sees_earlier else own_frame
    earlier_unit = seq.clip[None, :] < seq.clip[:, None]
    same_unit = seq.clip[:, None] == seq.clip[None, :]
    return (clean_q & clean_k & clean_rows) | (~clean_q & clean_k & earlier_unit) | (~clean_q & ~clean_k & same_unit)


def attention_mask(rule: MaskRule, seq: TokenSequence) -> torch.Tensor:
    """The boolean [L, L] mask of `seq` under `rule` (ModelConfig.attention_mask)."""
    if rule == "hierarchical":
        return hierarchical_mask(seq)
    if rule in ("lightweight", "vanilla"):
        return gpdit_mask(seq, clean_sees_earlier=rule == "vanilla")
    raise ValueError(f"unknown attention mask rule {rule!r}")


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive bias: 0 where visible, finfo(dtype).min where not."""
    zero = torch.zeros((), dtype=dtype)
    return torch.where(mask, zero, torch.tensor(torch.finfo(dtype).min, dtype=dtype))


# A call is attended in two parts when at least this share of its query rows sees every key.
OPEN_ROWS_TO_SPLIT = 0.5


@dataclass(frozen=True)
class RowSplit:
    """The query rows of a mask that see every key ("open"), the others, and the gather index from
    [open rows; masked rows] back to row order. All [rows] int64."""

    open_rows: torch.Tensor
    masked_rows: torch.Tensor
    order: torch.Tensor


def split_rows(mask: torch.Tensor) -> RowSplit | None:
    """The open rows of a boolean [Lq, Lk] mask, where they are at least OPEN_ROWS_TO_SPLIT of them;
    else None (one call with the whole bias). Decided from the constant mask outside any traced graph."""
    open_ = mask.all(dim=-1)
    if int(open_.sum()) < OPEN_ROWS_TO_SPLIT * mask.shape[0]:
        return None
    open_rows, masked_rows = open_.nonzero()[:, 0], (~open_).nonzero()[:, 0]
    order = torch.empty(mask.shape[0], dtype=torch.int64)
    order[torch.cat([open_rows, masked_rows])] = torch.arange(mask.shape[0])
    return RowSplit(open_rows, masked_rows, order)


@dataclass(frozen=True)
class QueryMask:
    """One call's mask as attention takes it: its additive bias and, where most rows see every key,
    the split of its rows.

    In a noisy clip only the <|diffusion|> and time tokens (2 of every N + 2) are masked from anything:
    the image tokens see the whole cache and the whole clip. The fused attention kernels of PyTorch and
    ONNX Runtime take a much faster path for a call with no mask at all (ONNX Runtime's CPU Attention
    about 2.5x at the released clip's shape: docs/benchmarks.md), so `attend` runs the open rows
    without a bias and only the few others with theirs, then puts the rows back in order. Rows of a
    softmax are independent, so the result is the one-call result up to fp32 round-off.
    """

    bias: torch.Tensor  # [Lq, Lk] additive, of every row (what two-part attention and tests read)
    rows: RowSplit | None = None

    @classmethod
    def from_mask(cls, mask: torch.Tensor, dtype: torch.dtype) -> QueryMask:
        return cls(attention_bias(mask, dtype), split_rows(mask))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: QueryMask) -> torch.Tensor:
    """Scaled dot-product attention of q [B, nh, Lq, hd] over k, v [B, nh, Lk, hd] under `mask`."""
    rows = mask.rows
    if rows is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.bias)
    if not len(rows.masked_rows):
        return F.scaled_dot_product_attention(q, k, v)
    device = q.device
    open_rows, masked_rows, order = rows.open_rows.to(device), rows.masked_rows.to(device), rows.order.to(device)
    free = F.scaled_dot_product_attention(q.index_select(2, open_rows), k, v)
    masked = F.scaled_dot_product_attention(q.index_select(2, masked_rows), k, v,
                                            attn_mask=mask.bias.index_select(0, masked_rows))  # fmt: skip
    return torch.cat([free, masked], dim=2).index_select(2, order)  # [B, nh, Lq, hd]
