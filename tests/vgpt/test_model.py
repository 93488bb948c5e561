import pytest
import torch

from tests.conftest import random_model
from vgpt.config import get_preset
from vgpt.forward import forward_call
from vgpt.masks import QueryMask, attention_bias
from vgpt.model import VideoGPT
from vgpt.modules import Backbone, crop_pos_embed
from vgpt.rope import rope_tables, select_factor_set
from vgpt.tokens import build_sequence, history_frames, training_frames

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


def _clean_frame_kv(model, clean, noisy=None, t=None, sizes=None):
    """Every layer's keys and values (before RoPE) of the last clean frame of `clean` [1, F, C, h, w]: the
    frames before it in a history call, or the clean frames of a training call of clip `sizes`."""
    captured = []
    hooks = [layer.self_attn.qkv_proj.register_forward_hook(lambda m, a, out: captured.append(out))
             for layer in model.llm.layers]  # fmt: skip
    c = model.config
    tokens = (clean.shape[-2] // c.patch_size) * (clean.shape[-1] // c.patch_size)
    frames = training_frames(sizes) if sizes else history_frames(clean.shape[1])
    seq = build_sequence(frames, tokens)
    call = forward_call(c, seq)
    with torch.no_grad():
        model(call, clean=clean, noisy=noisy, t=t)
    for hook in hooks:
        hook.remove()
    index = [i for i, f in enumerate(call.frames) if f.clean][-1]  # the frame's place in the sequence
    q = c.num_attention_heads * c.head_dim
    return torch.stack([out[0, index * seq.block : (index + 1) * seq.block, q:] for out in captured])


@pytest.mark.parametrize("time_conditioning", ["rotation", "time_token"])
def test_a_clean_frames_keys_and_values_depend_on_that_frame_alone_under_the_lightweight_mask(time_conditioning):
    """gpdit-reference.md section 2: every layer's keys/values of a clean frame are the same whatever
    frames precede it (none, others, or a training sequence's noisy units at their noise levels). Before
    RoPE, so that frames at different positions compare; RoPE then only rotates by the position."""
    config = get_preset("gpdit-tiny").replace(time_conditioning=time_conditioning)
    model = random_model(config)
    gen = torch.Generator().manual_seed(3)
    frame = torch.randn(1, 1, 4, 4, 4, generator=gen)
    others = [torch.randn(1, 3, 4, 4, 4, generator=gen) for _ in range(2)]
    alone = _clean_frame_kv(model, frame)
    after = [_clean_frame_kv(model, torch.cat([o, frame], dim=1)) for o in others]
    # A training call: units of 2, 2 and 1 frames; the frame is the last clean one, behind noisy units.
    context = torch.cat([others[0], frame], dim=1)
    noisy = torch.randn(1, 5, 4, 4, 4, generator=gen)
    in_training = _clean_frame_kv(model, context, noisy, torch.tensor([[0.2, 0.2, 0.7, 0.7, 0.5]]), sizes=[2, 2, 1])
    # fp32 round-off: the same frame's arithmetic at other positions (RoPE inside the frame) and with more,
    # fully masked, keys in the softmax; O(1) values, ~1e-7 per op through 2 layers.
    for other in [*after, in_training]:
        torch.testing.assert_close(other, alone, atol=1e-5, rtol=1e-5)
    # The vanilla mask lets a clean frame see earlier ones: the same comparison fails there.
    vanilla = random_model(config.replace(attention_mask="vanilla"))
    a, b = (_clean_frame_kv(vanilla, torch.cat([o, frame], dim=1)) for o in others)
    assert (a - b).abs().max() > 1e-2


def test_rotation_models_have_no_time_parameters(tiny_model):
    rotation = VideoGPT(get_preset("gpdit-tiny"))
    names = set(rotation.state_dict())
    assert not any(n.startswith(("time_token.", "t_embedder.", "final_layer.adaLN_modulation.")) for n in names)
    # Everything else is the Video-GPT model's, name for name.
    timed = {n for n in tiny_model.state_dict() if n.startswith(("time_token.", "t_embedder.", "final_layer.adaLN"))}
    assert names == set(tiny_model.state_dict()) - timed
    assert sum(p.numel() for p in rotation.parameters()) == rotation.config.num_parameters()
    assert sum(p.numel() for p in tiny_model.parameters()) == tiny_model.config.num_parameters()


def test_rotation_model_rotates_each_noisy_frame_by_its_own_angle():
    """Only the time_token slot and the rotation carry t: two noise levels give two different outputs, and
    the time slot holds a second <|diffusion|> row."""
    model = random_model(get_preset("gpdit-tiny"))
    seq = build_sequence(training_frames([1, 1]), tokens_per_frame=4)
    call = forward_call(model.config, seq)
    clean, noisy = torch.randn(1, 1, 4, 4, 4), torch.randn(1, 2, 4, 4, 4)
    x = model.embed(call, clean, noisy, torch.tensor([[0.3, 0.8]]))[0]
    diffusion = model.llm.embed_tokens.weight[model.config.diffusion_token_id]
    assert torch.equal(x[0], diffusion) and torch.equal(x[1], diffusion)
    with torch.no_grad():
        a = model(call, clean, noisy, torch.tensor([[0.3, 0.8]]))
        b = model(call, clean, noisy, torch.tensor([[0.3, 0.2]]))
    assert torch.equal(a[:, 0], b[:, 0])  # unit 1 sees no noisy frame of unit 2
    assert (a[:, 1] - b[:, 1]).abs().max() > 1e-2


def test_rotation_turns_the_prenormed_features_of_noisy_tokens_before_each_branch():
    """gpdit-reference.md section 3: in every block, after each pre-norm and before attention and the
    MLP, each token's features are rotated by its own angle: the noisy frame's at its noise level, the
    clean frame's at 0 (unchanged)."""
    model = random_model(get_preset("gpdit-tiny"))
    seen, hooks = [], []
    for layer in model.llm.layers:  # each layer's input, then what its attention and its MLP take
        hooks.append(layer.register_forward_pre_hook(lambda m, args: seen.append((m, args[0]))))
        hooks.append(layer.self_attn.register_forward_pre_hook(lambda m, args: seen.append((m, args[0]))))
        hooks.append(layer.mlp.register_forward_pre_hook(lambda m, args: seen.append((m, args[0]))))
    seq = build_sequence(training_frames([1, 1]), tokens_per_frame=4)  # noisy, clean, noisy: block 6
    call = forward_call(model.config, seq)
    t = torch.tensor([[0.3, 0.8]])
    with torch.no_grad():
        model(call, torch.randn(1, 1, 4, 4, 4), torch.randn(1, 2, 4, 4, 4), t)
    for hook in hooks:
        hook.remove()
    theta = torch.atan2(1 - t, t)[0]  # our t: 1 = clean
    angles = torch.cat([theta[0].repeat(6), torch.zeros(6), theta[1].repeat(6)])[None, :, None]  # [1, L, 1]
    half = model.config.hidden_size // 2
    assert len(seen) == 3 * model.config.num_hidden_layers
    for i in range(0, len(seen), 3):
        (layer, x), (_, attn_in), (_, mlp_in) = seen[i : i + 3]
        h = layer.input_layernorm(x)
        with torch.no_grad():
            rope = rope_tables(model.config, seq.positions, "long")
            mid = x + layer.self_attn(attn_in, *rope, QueryMask.from_mask(call.mask, torch.float32))
        for got, normed in ((attn_in, h), (mlp_in, layer.post_attention_layernorm(mid))):
            a, b = normed[..., :half], normed[..., half:]
            want = torch.cat([angles.cos() * a - angles.sin() * b, angles.sin() * a + angles.cos() * b], -1)
            # fp32 round-off of the same few ops.
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
        assert torch.equal(attn_in[:, 6:12], h[:, 6:12])  # the clean frame: angle 0, untouched
