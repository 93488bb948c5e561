import pytest
import torch
from torch import nn

from vgpt.config import get_preset
from vgpt.sampler import shift_time
from vgpt.tokens import training_frames
from vgpt.training.objective import foreground_weights, next_clip_loss, sample_partition


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


def _scene(batch=2, frames=4, channels=4, size=8):
    """Latents of a plain background with one 2 x 2 'object' per frame at a different place."""
    x = torch.full((batch, frames, channels, size, size), 0.3)
    x += 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for f in range(frames):
        x[:, f, :, f : f + 2, 2:4] = torch.tensor([2.0, -1.0, 1.5, 0.5])[:, None, None]
    return x


def test_foreground_weights_favour_objects_and_keep_the_frame_mean():
    x = _scene()
    w = foreground_weights(x, 4.0)
    assert w.shape == (2, 4, 8, 8)
    # Mean 1 over each frame's positions, so the loss keeps its scale whatever the weight.
    torch.testing.assert_close(w.mean(dim=(2, 3)), torch.ones(2, 4))
    for f in range(4):
        inside = w[:, f, f : f + 2, 2:4]
        outside = torch.cat([w[:, f, :f].flatten(1), w[:, f, f + 2 :].flatten(1)], dim=1)
        assert inside.min() > 3.0 and outside.max() < 0.25  # the object's 4 positions of 64 carry most weight
    # A frame with nothing on its background keeps the plain mean.
    torch.testing.assert_close(foreground_weights(torch.full((1, 2, 4, 8, 8), 0.3), 4.0), torch.ones(1, 2, 8, 8))


def test_foreground_weighted_loss_charges_an_object_more_than_the_background():
    x = _scene()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731  same draws for every call
    for weight in (0.0, 4.0):
        model = Recorder("truth")
        model.target = x.clone()
        model.target[:, :, :, 0, 7] += 1.0  # background error: one position of every frame
        background, _ = next_clip_loss(model, x, gen(), foreground_weight=weight)
        model.target = x.clone()
        model.target[:, :, :, 1, 2] += 1.0  # the same error on the object (frames 0 and 1 hold it there)
        on_object, _ = next_clip_loss(model, x, gen(), foreground_weight=weight)
        if weight == 0:
            torch.testing.assert_close(on_object, background)  # the plain mean: a position is a position
        else:
            assert on_object > 5 * background
    # The weighted loss is the weighted per-frame mean, written out.
    model = Recorder("zeros")
    loss, _ = next_clip_loss(model, x, gen(), foreground_weight=4.0)
    expected = (x.pow(2) * foreground_weights(x, 4.0)[:, :, None]).mean(dim=(2, 3, 4)).mean()
    torch.testing.assert_close(loss, expected)


def test_timestep_shift_draws_noise_levels_as_the_shifted_sampler_spaces_its_steps():
    x = torch.randn(64, 8, 4, 4, 4)
    drawn = {}
    for shift in (1.0, 3.0):
        model = Recorder("zeros")
        next_clip_loss(model, x, torch.Generator().manual_seed(2), (4, 4), timestep_shift=shift)
        drawn[shift] = model.calls[0][3]
    torch.testing.assert_close(drawn[3.0], shift_time(drawn[1.0], 3.0))  # the same draws, shifted
    # shift 3 puts half the clips below t = 0.25 (noisier), where the uniform draw puts a quarter
    assert (drawn[1.0] < 0.25).float().mean() < 0.35 < (drawn[3.0] < 0.25).float().mean()
