import collections
import threading

import numpy as np
import pytest
import torch

from vgpt.checkpoint import load_checkpoint
from vgpt.codecs import load_codec
from vgpt.export.manifest import BundleError
from vgpt.frames import fit_frames
from vgpt.predictors import CachedPredictor
from vgpt.runtime.loading import cache_root
from vgpt.runtime.predictor import NotEnoughHistoryError, load_model, load_predictor
from vgpt.sampler import SamplerConfig
from vgpt.synthetic import SceneConfig, render_video

from .conftest import SETTINGS


def _frames(n=6):
    return render_video(3, SceneConfig(height=32, width=32, frames=n))


def test_onnxruntime_backend_reproduces_the_cached_reference(model_folder):
    predictor = load_predictor(model_folder, "onnxruntime", threads=1)
    frames = _frames()
    predictor.observe(frames[:3])
    got = predictor.predict(2, torch.Generator().manual_seed(5), return_latents=True)
    # The reference: the PyTorch cached predictor on the codec's latents of the same frames.
    model = load_checkpoint(model_folder / "model").model
    codec = load_codec(model_folder / "codec")
    with torch.no_grad():
        history = codec.encode(fit_frames(frames[:3], 32, 32))[None]
    sampler = SamplerConfig(steps=SETTINGS["steps"], guidance=SETTINGS["guidance"])
    expected = CachedPredictor(model, sampler, window=3).predict(history, 2, 2, torch.Generator().manual_seed(5))
    # ONNX Runtime vs PyTorch fp32 kernels, 3 steps of x-to-velocity (<= 3x amplification), 2 clips
    # autoregressively: ~1e-5 on O(1) latents; 1e-4 bounds it.
    np.testing.assert_allclose(got.latents, expected[0].numpy(), atol=1e-4, rtol=0)
    assert got.frames.shape == (4, 32, 32, 3) and got.frames.dtype == np.uint8
    assert got.seconds_per_step > 0 and set(got.timings) == {"prefill", "denoise", "decode"}


def test_torch_and_onnxruntime_backends_agree(model_folder):
    outs = []
    for backend in ("torch", "onnxruntime"):
        p = load_predictor(model_folder, backend)
        p.observe(_frames()[:3])
        outs.append(p.predict(1, torch.Generator().manual_seed(1), return_latents=True).latents)
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-4, rtol=0)  # as above


def test_history_and_threads(model_folder):
    p = load_predictor(model_folder)
    with pytest.raises(NotEnoughHistoryError, match=r"needs 3 observed frames .*only 1 so far"):
        p.observe(_frames()[0])
        p.predict()
    frames = _frames(30)
    errors, results = [], []

    def producer():
        for f in frames:
            p.observe(f)

    def consumer():
        try:
            while len(results) < 5:
                if p.ready:
                    results.append(p.predict(1, torch.Generator().manual_seed(0)).frames.shape)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and results == [(2, 32, 32, 3)] * 5
    assert p.observed == 31


def test_observe_from_several_threads_never_mixes_frames():
    """Two capture threads observe at once, each its own frame, many times: every history latent must be
    exactly the encoding of one of the two frames. Before encoding was guarded the threads shared the
    encoder's input and output buffers, and on the bundled model (an encoder slow enough for the threads
    to overlap) about 2% of the latents were a mix of both."""
    p = load_predictor(None, threads=1)
    p._history = collections.deque()  # keep every latent, not only the newest M, so that all are checked
    a, b = _frames(2)
    encoded = {}
    for name, frame in (("a", a), ("b", b)):
        p.observe(frame)
        encoded[name] = p._history[-1].copy()
    assert not np.array_equal(encoded["a"], encoded["b"])

    def capture(frame):
        start.wait()
        for _ in range(300):
            p.observe(frame)

    threads = [threading.Thread(target=capture, args=(f,)) for f in (a, b)]
    start = threading.Barrier(2)
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    # Bitwise: the same graph on the same input gives the same bits.
    wrong = [x for x in p._history if not any(np.array_equal(x, e) for e in encoded.values())]
    assert p.observed == 602 and not wrong, f"{len(wrong)} of 600 latents are not the encoding of either frame"


class _HeldDenoise:
    """A backend whose denoising loop waits until released: a prediction that is "running" for as long
    as the test wants, with no timing involved."""

    def __init__(self, backend):
        self._backend, self.entered, self.release = backend, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def denoise(self, z):
        self.entered.set()
        assert self.release.wait(timeout=120), "the test never released the prediction"
        return self._backend.denoise(z)


