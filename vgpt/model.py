"""Video-GPT: a Phi-3 transformer over VAE-latent patch tokens (next clip diffusion).

One forward call computes the tokens of a `ForwardCall` (clean and/or noisy frames in sequence
order), attending a KV-cached prefix when the call has one, and returns the output head's
prediction for the call's noisy frames. Reference: videogpt-reference.md sections 2-4.

The same class is the GPDiT family (gpdit-reference.md; docs/gpdit.md): the call's mask carries the
family's rule, and with rotation time conditioning the time token's slot holds a second
<|diffusion|> row, each noisy token is rotated by its frame's angle in every block and in the head,
and there are no time parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from vgpt.config import ModelConfig
from vgpt.forward import ForwardCall
from vgpt.kv_cache import KVCache
from vgpt.masks import QueryMask, attention_bias
from vgpt.modules import (
    Backbone,
    FinalLayer,
    PatchEmbed,
    TimestepEmbedder,
    crop_pos_embed,
    sincos_2d_table,
    unpatchify,
)
from vgpt.rope import rope_tables
from vgpt.time_rotation import rotation_angle, token_rotation


class VideoGPT(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.x_embedder = PatchEmbed(config)  # noisy frames
        self.input_x_embedder = PatchEmbed(config)  # clean frames
        if config.time_parameters:
            self.time_token = TimestepEmbedder(config)  # one token per noisy frame
            self.t_embedder = TimestepEmbedder(config)  # conditions the output head
        self.final_layer = FinalLayer(config)
        self.llm = Backbone(config)
        table = sincos_2d_table(config.hidden_size, config.pos_embed_max_size, config.pos_embed_base_size)
        # Stored in the released checkpoint, so a persistent buffer: strict loading checks it.
        self.register_buffer("pos_embed", table, persistent=True)

    @property
    def dtype(self) -> torch.dtype:
        return self.x_embedder.proj.weight.dtype

    def special_tokens(self) -> torch.Tensor:
        """Rows of <|diffusion|>, <img>, </img>, each [D]: a [3, D] tensor."""
        c = self.config
        ids = torch.tensor(
            [c.diffusion_token_id, c.image_start_token_id, c.image_end_token_id],
            device=self.pos_embed.device,
        )
        return self.llm.embed_tokens(ids)

    def embed_images(self, embedder: PatchEmbed, latents: torch.Tensor) -> torch.Tensor:
        """[B, F, C, h, w] -> [B, F, N, D] patch tokens plus the cropped position table."""
        B, F, C, h, w = latents.shape
        p = self.config.patch_size
        tokens = embedder(latents.reshape(B * F, C, h, w).to(self.dtype))  # [B*F, N, D]
        pos = crop_pos_embed(self.pos_embed, self.config.pos_embed_max_size, h // p, w // p)
        return (tokens + pos.to(tokens.dtype)).reshape(B, F, -1, tokens.shape[-1])  # [B, F, N, D]

    def embed(
        self,
        call: ForwardCall,
        clean: torch.Tensor | None,
        noisy: torch.Tensor | None,
        t: torch.Tensor | None,
    ) -> torch.Tensor:
        """Token embeddings of the call's frames in sequence order: [B, Lq, D].

        clean [B, Fc, C, h, w] and noisy [B, Fn, C, h, w] hold the call's clean and noisy frames in
        sequence order; t [B, Fn] is each noisy frame's noise level.
        """
        diffusion, img_start, img_end = self.special_tokens()
        blocks = []
        if call.clean_frames:
            img = self.embed_images(self.input_x_embedder, clean)  # [B, Fc, N, D]
            B, Fc, _, D = img.shape
            blocks.append(
                torch.cat([img_start.expand(B, Fc, 1, D), img, img_end.expand(B, Fc, 1, D)], dim=2)
            )  # [B, Fc, block, D]
        if call.noisy_frames:
            img = self.embed_images(self.x_embedder, noisy)  # [B, Fn, N, D]
            B, Fn, _, D = img.shape
            if self.config.time_parameters:
                time = self.time_token(t)[:, :, None, :]  # [B, Fn, 1, D]
            else:  # rotation: the slot keeps the layout (block = N + 2) and carries no time parameter
                time = diffusion.expand(B, Fn, 1, D)
            blocks.append(torch.cat([diffusion.expand(B, Fn, 1, D), time, img], dim=2))  # [B, Fn, block, D]
        frames = torch.cat(blocks, dim=1)  # [B, Fc + Fn, block, D]
        if call.clean_frames and call.noisy_frames:
            frames = frames[:, call.frame_order().to(frames.device)]
        B, F, blk, D = frames.shape
        return frames.reshape(B, F * blk, D)  # [B, Lq, D]

    def head(self, hidden: torch.Tensor, call: ForwardCall, t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Output head on the noisy frames' image tokens: [B, Lq, D] -> [B, Fn, C, h, w]."""
        B, _, D = hidden.shape
        blocks = hidden.reshape(B, len(call.frames), call.block, D)  # [B, F, block, D]
        idx = torch.tensor(call.noisy_frames, device=hidden.device)
        image = blocks[:, idx, 2:]  # [B, Fn, N, D]
        if self.config.time_parameters:
            out = self.final_layer(image, self.t_embedder(t))  # [B, Fn, N, p*p*C]
        else:
            cos, sin = token_rotation(rotation_angle(t), 1)  # [B, Fn, 1] each
            out = self.final_layer(image, rotation=(cos[..., None], sin[..., None]))  # [B, Fn, N, p*p*C]
        cfg = self.config
        p = cfg.patch_size
        return unpatchify(out, h // p, w // p, p, cfg.latent_channels)  # [B, Fn, C, h, w]

    def rotation(self, call: ForwardCall, t: torch.Tensor | None):
        """Each token's (cos, sin) of its rotation angle, [B, Lq, 1] each: the noisy frames' tokens at
        their noise level's angle, clean tokens at 0. None without rotation conditioning, and for a
        call of clean frames only (every angle 0: the identity, skipped)."""
        if self.config.time_parameters or not call.noisy_frames:
            return None
        B = t.shape[0]
        idx = torch.tensor(call.noisy_frames, device=t.device)
        frames = torch.zeros(B, len(call.frames), device=t.device).index_copy(1, idx, rotation_angle(t))  # [B, F]
        return token_rotation(frames, call.block)

    def forward(
        self,
        call: ForwardCall,
        clean: torch.Tensor | None = None,
        noisy: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        cache: KVCache | None = None,
        write_cache: bool = False,
    ) -> torch.Tensor | None:
        """Run the call; returns [B, Fn, C, h, w] for its noisy frames (None if it has none).

        With `cache`, the call's keys start with cache.length cached tokens; `write_cache` appends
        this call's keys and values to the cache (only sound for clean frames, which later tokens
        may see).
        """
        past = cache.length if cache is not None else 0
        if past != call.past_tokens:
            raise ValueError(f"the call expects {call.past_tokens} cached tokens, the cache holds {past}")
        if write_cache and call.noisy_frames:
            raise ValueError("noisy frames are never cached: later tokens must not see them")
        ref = clean if clean is not None else noisy
        h, w = ref.shape[-2:]
        x = self.embed(call, clean, noisy, t)  # [B, Lq, D]
        device = x.device
        cos, sin = rope_tables(self.config, call.positions.to(device), call.factor_set)  # [Lq, hd]
        mask = QueryMask(attention_bias(call.mask.to(device), x.dtype), call.rows)  # bias [Lq, Lk]
        hidden = self.llm(x, cos, sin, mask, cache, write_cache, self.rotation(call, t))
        if cache is not None and write_cache:
            cache.advance(x.shape[1])
            cache.factor_set = call.factor_set
        if not call.noisy_frames:
            return None
        return self.head(hidden, call, t, h, w)
