"""The one clip loop: each clip is predicted from the window as it stands, then joins it."""

import numpy as np
import torch

from vgpt.clips import roll_clips


def test_each_clip_sees_the_newest_frames_and_its_own_generator():
    seen = []

    def predict(window, generator):  # a clip of 2 frames: the window's last value + 1, + 2
        seen.append((window[0, :, 0].tolist(), generator))
        last = window[:, -1:]
        return np.concatenate([last + 1, last + 2], axis=1)

    window = np.arange(3, dtype=np.float32).reshape(1, 3, 1)  # frames 0, 1, 2
    ticks = []
    clips = roll_clips(window, ["g0", "g1", "g2"], predict, keep=3, on_clip=ticks.append)
    assert seen == [([0, 1, 2], "g0"), ([2, 3, 4], "g1"), ([4, 5, 6], "g2")]  # the newest 3 frames each time
    assert np.concatenate(clips, axis=1)[0, :, 0].tolist() == [3, 4, 5, 6, 7, 8] and ticks == [1, 2, 3]


def test_without_keep_the_window_grows_and_tensors_work_alike():
    lengths = []

    def predict(window, generator):
        lengths.append(window.shape[1])
        return torch.randn((1, 2, 1), generator=generator)

    gen = torch.Generator().manual_seed(0)
    clips = roll_clips(torch.zeros(1, 3, 1), [gen, gen], predict)
    assert lengths == [3, 5] and torch.cat(clips, dim=1).shape == (1, 4, 1)
