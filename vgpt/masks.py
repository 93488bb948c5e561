"""The hierarchical attention mask (True = query may attend key).

Reference: videogpt-reference.md section 5.
1. A clean key is visible to every query at or after the start of its token group: <img> from
   itself, the image tokens from the frame's first image token, </img> from itself.
2. A noisy key is visible only inside its own noisy clip, by role: S sees S; T sees S, T; X sees
   S, T, X (bidirectional across the frames of the clip).
3. Nothing else: clean queries never see noisy keys, noisy clips never see each other.
"""

from __future__ import annotations

import torch

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


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive bias: 0 where visible, finfo(dtype).min where not."""
    zero = torch.zeros((), dtype=dtype)
    return torch.where(mask, zero, torch.tensor(torch.finfo(dtype).min, dtype=dtype))