def test_observe_does_not_wait_for_a_running_prediction(model_folder):
    from vgpt.runtime.predictor import VideoPredictor

    held = _HeldDenoise(load_predictor(model_folder, threads=1).backend)
    p = VideoPredictor(held)
    frames = _frames(6)
    p.observe(frames[:3])
    result = []
    predicting = threading.Thread(target=lambda: result.append(p.predict(1, torch.Generator().manual_seed(0))))
    predicting.start()
    try:
        assert held.entered.wait(timeout=120)
        # The prediction is inside its denoising loop (holding the backend): observing must complete.
        observing = threading.Thread(target=p.observe, args=(frames[3:],))
        observing.start()
        observing.join(timeout=60)
        assert not observing.is_alive(), "observe() waited for the running prediction"
        assert p.observed == 6 and not result
    finally:
        held.release.set()
        predicting.join(timeout=120)
    assert result and result[0].frames.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_four_streams_on_one_model_from_four_threads_equal_four_predictors(model_folder, backend):
    """Four cameras share one loaded model (one set of sessions or modules); each stream has its own
    history, KV cache and buffers. Run from four threads at once, each must predict exactly what a
    predictor of its own predicts."""
    scenes = [render_video(20 + i, SceneConfig(height=32, width=32, frames=7)) for i in range(4)]

    def predict(p, frames, seed):
        out = []
        for start in range(0, 4, 2):  # observe, predict, observe more, predict again
            p.observe(frames[start : start + 3])
            out.append(p.predict(2, torch.Generator().manual_seed(seed), return_latents=True).latents)
        return np.concatenate(out)

    alone = [predict(load_predictor(model_folder, backend, threads=1), f, i) for i, f in enumerate(scenes)]
    model = load_model(model_folder, backend, threads=1)
    streams = [model.stream() for _ in scenes]
    shared, errors, start = [None] * 4, [], threading.Barrier(4)

    def camera(i):
        try:
            start.wait()
            shared[i] = predict(streams[i], scenes[i], i)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert len({id(s.backend) for s in streams}) == 4, "each stream owns its buffers"
    shared_part = "_sessions" if backend == "onnxruntime" else "_denoise"
    assert len({id(getattr(s.backend, shared_part)) for s in streams}) == 1, "one copy of the model"
    for got, expected in zip(shared, alone, strict=True):
        # The same graphs on the same inputs; ONNX Runtime and PyTorch may split sums differently between
        # runs by thread count and timing: fp32 round-off, 1e-5 on O(1) latents.
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_stream_predicts_every_clip_from_a_live_generator(model_folder):
    p = load_predictor(model_folder)
    seen = [(count, pred.frames.shape) for count, pred in p.stream(iter(_frames(9)))]
    # History 3 is ready at frame 3; then a clip every G = 2 frames: at 3 (ready, 3 >= 2), 5, 7, 9.
    assert [c for c, _ in seen] == [3, 5, 7, 9] and all(s == (2, 32, 32, 3) for _, s in seen)


def test_cached_export_is_reused_and_refreshed(model_folder, tmp_path):
    load_predictor(model_folder)
    exports = list(cache_root().iterdir())
    load_predictor(model_folder)
    assert list(cache_root().iterdir()) == exports, "the second load reuses the cached export"
    with pytest.raises(BundleError, match="exported with steps=3, not 5"):
        load_predictor(exports[0], steps=5)


def test_concurrent_first_runs_export_once(model_folder, tmp_path, monkeypatch):
    """Three first runs at once (a fleet of camera processes starting together): one exports under the
    cache's file lock, the others wait and reuse its bundle. Threads take the lock as processes do
    (flock locks belong to each open file)."""
    import vgpt.export.bundle as bundle_module
    from vgpt.runtime.loading import cached_export

    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "cache"))
    exports, real = [], bundle_module.export_bundle

    def counted(*args, **kwargs):
        exports.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(bundle_module, "export_bundle", counted)
    results, errors = [], []

    def first_run():
        try:
            results.append(cached_export(model_folder, None, None))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=first_run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and len(results) == 3 and len(set(results)) == 1
    assert len(exports) == 1, f"exported {len(exports)} times"


def test_onnxruntime_backend_reproduces_the_cached_reference_on_the_default_model():
    from vgpt.default_model import default_model

    default = default_model()
    s = default.settings
    predictor = load_predictor(None, "onnxruntime")
    frames = render_video(1_000_123, SceneConfig(frames=s["history"]))
    predictor.observe(frames)
    got = predictor.predict(1, torch.Generator().manual_seed(11), return_latents=True)
    model, codec = load_checkpoint(default.model_dir).model, load_codec(default.codec_dir)
    with torch.no_grad():
        history = codec.encode(fit_frames(frames, s["height"], s["width"]))[None]
    sampler = SamplerConfig(steps=s["steps"], guidance=s["guidance"], shift=s["shift"])
    expected = CachedPredictor(model, sampler, window=s["history"]).predict(
        history, 1, s["clip"], torch.Generator().manual_seed(11)
    )
    # 50 steps of ONNX Runtime against PyTorch fp32 kernels on the bundled model: each step adds
    # dt = 1/50 of a velocity whose error is ~1e-6 relative; seen ~1e-5 on latents of magnitude ~3.
    np.testing.assert_allclose(got.latents, expected[0].numpy(), atol=5e-4, rtol=0)


