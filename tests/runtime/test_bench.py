import json

from click.testing import CliRunner

from vgpt.runtime.cli import bench_main


def test_a_very_small_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--model", "preset:tiny", "--history", "3", "--clip", "2", "--latent-size", "4x4", "--steps", "2",
            "--scaling", "2,4", "--scaling-steps", "1", "--repeats", "1", "--warmup", "0", "--json", str(out),
            "--markdown", str(tmp_path / "bench.md"), "--plot", str(tmp_path / "bench.png")]  # fmt: skip
    result = CliRunner().invoke(bench_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    for key in ("speedup_cached_vs_full", "ort_vs_torch_step", "host_overhead_fraction"):
        assert isinstance(report[key], float) and report[key] >= 0, key
    assert 0 <= report["host_overhead_fraction"] < 1
    assert report["scaling"]["history"] == [2, 4]
    assert len(report["scaling"]["full"]) == len(report["scaling"]["cached"]) == 2
    assert {"median", "spread", "runs"} <= set(report["per_clip"][0]["full"])
    assert {"torch", "onnxruntime"} <= set(report["per_graph"])
    assert report["settings"]["model_name"] == "tiny" and "torch" in report["versions"]
    assert report["memory"]["peak_rss_mib"] > 0
    assert (tmp_path / "bench.png").stat().st_size > 1000
    assert "speed-up cached vs full" in (tmp_path / "bench.md").read_text()
