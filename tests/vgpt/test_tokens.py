from vgpt.tokens import (
    Frame,
    Role,
    build_sequence,
    conditional_frames,
    training_frames,
    unconditional_frames,
)

S, T, X, B, I, E = Role.DIFFUSION, Role.TIME, Role.NOISY, Role.IMG_START, Role.IMAGE, Role.IMG_END  # noqa: E741 - the reference names the roles so


def test_training_sequence_two_clips_of_two_frames_two_tokens():
    # [noisy clip 1, clean clip 1, noisy clip 2]; the last clean clip is not in the sequence.
    frames = training_frames([2, 2])
    assert frames == [
        Frame(False, 0, 0), Frame(False, 0, 1),
        Frame(True, 0, 0), Frame(True, 0, 1),
        Frame(False, 1, 2), Frame(False, 1, 3),
    ]  # fmt: skip
    seq = build_sequence(frames, tokens_per_frame=2)
    assert len(seq) == 24 and seq.block == 4
    assert seq.roles.tolist() == [S, T, X, X] * 2 + [B, I, I, E] * 2 + [S, T, X, X] * 2
    # Noisy clip 1 takes the positions of its clean copy; noisy clip 2 those that follow.
    assert seq.positions.tolist() == [*range(8), *range(8), *range(8, 16)]


def test_inference_sequences_positions():
    cond = build_sequence(conditional_frames(history=1, clip=2), tokens_per_frame=1)
    assert cond.roles.tolist() == [B, I, E, S, T, X, S, T, X]
    assert cond.positions.tolist() == list(range(9))  # the clip follows the history
    uncond = build_sequence(unconditional_frames(2), tokens_per_frame=1)
    assert uncond.roles.tolist() == [S, T, X, S, T, X]
    assert uncond.positions.tolist() == list(range(6))  # starts at 0


def test_uneven_partition_positions():
    seq = build_sequence(training_frames([1, 3, 2]), tokens_per_frame=1)
    block = 3
    times = seq.positions[::block].tolist()
    assert [p // block for p in times] == [0, 0, 1, 2, 3, 1, 2, 3, 4, 5]
    assert [bool(c) for c in seq.clean[::block]] == [False, True, False, False, False, True, True, True, False, False]