def test_a_bundle_from_a_newer_onnxruntime_is_refused(model_folder, tmp_path):
    import json
    import shutil

    load_predictor(model_folder)
    copy = tmp_path / "bundle"
    from vgpt.export.contract import MANIFEST_HASH
    from vgpt.integrity import canonical_sha256

    shutil.copytree(next(p for p in cache_root().iterdir() if p.is_dir()), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["versions"]["onnxruntime"] = "99.0.0"
    manifest[MANIFEST_HASH] = canonical_sha256(manifest, MANIFEST_HASH)  # as a newer vgpt would have written it
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception, match=r"verified with onnxruntime 99\.0\.0, newer than the installed"):
        load_predictor(copy)


def test_rolling_mode_on_a_bundle_without_append_is_one_clear_error(model_folder, tmp_path):
    import json
    import shutil

    from click.testing import CliRunner

    from vgpt.cli.run import run_main
    from vgpt.export.contract import MANIFEST_HASH
    from vgpt.integrity import canonical_sha256

    load_predictor(model_folder)
    copy = tmp_path / "bundle"
    shutil.copytree(next(p for p in cache_root().iterdir() if p.is_dir()), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 2  # a bundle from before rolling mode: no append graph, no binding plan
    for layout in manifest["layouts"]:
        del layout["graphs"]["append"], layout["bindings"]
        (copy / layout["name"] / "append.onnx").unlink()
    manifest[MANIFEST_HASH] = canonical_sha256(manifest, MANIFEST_HASH)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert load_predictor(copy).ready is False  # the exact mode still loads
    from vgpt.video import write_video

    video = str(tmp_path / "in.mp4")  # the input is opened before the model loads: it must be real
    write_video(video, render_video(0, SceneConfig(height=32, width=32, frames=8)))
    result = CliRunner().invoke(run_main, ["--input", video, "--engine", str(copy), "--kv-cache", "rolling",
                                           "--output", str(tmp_path / "o.mp4")])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "has none: re-export the bundle" in result.output and "--kv-cache exact" in result.output


def test_observe_takes_views_with_negative_strides_and_refuses_empty_images(model_folder):
    frames = render_video(5, SceneConfig(height=32, width=32, frames=3))
    bgr = np.ascontiguousarray(frames[..., ::-1])
    flipped, copied = load_predictor(model_folder), load_predictor(model_folder)
    for frame in bgr:
        flipped.observe(frame[:, :, ::-1])  # BGR to RGB as a view, as OpenCV users write it
        copied.observe(np.ascontiguousarray(frame[:, :, ::-1]))
    generator = [torch.Generator().manual_seed(0) for _ in range(2)]
    assert np.array_equal(flipped.predict(1, generator[0]).frames, copied.predict(1, generator[1]).frames)
    from vgpt.frames import FrameSizeError

    for empty in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 32, 3), np.uint8), np.zeros((2, 32, 0, 3), np.uint8)):
        with pytest.raises(FrameSizeError, match="are empty"):
            flipped.observe(empty)
    assert flipped.observed == 3


_SEEDED_RUN = """
import hashlib, sys
from vgpt.runtime import load_predictor
from vgpt.synthetic import SceneConfig, render_video

predictor = load_predictor(sys.argv[1], seed=int(sys.argv[2]))
frames = render_video(3, SceneConfig(height=32, width=32, frames=6))
predictor.observe(frames[:3])
print(hashlib.sha256(predictor.predict(num_clips=2).frames.tobytes()).hexdigest())
"""


def test_a_seeded_predictor_predicts_the_same_frames_in_two_processes(model_folder):
    # The README's snippet with seed=: two processes (two robots, or a rerun) must agree bit for bit;
    # without a stream seed each process drew its noise from torch's randomly seeded global generator.
    import subprocess
    import sys

    def run(seed):
        done = subprocess.run([sys.executable, "-c", _SEEDED_RUN, str(model_folder), str(seed)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    first = run(7)
    assert run(7) == first
    assert run(8) != first


def test_two_streams_with_one_seed_fed_the_same_frames_predict_the_same(model_folder):
    model = load_model(model_folder)
    left, right = model.stream(seed=5), model.stream(seed=5)
    frames = _frames(6)
    for stream in (left, right):
        stream.observe(frames[:3])
    first = left.predict().frames
    assert np.array_equal(first, right.predict().frames)
    second = left.predict().frames
    assert not np.array_equal(first, second), "the stream's generator moves on between predictions"
    left.reset()
    left.observe(frames[:3])
    assert np.array_equal(left.predict().frames, first), "reset() restarts the noise from the stream's seed"
    other = model.stream(seed=6)
    other.observe(frames[:3])
    assert not np.array_equal(other.predict().frames, first)
