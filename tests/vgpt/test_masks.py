import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vgpt.masks import QueryMask, attend, attention_bias, attention_mask, hierarchical_mask
from vgpt.tokens import Role, build_sequence, conditional_frames, training_frames, unconditional_frames


def spelled(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r.replace(" ", "")] for r in rows])


# Columns in groups of one frame (4 tokens): noisy a, noisy b | clean c, clean d | noisy e, noisy f.
# Roles per frame: noisy S T X X, clean B I I E.
TRAINING_2x2x2 = [
    "1000 1000 0000 0000 0000 0000",  # a S: the S keys of its clip
    "1100 1100 0000 0000 0000 0000",  # a T: S and T keys
    "1111 1111 0000 0000 0000 0000",  # a X: S, T, X keys (both frames)
    "1111 1111 0000 0000 0000 0000",  # a X
    "1000 1000 0000 0000 0000 0000",  # b S
    "1100 1100 0000 0000 0000 0000",  # b T
    "1111 1111 0000 0000 0000 0000",  # b X
    "1111 1111 0000 0000 0000 0000",  # b X
    "0000 0000 1000 0000 0000 0000",  # c B: itself only
    "0000 0000 1110 0000 0000 0000",  # c I: B and all I of its frame
    "0000 0000 1110 0000 0000 0000",  # c I
    "0000 0000 1111 0000 0000 0000",  # c E
    "0000 0000 1111 1000 0000 0000",  # d B: frame c, then itself
    "0000 0000 1111 1110 0000 0000",  # d I
    "0000 0000 1111 1110 0000 0000",  # d I
    "0000 0000 1111 1111 0000 0000",  # d E
    "0000 0000 1111 1111 1000 1000",  # e S: clean clip 1, S keys of its clip
    "0000 0000 1111 1111 1100 1100",  # e T
    "0000 0000 1111 1111 1111 1111",  # e X
    "0000 0000 1111 1111 1111 1111",  # e X
    "0000 0000 1111 1111 1000 1000",  # f S
    "0000 0000 1111 1111 1100 1100",  # f T
    "0000 0000 1111 1111 1111 1111",  # f X
    "0000 0000 1111 1111 1111 1111",  # f X
]


def test_training_mask_spelled_out():
    seq = build_sequence(training_frames([2, 2]), tokens_per_frame=2)
    assert torch.equal(hierarchical_mask(seq), spelled(TRAINING_2x2x2))


def test_inference_masks_spelled_out():
    # History of 1 frame (B I E), clip of 2 frames (S T X each), one image token per frame.
    cond = build_sequence(conditional_frames(1, 2), tokens_per_frame=1)
    expected = spelled([
        "100 000 000",
        "110 000 000",
        "111 000 000",
        "111 100 100",
        "111 110 110",
        "111 111 111",
        "111 100 100",
        "111 110 110",
        "111 111 111",
    ])  # fmt: skip
    assert torch.equal(hierarchical_mask(cond), expected)
    uncond = build_sequence(unconditional_frames(2), tokens_per_frame=1)
    expected = spelled(["100 100", "110 110", "111 111", "100 100", "110 110", "111 111"])
    assert torch.equal(hierarchical_mask(uncond), expected)


def test_bias_is_zero_or_dtype_min():
    mask = torch.tensor([[True, False]])
    assert attention_bias(mask, torch.float32).tolist() == [[0.0, torch.finfo(torch.float32).min]]
    assert attention_bias(mask, torch.bfloat16)[0, 1].item() == torch.finfo(torch.bfloat16).min


@pytest.mark.parametrize("open_share", [0.0, 0.4, 0.8, 1.0])
def test_attention_split_by_open_rows_equals_one_masked_call(open_share):
    """A clip's image rows see every key and are attended without a bias; the rest with theirs."""
    gen = torch.Generator().manual_seed(0)
    B, nh, Lq, Lk, hd = 2, 3, 20, 28, 8
    q, k, v = torch.randn(B, nh, Lq, hd, generator=gen), *(torch.randn(B, nh, Lk, hd, generator=gen) for _ in range(2))
    mask = torch.rand(Lq, Lk, generator=gen) > 0.4
    mask[:, 0] = True  # every row sees at least one key
    mask[torch.randperm(Lq, generator=gen)[: round(open_share * Lq)]] = True
    query_mask = QueryMask.from_mask(mask, torch.float32)
    assert (query_mask.rows is not None) == (open_share >= 0.5)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attention_bias(mask, torch.float32))
    # The same softmax per row, by another kernel (no mask): fp32 round-off only.
    torch.testing.assert_close(attend(q, k, v, query_mask), want, atol=1e-6, rtol=1e-5)


def test_a_noisy_clip_is_attended_mostly_without_a_mask():
    """In the released clip's plan only <|diffusion|> and time rows (2 of N + 2) carry a bias."""
    seq = build_sequence(conditional_frames(3, 4), tokens_per_frame=16)
    mask = hierarchical_mask(seq)[3 * 18 :]  # the noisy clip's rows against every key
    query_mask = QueryMask.from_mask(mask, torch.float32)
    assert query_mask.rows is not None and len(query_mask.rows.masked_rows) == 2 * 4


partitions = st.lists(st.integers(1, 3), min_size=1, max_size=4)
_RANK = {Role.DIFFUSION: 0, Role.TIME: 1, Role.NOISY: 2}


