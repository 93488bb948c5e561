import json

import pytest
from click.testing import CliRunner

from vgpt.cli.bench import bench_main
from vgpt.cli.bench import suite as bench
from vgpt.config import get_preset
from vgpt.layout import Layout

TINY = ["--model", "preset:tiny", "--layout", "3,2,4x4", "--steps", "2",
        "--scaling", "2,4", "--scaling-steps", "1", "--repeats", "1", "--warmup", "0"]  # fmt: skip


def _small_gemm(monkeypatch):
    real = bench.gemm_peak
    monkeypatch.setattr(bench, "gemm_peak", lambda size, threads, repeats: real(128, threads, 1))


@pytest.fixture(scope="module")
def tiny_bundles_two_layouts(tmp_path_factory):
    from tests.conftest import random_model
    from vgpt.codecs import LightCodec
    from vgpt.export.bundle import ExportConfig, export_bundle
    from vgpt.sampler import SamplerConfig

    model, root = random_model(get_preset("tiny")), tmp_path_factory.mktemp("bench-bundles")
    for name, (M, G) in (("a", (3, 2)), ("b", (2, 2))):
        layout = Layout.for_model(model.config, M, G, 4, 4)
        export_bundle(model, LightCodec().eval(), root / name,
                      ExportConfig(layouts=(layout,), sampler=SamplerConfig(steps=2), verify=False))  # fmt: skip
    return root / "a", root / "b"


