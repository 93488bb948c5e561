"""Student bundles: a distilled K-step student exports, verifies and runs with one branch at its own table."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vgpt.checkpoint import content_hash, save_checkpoint
from vgpt.export.bundle import ExportConfig
from vgpt.export.contract import BundleError, SamplerRecord, _bundle_reader
from vgpt.export.manifest import load_bundle
from vgpt.export.spec import DENOISE, PREFILL
from vgpt.layout import Layout
from vgpt.predictors import CachedPredictor
from vgpt.sampler import schedule
from vgpt.student import StudentSampler, student_indices

from .conftest import SAMPLER
from .test_bundle import run_bundle_loop

TEACHER_STEPS, K = 5, 2  # indices 0, 2, 5 of 5: not the 2-step shifted schedule


def student_record(model) -> StudentSampler:
    table = schedule(TEACHER_STEPS, 1.5)[student_indices(TEACHER_STEPS, K)].tolist()
    return StudentSampler(tuple(table), 2.0, 1.5, TEACHER_STEPS, content_hash(model.state_dict()), "self_forcing")


@pytest.fixture(scope="module")
def student_folder(tiny_parts, tmp_path_factory):
    """A folder laid out like the bundled default that ships the teacher and a student."""
    model, codec = tiny_parts
    root = tmp_path_factory.mktemp("bundled")
    save_checkpoint(model, root / "model")
    save_checkpoint(model, root / "student", extra={"student": student_record(model).to_dict()})
    codec.save(root / "codec")
    settings = {"history": 3, "clip": 2, "height": 32, "width": 32, "steps": TEACHER_STEPS, "guidance": 2.0,
                "shift": 1.5}  # fmt: skip
    (root / "defaults.json").write_text(json.dumps(settings))
    return root


@pytest.fixture(scope="module")
def student(student_folder, tmp_path_factory):
    """The student exported by vgpt-export, verified (ONNX Runtime against eager on every graph, as for
    teachers); returns its record, the bundle and the command's output."""
    from vgpt.cli.export import export_main

    out = tmp_path_factory.mktemp("student") / "bundle"
    result = CliRunner().invoke(export_main, ["--checkpoint", str(student_folder / "student"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return load_bundle(out).manifest.sampler.student, out, result.output


def test_the_manifest_records_the_table_the_distilled_guidance_and_the_teacher(student):
    record, out, _ = student
    manifest = load_bundle(out).manifest
    sampler = manifest.sampler
    assert sampler.student == record and sampler.distilled
    assert (sampler.steps, sampler.guidance) == (K, 1.0)  # one branch
    assert sampler.student.guidance == 2.0 and sampler.student.distilled_from == record.distilled_from
    assert sampler.schedule == pytest.approx(record.timesteps, abs=1e-7)  # the table, not the shifted schedule
    assert sampler.schedule != pytest.approx(schedule(K, 1.5).tolist())
    assert sampler.config == record.sampler()
    assert manifest.verified and all(e["passed"] for g in manifest.layout().graphs.values() for e in g.verification)
    document = json.loads((out / "manifest.json").read_text())
    raw = document["sampler"]["student"]
    assert raw["distilled_from"] == record.distilled_from and raw["teacher_steps"] == TEACHER_STEPS
    from .test_contract import _validator

    _validator().validate(document)  # docs/manifest.schema.json describes student bundles too


def test_the_denoising_graph_runs_one_branch(student, tiny_bundle):
    """The same network and layout: the guided teacher's step makes two network calls, the student's one,
    so it holds half the attention and matrix products."""
    _, out, _ = student
    one, two = (load_bundle(p).manifest.layout("m3-g2-4x4").graphs for p in (out, tiny_bundle))
    for op in ("Attention", "MatMul"):
        assert 2 * one[DENOISE].ops[op] == two[DENOISE].ops[op] > 0, op
    assert one[PREFILL].ops == two[PREFILL].ops


def test_the_student_bundle_reproduces_the_cached_predictor_at_its_table(tiny_parts, student):
    model, _ = tiny_parts
    record, out, _ = student
    entry = load_bundle(out).layout()
    lay = entry.layout
    history = torch.randn(1, lay.history_frames, 4, lay.latent_height, lay.latent_width,
                          generator=torch.Generator().manual_seed(4))  # fmt: skip
    expected = CachedPredictor(model, record.sampler(), window=lay.history_frames).predict(
        history, 1, lay.clip_frames, torch.Generator().manual_seed(9)
    )
    z0 = torch.randn(expected.shape, generator=torch.Generator().manual_seed(9))
    got = run_bundle_loop(entry, history.numpy(), z0.numpy(), K)
    # fp32 kernels of ONNX Runtime vs PyTorch (~1e-6 per op) through 2 steps: as for teachers
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=0)


def test_a_record_that_disagrees_with_the_graphs_is_refused(student):
    _, out, _ = student
    good = load_bundle(out).manifest.sampler.to_dict()
    reader = _bundle_reader("manifest.json")
    assert SamplerRecord.from_dict(good, reader) == load_bundle(out).manifest.sampler
    for change, message in ((lambda d: d.update(guidance=2.0), "one branch"),
                            (lambda d: d["schedule"].__setitem__(1, 0.5), "the student's table"),
                            (lambda d: d["student"].pop("distilled_from"), "lacks"),
                            (lambda d: d["student"].update(timesteps=[0.0, 1.0]), "student")):  # fmt: skip
        data = json.loads(json.dumps(good))
        change(data)
        with pytest.raises(BundleError, match=message):
            SamplerRecord.from_dict(data, reader)


def test_export_config_takes_the_students_own_sampler(tiny_parts):
    model, _ = tiny_parts
    record = student_record(model)
    layout = Layout.for_model(model.config, 3, 2, 4, 4)
    with pytest.raises(ValueError, match=r"pass sampler=student\.sampler\(\)"):
        ExportConfig(layouts=(layout,), sampler=SAMPLER, student=record)


def test_vgpt_build_takes_a_student_bundle_and_its_engines_json_keeps_the_record(student, tmp_path, monkeypatch):
    """The TensorRT-free part of vgpt-build: the bundle is accepted up to the missing TensorRT, and the
    engine manifest it would write carries the student record through JSON."""
    import sys

    from vgpt.cli.build import build_main
    from vgpt.engines.manifest import engine_manifest
    from vgpt.engines.settings import build_settings
    from vgpt.export.contract import EngineFile, EngineManifest

    record, out, _ = student
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = CliRunner().invoke(build_main, ["--bundle", str(out), "--out", str(tmp_path / "engines")])
    assert result.exit_code == 1 and "TensorRT is not installed" in result.output, result.output
    manifest = load_bundle(out).manifest
    plans = {g: EngineFile(f"{g}.plan", 1, "0" * 64) for g in ("encoder", "prefill", "denoise", "decoder")}
    settings = build_settings("fp32", "float32", "fp32", (10, 15))
    engines = engine_manifest(manifest, out, manifest.layout().name, settings, "10.15.1", "NVIDIA H100", (9, 0),
                              plans, {})  # fmt: skip
    assert EngineManifest.from_dict(json.loads(json.dumps(engines.to_dict()))).sampler.student == record


def test_vgpt_export_writes_a_student_bundle_and_refuses_a_teachers_sampler(tiny_parts, student, student_folder,
                                                                            tmp_path):  # fmt: skip
    from vgpt.cli.export import export_main

    record, _, output = student
    assert record == student_record(tiny_parts[0])
    assert f"({K} steps, guidance 1.0 distilled from {record.distilled_from[:12]}..." in output
    ckpt = str(student_folder / "student")
    result = CliRunner().invoke(export_main, ["--checkpoint", ckpt, "--out", str(tmp_path / "c"), "--steps", "5"])
    assert result.exit_code == 1 and "--steps 5: " in result.output and "is a student distilled to 2" in result.output
    assert not (tmp_path / "c").exists()


def test_the_runtime_runs_a_student_on_both_backends_and_the_bundled_choice(student_folder, monkeypatch, tmp_path):
    from vgpt.runtime import load_predictor
    from vgpt.synthetic import SceneConfig, render_video

    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "cache"))
    frames = render_video(3, SceneConfig(32, 32, 3))
    predictions = {}
    for backend in ("onnxruntime", "torch"):
        predictor = load_predictor(student_folder, backend=backend, model="student", seed=0)
        assert predictor.backend.steps == K
        predictor.observe(frames)
        predictions[backend] = predictor.predict(1, return_latents=True).latents
    # ONNX Runtime against eager PyTorch through the same graphs, 2 steps: fp32 round-off
    np.testing.assert_allclose(predictions["onnxruntime"], predictions["torch"], atol=1e-4)
    teacher = load_predictor(student_folder, backend="torch", model="teacher")
    assert teacher.backend.steps == TEACHER_STEPS
    # without a recorded comparison the teacher stays the default
    assert load_predictor(student_folder, backend="torch").backend.steps == TEACHER_STEPS
    with pytest.raises(Exception, match=r"--steps 5: .* is a student distilled to 2 steps"):
        load_predictor(student_folder / "student", backend="torch", steps=5)


def test_vgpt_eval_runs_a_student_bundle(student, tmp_path):
    from vgpt.cli.eval import eval_main

    record, out, _ = student
    result = CliRunner().invoke(eval_main, ["--bundle", str(out), "--count", "2", "--num-clips", "2", "--json",
                                            str(tmp_path / "e.json"), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert (report["steps"], report["guidance"], report["network_evaluations"]) == (K, 1.0, K)
    assert StudentSampler.from_dict(report["distilled"]) == record


def test_a_students_cached_export_is_reused(student_folder, tmp_path, monkeypatch):
    """The cache key holds the student's record; read back from the manifest it must compare equal, or every
    run would export the student again (it did: its timesteps were a tuple in the key, a list on disk)."""
    from vgpt.runtime import loading

    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "cache"))
    first = loading.cached_export(student_folder / "student", None, None)
    exports = []
    monkeypatch.setattr("vgpt.export.bundle.export_bundle", lambda *a, **k: exports.append(a))
    assert loading.cached_export(student_folder / "student", None, None) == first
    assert exports == [], "the second use exported the student again"
