"""Why a ball is missed: each scored ball that a prediction does not show (`vgpt.metrics.score_objects`)
is put down to one cause, so that a run says which failure dominates at each horizon.

The causes, tested in this order; the first that holds is the cause (docs/bundled-model.md):

1. "codec": the codec round trip of the true future misses the ball too, so no latent prediction
   decoded by this codec could show it.
2. "place": the ball's colour is shown elsewhere: the presence rule passes with its search disc
   centred on some other pixel.
3. "colour": at the ball's place a blob at least as large as presence asks (30% of the ball's
   visible area, `metrics.PRESENT_FRACTION`), mostly of foreign colours: neither the ball's nor a
   blend of it with the background or pillar, and not the background or pillar either.
4. "faded": that blob, mostly of blends of the ball's colours with the background or pillar at least
   `FAINTEST` of the way to the ball: a faded or blurred ball of the right hue.
5. "vanished": none of these: nothing of a ball's size at its place, and its colour nowhere else.

"At its place" is the search disc of the presence rule (`metrics.SEARCH_RADII` radii around the true
centre) less the pixels where the truth shows another ball (those are that ball's to show).
"""

from __future__ import annotations

import numpy as np

from vgpt.metrics import PRESENT_FRACTION, SEARCH_RADII, Palette, _pixel_grid, _segment_distance, score_objects
from vgpt.synthetic import SceneObjects

CAUSES = ("codec", "place", "colour", "faded", "vanished")
NOT_SCORED = -1
PRESENT = 0  # cause k of CAUSES is code k + 1
# A blend less than a quarter of the way from the backdrop to the ball shows the backdrop: the same
# quarter of the contrast as the presence rule's tolerance (`metrics.BLEND_TOLERANCE`), from the other end.
FAINTEST = 0.25
# Blend fractions sampled between FAINTEST and 1: their spacing (0.05 of the contrast) keeps the
# distance to the blends within 0.025 of the contrast, a tenth of the tolerance it is compared with.
_BLEND_STEPS = 16


def _backdrops(palette: Palette) -> np.ndarray:
    """[k, 3]: the flat colours a ball can fade into (the background, the pillar where there is one)."""
    return np.stack([palette.background] if palette.pillar is None else [palette.background, palette.pillar])


def _blend_distance(pixels: np.ndarray, colour: np.ndarray, backdrops: np.ndarray) -> np.ndarray:
    """[P, 3] -> [P]: RGB distance to the nearest blend (1 - a) * backdrop + a * shade of the ball's colours,
    a in [FAINTEST, 1]."""
    a = np.linspace(FAINTEST, 1, _BLEND_STEPS)
    d = [_segment_distance(pixels - (1 - s) * k, s * colour[None])[:, 0] for s in a for k in backdrops]
    return np.min(d, axis=0)


def _disc_counts(mask: np.ndarray, radius: float) -> np.ndarray:
    """[H, W] bool -> [H, W]: how many pixels of `mask` lie within `radius` of each pixel's centre."""
    H, W = mask.shape
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    kernel = (np.hypot(dx, dy) <= radius).astype(float)  # [2r + 1, 2r + 1]
    shape = (H + 2 * r, W + 2 * r)  # zero padding: no wrap-around
    full = np.fft.irfft2(np.fft.rfft2(mask.astype(float), shape) * np.fft.rfft2(kernel, shape), shape)
    return np.rint(full[r : r + H, r : r + W])  # the kernel is symmetric: correlation = convolution


def miss_causes(predicted: np.ndarray, truth: np.ndarray, scene: SceneObjects, first: int,
                round_trip: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Predicted frames [F, H, W, 3] against the true frames of `scene` from frame `first`, with the
    codec round trip of the truth where there is one -> [F, n] int: NOT_SCORED, PRESENT, or k + 1 for
    a ball missed for CAUSES[k]. Without a round trip the codec cause is never given."""
    model = score_objects(predicted, truth, scene, first)
    codec_present = None if round_trip is None else score_objects(round_trip, truth, scene, first).present
    palette = Palette.of(scene)
    backdrops = _backdrops(palette)
    tolerance = palette.tolerance
    n = len(scene.radius)
    xs, ys = _pixel_grid(*predicted.shape[1:3])
    codes = np.where(model.present, PRESENT, NOT_SCORED)
    labelled = {}  # frame -> its labels, for the frames with a miss
    for f, i in zip(*np.nonzero(model.scored & ~model.present), strict=True):
        needed = PRESENT_FRACTION * scene.visible[first + f, i].sum()
        if f not in labelled:
            labelled[f] = palette.labels(predicted[f])
        labels = labelled[f]
        cx, cy = scene.centre[first + f, i]
        others = np.delete(scene.visible[first + f], i, axis=0).any(axis=0)
        place = (np.hypot(xs - cx, ys - cy) <= SEARCH_RADII * scene.radius[i]) & ~others
        pixels = predicted[f][place & (labels != i)]  # [P, 3]
        # Neither the background nor the pillar: labelled as neither, and beyond the tolerance from both.
        seen = ~np.isin(labels[place & (labels != i)], (n, n + 1))
        seen &= np.linalg.norm(pixels[:, None] - backdrops, axis=-1).min(-1) > tolerance[i]
        faded = seen & (_blend_distance(pixels, palette.balls[i], backdrops) <= tolerance[i])
        foreign = seen & ~faded
        own = int((place & (labels == i)).sum())
        if codec_present is not None and not codec_present[f, i]:
            cause = "codec"
        elif (_disc_counts(labels == i, SEARCH_RADII * scene.radius[i]) >= needed).any():
            cause = "place"
        elif own + faded.sum() + foreign.sum() >= needed:
            cause = "colour" if foreign.sum() >= faded.sum() else "faded"
        else:
            cause = "vanished"
        codes[f, i] = CAUSES.index(cause) + 1
    return codes


def summarise_misses(codes: list[np.ndarray]) -> dict:
    """Clips' codes (the same number of frames each) -> by horizon and overall: each cause's share of the
    scored balls (with presence they add up to 1), the counts, and the cause of most misses."""
    codes = np.concatenate(codes, axis=1)  # [F, balls of all clips]
    scored = (codes != NOT_SCORED).sum(axis=1)  # [F]
    counts = {c: (codes == k + 1).sum(axis=1) for k, c in enumerate(CAUSES)}  # [F] each

    def share(count: np.ndarray, total: np.ndarray) -> list[float | None]:
        return [float(c / t) if t else None for c, t in zip(count, total, strict=True)]

    def dominant(j: int | slice) -> str | None:
        most = max(CAUSES, key=lambda c: counts[c][j].sum())
        return most if counts[most][j].sum() else None

    total = scored.sum()
    return {
        "causes": list(CAUSES),
        "by_horizon": {c: share(counts[c], scored) for c in CAUSES},
        "counts_by_horizon": {c: counts[c].tolist() for c in CAUSES},
        "dominant_by_horizon": [dominant(j) for j in range(len(codes))],
        "overall": {c: float(counts[c].sum() / total) if total else None for c in CAUSES},
        "dominant": dominant(slice(None)),
        "missed": int(sum(counts[c].sum() for c in CAUSES)),
    }