def test_a_very_small_benchmark_writes_every_figure(tmp_path, monkeypatch):
    _small_gemm(monkeypatch)
    out = tmp_path / "bench.json"
    args = [*TINY, "--layout", "2,2", "--precision", "fp32", "--profile", "--json", str(out), "--markdown",
            str(tmp_path / "bench.md"), "--plot", str(tmp_path / "bench.png")]  # fmt: skip
    result = CliRunner().invoke(bench_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    # Each ratio is the quotient of the medians the report also holds (what a reader recomputes).
    first, extra = report["per_clip"]
    assert (first["history"], first["clip"], extra["history"], extra["clip"]) == (3, 2, 2, 2)
    assert report["speedup_cached_vs_full"] == pytest.approx(first["full"]["median"] / first["cached"]["median"])
    torch_step = report["per_graph"]["torch"]["denoise_step"]["median"]
    ort_step = report["per_graph"]["onnxruntime"]["denoise_step"]["median"]
    assert report["ort_vs_torch_step"] == pytest.approx(torch_step / ort_step)
    assert 0 <= report["host_overhead_fraction"] < 1
    assert report["scaling"]["history"] == [2, 4]
    assert len(report["scaling"]["full"]) == len(report["scaling"]["cached"]) == 2
    assert {"median", "spread", "runs"} <= set(report["per_clip"][0]["full"])
    assert {"torch", "onnxruntime"} <= set(report["per_graph"])
    assert report["settings"]["model_name"] == "tiny" and "torch" in report["versions"]
    assert report["memory"]["peak_rss_mib"] > 0
    assert report["gemm_peak"]["fp32_gflops"] > 0 and report["gemm_peak"]["int8_gflops"] > 0
    assert set(report["fraction_of_gemm_peak"]) == {"fp32"} and report["fraction_of_gemm_peak"]["fp32"] > 0
    assert "int8_vs_fp32_step" not in report  # only fp32 was timed
    # --profile: the step's kernel time by op type, from ONNX Runtime's profiler; the attention is there.
    shares = report["bundles"]["fp32"]["profile"]
    assert sum(shares.values()) == pytest.approx(1) and "Attention" in shares
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
    assert (tmp_path / "bench.png").stat().st_size > 1000
    text = (tmp_path / "bench.md").read_text()
    assert "speed-up cached vs full" in text and "fraction of GEMM peak" in text and "by op type" in text


def test_op_shares_sum_kernel_time_per_op_type():
    def event(op, dur, name="_kernel_time"):
        return {"cat": "Node", "name": f"n{dur}{name}", "dur": dur, "args": {"op_name": op}}

    events = [event("MatMul", 30), event("Attention", 50), event("MatMul", 20), event("MatMul", 99, "_fence_before"),
              {"cat": "Session", "name": "model_run", "dur": 1000}]  # fmt: skip
    assert bench.op_shares(events) == {"MatMul": 0.5, "Attention": 0.5}
    with pytest.raises(ValueError, match="no kernel time"):
        bench.op_shares(events[-2:])


def test_op_shares_leave_out_the_warm_up_runs():
    def run(ts):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": 9}

    def kernel(op, ts, dur):
        return {"cat": "Node", "name": f"n{ts}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    # The cold first run's packing (Gemm 900) would dominate; after it only the steady state counts.
    events = [run(0), kernel("Gemm", 1, 900), kernel("MatMul", 2, 10), run(10), kernel("MatMul", 11, 30),
              kernel("Attention", 12, 10)]  # fmt: skip
    assert bench.op_shares(events, skip_runs=1) == {"MatMul": 0.75, "Attention": 0.25}
    assert bench.op_shares(events)["Gemm"] == pytest.approx(900 / 950)
    with pytest.raises(ValueError, match="none is left"):
        bench.op_shares(events, skip_runs=2)


def test_a_plain_benchmark_times_fp32_and_int8_side_by_side(tmp_path, monkeypatch):
    pytest.importorskip("modelopt.torch.quantization")
    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "cache"))
    _small_gemm(monkeypatch)
    calls = []
    monkeypatch.setattr("vgpt.cli.bench.cpp.compare_cpp", lambda *a, **k: calls.append((a, k)) or
                        {"cpp_vs_python_clip": 1.5, "cpp_vs_python_step": 1.2})  # fmt: skip
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(bench_main, [*TINY, "--scaling", "2", "--cpp", "build/vgpt_bench", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["bundles"]) == {"fp32", "int8"}
    assert report["bundles"]["int8"]["precision"] == "int8"
    assert isinstance(report["int8_vs_fp32_step"], float) and report["int8_vs_fp32_step"] > 0
    assert set(report["fraction_of_gemm_peak"]) == {"fp32", "int8"}
    # --cpp: the C++ runtime is timed on the fp32 bundle, with the bench's clips and threads.
    (binary, bundle_dir), kwargs = calls[0]
    assert binary == "build/vgpt_bench" and bundle_dir.endswith("fp32") and kwargs["clips"] == 1
    assert report["cpp"]["cpp_vs_python_clip"] == 1.5 and "C++ vs Python" in result.output


def test_step_flops_spelled_out_for_a_small_case():
    config = get_preset("tiny")  # D 32, 2 layers, 4 heads of 8, MLP 64
    layout = Layout.for_model(config, 3, 2, 4, 4)  # block 6: clip 12 tokens, history 18
    per_token = 32 * 96 + 32 * 32 + 32 * 128 + 64 * 32  # qkv, o, gate_up, down
    flops = bench.step_flops(config, layout, guided=True)
    assert flops["linear"] == 2 * (12 + 12) * per_token * 2
    assert flops["attention"] == 4 * (12 * 30 + 12 * 12) * 32 * 2
    assert bench.step_flops(config, layout, guided=False)["attention"] == 4 * 12 * 30 * 32 * 2


def test_fraction_of_peak_takes_int8_projections_at_the_int8_peak():
    peak = {"fp32_gflops": 100.0, "int8_gflops": 400.0}
    flops = {"linear": 4e9, "attention": 1e9}
    assert bench.fraction_of_peak(flops, 0.1, "fp32", peak) == pytest.approx(0.5)  # 50 ms at peak / 100 ms
    assert bench.fraction_of_peak(flops, 0.1, "int8", peak) == pytest.approx(0.2)  # 10 + 10 ms / 100 ms


def test_bundles_at_different_layouts_are_refused(tiny_bundles_two_layouts):
    a, b = tiny_bundles_two_layouts
    result = CliRunner().invoke(bench_main, [*TINY, "--bundle", str(a), "--bundle", str(b)])
    assert result.exit_code == 1 and "compares bundles at one layout" in result.output, result.output


def test_repeated_runs_that_disagree_wildly_are_named_with_a_way_out(caplog):
    from vgpt.cli.bench.timing import measure, unsteady

    assert unsteady([1.0, 1.1, 1.9]) is None  # the usual jitter of a quiet machine
    problem = unsteady([8.4, 20.5, 9.7])
    assert problem is not None and "8400.0 .. 20500.0 ms (2.4x)" in problem and "--threads 1" in problem
    durations = iter([0.0, 0.0, 0.01, 0.01, 0.05])  # a run 5x slower than another

    def run():
        import time

        time.sleep(next(durations))

    measure(run, repeats=3, warmup=2, name="PyTorch step")
    assert "vgpt-bench: PyTorch step: runs disagree" in caplog.text


def test_the_live_stream_costs_by_kv_cache(tmp_path, monkeypatch):
    from vgpt.cli.bench import live as live_bench

    # The two models must be the two families (refused before anything is exported).
    bad = CliRunner().invoke(bench_main, ["--live", "--model", "preset:gpdit-tiny", "--layout", "2,2,4x4"])
    assert bad.exit_code != 0 and "compares a Video-GPT model" in bad.output
    monkeypatch.setattr(live_bench, "BUNDLED_LAYOUT", (6, 2, (4, 4)))  # the tiny presets' stand-in: one layout
    out = tmp_path / "live.json"
    args = ["--live", "--model", "preset:tiny", "--gpdit-model", "preset:gpdit-tiny", "--layout", "6,2,4x4",
            "--steps", "2", "--repeats", "1", "--warmup", "0", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(bench_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    (r,) = report["live"]["layouts"]
    assert (r["history"], r["clip"], r["latent"]) == (6, 2, [4, 4])
    assert not r["videogpt_rolling"]["exact"] and r["gpdit_rolling"]["exact"]
    # The work per observed frame in tokens: the whole window against one frame (block = 4 + 2).
    assert r["videogpt_exact"]["tokens_per_frame"] == 6 * 6 == r["gpdit_exact"]["tokens_per_frame"]
    assert r["gpdit_rolling"]["tokens_per_frame"] == 6
    ratio = r["videogpt_exact"]["per_frame"]["median"] / r["gpdit_rolling"]["per_frame"]["median"]
    assert r["exact_per_frame_ratio"] == pytest.approx(ratio)
    assert "GPDiT rolling (exact: one frame alone)" in result.output and "over GPDiT rolling" in result.output


def test_teacher_and_students_are_timed_per_clip_side_by_side(tmp_path):
    """--students: the teacher (2 steps x 2 branches here) and a K = 1 student (1 x 1) per clip at the bundled
    layout and at the --layout proportions, with the ratio of their clip times. PyTorch only (--no-onnx):
    ONNX Runtime runs the same student bundles as tests/export/test_student_bundle.py, and four exports
    would cost minutes here."""
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(bench_main, [*TINY, "--students", "1", "--students-only", "--no-onnx", "--json",
                                             str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    students = json.loads(out.read_text())["students"]
    assert set(students["layouts"]) == {"bundled", "released"}
    assert (
        students["layouts"]["released"]["history_frames"] == 3 and students["layouts"]["bundled"]["history_frames"] == 4
    )
    for layout in ("bundled", "released"):
        assert students["per_clip"][layout]["onnxruntime"] == {}
        for backend in ("torch",):
            rows = students["per_clip"][layout][backend]
            assert {name: r["network_evaluations"] for name, r in rows.items()} == {"teacher": 4, "student K=1": 1}
            ratio = students["student_vs_teacher_clip"][layout][backend]["student K=1"]
            teacher, student = rows["teacher"]["per_clip"]["median"], rows["student K=1"]["per_clip"]["median"]
            assert ratio == pytest.approx(teacher / student)
    assert "torch: student K=1 (1 NFE) |" in result.output and "faster than the teacher" in result.output
    assert "per clip, history" not in result.output  # --students-only: nothing else was timed
    bad = CliRunner().invoke(bench_main, [*TINY, "--students", "3"])
    assert bad.exit_code == 2 and "choose from [1, 2, 4]" in bad.output
