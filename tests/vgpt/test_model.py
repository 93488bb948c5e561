import pytest
import torch

from vgpt.config import get_preset
from vgpt.forward import forward_call
from vgpt.masks import QueryMask, attention_bias
from vgpt.model import VideoGPT
from vgpt.modules import Backbone, crop_pos_embed
from vgpt.rope import rope_tables, select_factor_set
from vgpt.tokens import build_sequence, training_frames

# The released checkpoint's key names and shapes (reference section 8).
RELEASED_KEYS = {
    "x_embedder.proj.weight": (3072, 4, 2, 2),
    "x_embedder.proj.bias": (3072,),
    "input_x_embedder.proj.weight": (3072, 4, 2, 2),
    "input_x_embedder.proj.bias": (3072,),
    "time_token.mlp.0.weight": (3072, 256),
    "time_token.mlp.0.bias": (3072,),
    "time_token.mlp.2.weight": (3072, 3072),
    "time_token.mlp.2.bias": (3072,),
    "t_embedder.mlp.0.weight": (3072, 256),
    "t_embedder.mlp.0.bias": (3072,),
    "t_embedder.mlp.2.weight": (3072, 3072),
    "t_embedder.mlp.2.bias": (3072,),
    "pos_embed": (1, 36864, 3072),
    "final_layer.adaLN_modulation.1.weight": (6144, 3072),
    "final_layer.adaLN_modulation.1.bias": (6144,),
    "final_layer.linear.weight": (16, 3072),
    "final_layer.linear.bias": (16,),
    "llm.embed_tokens.weight": (32064, 3072),
    "llm.norm.weight": (3072,),
}
for i in range(32):
    RELEASED_KEYS.update({
        f"llm.layers.{i}.self_attn.qkv_proj.weight": (9216, 3072),
        f"llm.layers.{i}.self_attn.o_proj.weight": (3072, 3072),
        f"llm.layers.{i}.mlp.gate_up_proj.weight": (16384, 3072),
        f"llm.layers.{i}.mlp.down_proj.weight": (3072, 8192),
        f"llm.layers.{i}.input_layernorm.weight": (3072,),
        f"llm.layers.{i}.post_attention_layernorm.weight": (3072,),
    })  # fmt: skip


def test_parameter_names_equal_the_released_keys():
    with torch.device("meta"):
        model = VideoGPT(get_preset("videogpt-3.8b"))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == RELEASED_KEYS


def test_embedding_assembly_follows_the_token_layout(tiny_model):
    # atol 1e-6: the same fp32 matmuls batched differently (O(1) values, ~1e-7 round-off).
    c = tiny_model.config
    seq = build_sequence(training_frames([1, 2]), tokens_per_frame=4)  # noisy, clean, noisy noisy
    call = forward_call(c, seq)
    clean = torch.randn(1, 1, 4, 4, 4)
    noisy = torch.randn(1, 3, 4, 4, 4)
    t = torch.tensor([[0.3, 0.8, 0.8]])
    x = tiny_model.embed(call, clean, noisy, t)[0]  # [L, D]
    table = tiny_model.llm.embed_tokens.weight
    pos = crop_pos_embed(tiny_model.pos_embed, c.pos_embed_max_size, 2, 2)
    blk = 6
    # Frame 0 (noisy, t = 0.3): <|diffusion|>, time token, patches of noisy[0].
    assert torch.allclose(x[0], table[c.diffusion_token_id])
    assert torch.allclose(x[1], tiny_model.time_token(torch.tensor(0.3)), atol=1e-6)
    patches = tiny_model.x_embedder(noisy[:, 0])[0] + pos
    assert torch.allclose(x[2:blk], patches, atol=1e-6)
    # Frame 1 (clean): <img>, patches of clean[0] through the clean embedder, </img>.
    assert torch.allclose(x[blk], table[c.image_start_token_id])
    assert torch.allclose(x[blk + 1 : 2 * blk - 1], tiny_model.input_x_embedder(clean[:, 0])[0] + pos, atol=1e-6)
    assert torch.allclose(x[2 * blk - 1], table[c.image_end_token_id])
    # Frame 3 (the second noisy frame of clip 2) carries its clip's noise level.
    assert torch.allclose(x[3 * blk + 1], tiny_model.time_token(torch.tensor(0.8)), atol=1e-6)


@pytest.mark.parametrize("start", [0, 44, 45, 60])
def test_backbone_equals_transformers_phi3(start):
    """Our backbone against the stock Phi-3 of transformers, with the same weights, mask and
    positions. Stock Phi-3 picks the LongRoPE set by length, so it checks both sets and the switch:
    positions start..start+19 cross original_max_position_embeddings (64) from start 45 on."""
    transformers = pytest.importorskip("transformers")
    c = get_preset("tiny").replace(rope_factor_policy="length")
    hf_config = transformers.Phi3Config(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, rms_norm_eps=c.rms_norm_eps,
        max_position_embeddings=c.max_position_embeddings,
        original_max_position_embeddings=c.original_max_position_embeddings,
        rope_scaling={"type": "longrope", "short_factor": list(c.rope_short_factor),
                      "long_factor": list(c.rope_long_factor), "rope_theta": c.rope_theta},
        attn_implementation="eager", pad_token_id=0, bos_token_id=0, eos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    reference = transformers.Phi3Model(hf_config).eval()
    ours = Backbone(c).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    L = 20
    x = torch.randn(1, L, c.hidden_size)
    mask = (torch.rand(L, L) > 0.5) | torch.eye(L, dtype=torch.bool)
    bias = attention_bias(mask, torch.float32)
    positions = torch.arange(start, start + L)
    factor_set = select_factor_set(c, int(positions.max()))
    assert factor_set == ("long" if start + L - 1 >= 64 else "short")
    cos, sin = rope_tables(c, positions, factor_set)
    with torch.no_grad():
        ours_out = ours(x, cos, sin, QueryMask.from_mask(mask, torch.float32))
        ref_out = reference(inputs_embeds=x, attention_mask=bias[None, None], position_ids=positions[None])
    # fp32 round-off through 2 layers of different but equivalent op orders (eager softmax vs SDPA).
    torch.testing.assert_close(ours_out, ref_out.last_hidden_state, atol=2e-5, rtol=1e-5)


def test_runs_in_bfloat16(tiny_model):
    model = tiny_model.to(torch.bfloat16)
    seq = build_sequence(training_frames([2, 1]), tokens_per_frame=4)
    out = model(forward_call(model.config, seq), torch.randn(1, 2, 4, 4, 4), torch.randn(1, 3, 4, 4, 4),
                torch.rand(1, 3))  # fmt: skip
    assert out.shape == (1, 3, 4, 4, 4) and out.dtype == torch.bfloat16 and out.isfinite().all()
