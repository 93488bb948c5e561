import pytest
import torch
from torch import nn

from vgpt.config import get_preset
from vgpt.tokens import training_frames
from vgpt.training.objective import next_clip_loss, sample_partition


@pytest.mark.parametrize("n", [2, 3, 8, 16])
def test_random_partitions(n):
    gen = torch.Generator().manual_seed(n)
    seen_k = set()
    for _ in range(300):
        sizes = sample_partition(n, gen)
        assert sum(sizes) == n and all(s >= 1 for s in sizes) and 2 <= len(sizes) <= n
        seen_k.add(len(sizes))
    assert seen_k == set(range(2, n + 1)), "K takes every value in {2..n}"


def test_per_frame_partition_and_errors():
    gen = torch.Generator()
    assert sample_partition(4, gen, "per_frame") == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="at least 2 frames"):
        sample_partition(1, gen)


def test_fixed_partition_is_the_layout_and_draws_nothing():
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert sample_partition(8, gen, (4, 4)) == (4, 4)
    assert torch.equal(gen.get_state(), state), "a fixed partition leaves the step's other draws unchanged"
    for sizes in [(4, 3), (8,), (0, 8)]:
        with pytest.raises(ValueError, match="add up to the sample's 8 frames"):
            sample_partition(8, gen, sizes)


class Recorder(nn.Module):
    """Stands in for VideoGPT: records what the objective feeds it and predicts a fixed output."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self.config = get_preset("tiny")
        self.output = output
        self.calls = []

    def forward(self, call, clean, noisy, t):
        self.calls.append((call, clean, noisy, t))
        return self.target if self.output == "truth" else torch.zeros_like(noisy)


def test_objective_feeds_the_reference_sequence():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4, 4, 4)
    model = Recorder("truth")
    model.target = x
    loss, tokens = next_clip_loss(model, x, torch.Generator().manual_seed(5))
    call, clean, noisy, t = model.calls[0]
    sizes = [sum(1 for f in call.frames if not f.clean and f.clip == k) for k in range(6)]
    sizes = tuple(s for s in sizes if s)
    assert list(call.frames) == training_frames(sizes)
    assert tokens == 3 * len(call.frames) * call.block
    # One noise level per clip, shared by the clip's frames, in [0, 1].
    bounds = torch.tensor(sizes).cumsum(0).tolist()
    for k, end in enumerate(bounds):
        start = bounds[k - 1] if k else 0
        assert torch.all(t[:, start:end] == t[:, start : start + 1])
    assert noisy.shape == x.shape and t.shape == (3, 6) and (t >= 0).all() and (t <= 1).all()
    # The clean context is every clip but the last, noised with s in [0.9, 1]: close to x.
    assert clean.shape[1] == 6 - sizes[-1]
    assert (clean - x[:, : clean.shape[1]]).abs().max() < 0.1 * 6  # (1 - s) <= 0.1 times |eps| < 6
    assert loss.item() == 0.0  # a perfect x-prediction


def test_loss_is_the_per_frame_mse_of_noisy_frames():
    x = torch.randn(2, 4, 4, 4, 4)
    loss, _ = next_clip_loss(Recorder("zeros"), x, torch.Generator().manual_seed(1))
    expected = x.pow(2).mean(dim=(2, 3, 4)).mean()
    torch.testing.assert_close(loss, expected)
