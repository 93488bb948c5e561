import pytest
import torch

from vgpt.config import get_preset
from vgpt.forward import forward_call
from vgpt.tokens import build_sequence, conditional_frames


def test_a_call_on_a_suffix_sees_what_the_full_call_gives_those_tokens():
    c = get_preset("tiny")
    seq = build_sequence(conditional_frames(3, 2), tokens_per_frame=4)
    full = forward_call(c, seq)
    suffix = forward_call(c, seq, query_start=3)
    b = seq.block
    assert suffix.past_tokens == 3 * b and len(suffix.frames) == 2
    # The same mask rows and positions as the last 2 frames of the full call, and the same factor set
    # (chosen for the largest position of the whole sequence, not of the suffix).
    torch.testing.assert_close(suffix.mask, full.mask[3 * b :, :])
    torch.testing.assert_close(suffix.positions, full.positions[3 * b :])
    assert suffix.factor_set == full.factor_set


def test_frame_order_puts_clean_blocks_first():
    c = get_preset("tiny")
    call = forward_call(c, build_sequence(conditional_frames(3, 2), tokens_per_frame=4))
    assert call.clean_frames == [0, 1, 2] and call.noisy_frames == [3, 4]
    assert call.frame_order().tolist() == [0, 1, 2, 3, 4]


def test_query_frames_outside_the_sequence_are_refused():
    seq = build_sequence(conditional_frames(2, 2), tokens_per_frame=4)
    with pytest.raises(ValueError, match=r"query frames \[3, 2\) outside 0..4"):
        forward_call(get_preset("tiny"), seq, query_start=3, query_end=2)