@settings(max_examples=60, deadline=None)
@given(partitions, st.integers(1, 3))
def test_mask_properties_over_random_partitions(sizes, n):
    seq = build_sequence(training_frames(sizes), tokens_per_frame=n)
    mask = hierarchical_mask(seq)
    block = seq.block
    frames = seq.frames
    assert mask.diagonal().all(), "every token sees itself, so no attention row is empty"
    for q in range(len(seq)):
        fq, rq = frames[q // block], Role(int(seq.roles[q]))
        for k in range(len(seq)):
            fk, rk = frames[k // block], Role(int(seq.roles[k]))
            if fk.clean:
                if fq.clean:
                    # Earlier clean frames fully; inside a frame B -> I -> E, the I tokens fully.
                    if k // block < q // block:
                        expected = True
                    elif k // block == q // block:
                        expected = {Role.IMG_START: True, Role.IMAGE: rq != Role.IMG_START}.get(rk, rq == rk)
                    else:
                        expected = False
                else:
                    # A noisy clip sees the clean frames of earlier clips, all of them, and no others.
                    expected = fk.clip < fq.clip
            else:
                # Clean never sees noisy; noisy sees exactly its own clip, by role.
                expected = (not fq.clean) and fk.clip == fq.clip and _RANK[rk] <= _RANK[rq]
            assert bool(mask[q, k]) == expected, (sizes, n, q, k)


# GPDiT (gpdit-reference.md section 2), the same 2 + 2 training sequence as TRAINING_2x2x2. A noisy unit
# sees all of its own unit (no role order) and the clean frames of earlier units; under the lightweight
# mask a clean frame sees only itself (B -> I -> E inside it).
LIGHTWEIGHT_2x2x2 = [
    "1111 1111 0000 0000 0000 0000",  # a S: its own unit, every token; no earlier unit
    "1111 1111 0000 0000 0000 0000",  # a T
    "1111 1111 0000 0000 0000 0000",  # a X
    "1111 1111 0000 0000 0000 0000",  # a X
    "1111 1111 0000 0000 0000 0000",  # b S
    "1111 1111 0000 0000 0000 0000",  # b T
    "1111 1111 0000 0000 0000 0000",  # b X
    "1111 1111 0000 0000 0000 0000",  # b X
    "0000 0000 1000 0000 0000 0000",  # c B: itself only
    "0000 0000 1110 0000 0000 0000",  # c I: B and all I of its frame
    "0000 0000 1110 0000 0000 0000",  # c I
    "0000 0000 1111 0000 0000 0000",  # c E
    "0000 0000 0000 1000 0000 0000",  # d B: its own frame only, not frame c
    "0000 0000 0000 1110 0000 0000",  # d I
    "0000 0000 0000 1110 0000 0000",  # d I
    "0000 0000 0000 1111 0000 0000",  # d E
    "0000 0000 1111 1111 1111 1111",  # e S: the clean frames of unit 1, all of its own unit
    "0000 0000 1111 1111 1111 1111",  # e T
    "0000 0000 1111 1111 1111 1111",  # e X
    "0000 0000 1111 1111 1111 1111",  # e X
    "0000 0000 1111 1111 1111 1111",  # f S
    "0000 0000 1111 1111 1111 1111",  # f T
    "0000 0000 1111 1111 1111 1111",  # f X
    "0000 0000 1111 1111 1111 1111",  # f X
]
# Vanilla ("OF2") differs only in the clean rows: clean frame d sees clean frame c too.
VANILLA_2x2x2 = [
    *LIGHTWEIGHT_2x2x2[:12],
    "0000 0000 1111 1000 0000 0000",  # d B: frame c, then itself
    "0000 0000 1111 1110 0000 0000",  # d I
    "0000 0000 1111 1110 0000 0000",  # d I
    "0000 0000 1111 1111 0000 0000",  # d E
    *LIGHTWEIGHT_2x2x2[16:],
]


@pytest.mark.parametrize(("rule", "table"), [("lightweight", LIGHTWEIGHT_2x2x2), ("vanilla", VANILLA_2x2x2)])
def test_gpdit_training_masks_spelled_out(rule, table):
    seq = build_sequence(training_frames([2, 2]), tokens_per_frame=2)
    assert torch.equal(attention_mask(rule, seq), spelled(table))


def test_gpdit_inference_masks_spelled_out():
    # Two history frames (B I E each), a noisy unit of one frame (S T X), one image token per frame.
    cond = build_sequence(conditional_frames(2, 1), tokens_per_frame=1)
    noisy_rows = ["111 111 111"] * 3  # every history token and its whole own unit
    lightweight = ["100 000 000", "110 000 000", "111 000 000", "000 100 000", "000 110 000", "000 111 000"]
    vanilla = ["100 000 000", "110 000 000", "111 000 000", "111 100 000", "111 110 000", "111 111 000"]
    assert torch.equal(attention_mask("lightweight", cond), spelled(lightweight + noisy_rows))
    assert torch.equal(attention_mask("vanilla", cond), spelled(vanilla + noisy_rows))
    # The unconditional branch: the unit alone, attending only itself.
    uncond = build_sequence(unconditional_frames(2), tokens_per_frame=1)
    assert attention_mask("lightweight", uncond).all() and attention_mask("vanilla", uncond).all()


def test_the_hierarchical_rule_is_video_gpts_mask():
    seq = build_sequence(training_frames([2, 2]), tokens_per_frame=2)
    assert torch.equal(attention_mask("hierarchical", seq), spelled(TRAINING_2x2x2))
