"""vgpt.cli.bench.cpp: the report's reduction and ratios always; the Python side on the tiny model's bundle;
the comparison with the C++ runtime only where vgpt_bench was built (scripts/cpp_test.sh builds it)."""

import json
import os
from pathlib import Path

import pytest

from vgpt.cli.bench.cpp import RUNTIME_KEYS, compare_cpp, parse_cpp, ratios, summary, time_python
from vgpt.runtime.loading import cached_export

BINARY = Path(os.environ.get("VGPT_BENCH_BINARY", Path(__file__).parents[2] / "build" / "vgpt_bench"))


def runtime_report(clip: float, step: float, overhead: float) -> dict:
    return {
        "layout": {"history": 3},
        **summary([clip, 2 * clip, clip], [step], [0.0], [0.0], [overhead, overhead]),
    }


def test_summary_takes_medians_and_the_minimum():
    s = summary([3.0, 1.0, 2.0, 10.0], [0.1, 0.3, 0.2], [1.0], [2.0], [0.5, 0.1, 0.2])
    assert s["clip_seconds"] == {"median": 2.5, "min": 1.0, "runs": [3.0, 1.0, 2.0, 10.0]}
    assert s["step_seconds"] == pytest.approx(0.2)
    assert s["host_overhead"] == pytest.approx(0.2)


def test_ratios_are_python_time_over_cpp_time():
    python, cpp = runtime_report(2.0, 0.04, 0.05), runtime_report(1.0, 0.01, 0.001)
    r = ratios(python, cpp)
    assert r["cpp_vs_python_clip"] == pytest.approx(2.0)  # medians: 2.0 vs 1.0
    assert r["cpp_vs_python_clip_min"] == pytest.approx(2.0)  # minima: 2.0 vs 1.0
    assert r["cpp_vs_python_step"] == pytest.approx(4.0)
    assert (r["python_host_overhead"], r["cpp_host_overhead"]) == (0.05, 0.001)


def test_parse_cpp_reads_the_bench_json():
    report = {**runtime_report(1.0, 0.01, 0.001), "runtime": "cpp"}
    assert parse_cpp(json.dumps(report, indent=1) + "\n") == report


def test_parse_cpp_refuses_what_is_not_its_json():
    with pytest.raises(ValueError, match="printed no JSON object"):
        parse_cpp("vgpt_bench: cannot find ONNX Runtime")
    with pytest.raises(ValueError, match=r"lacks \['host_overhead'\]: rebuild it"):
        parse_cpp(json.dumps({k: 0 for k in RUNTIME_KEYS if k != "host_overhead"}))


@pytest.fixture
def bundle(model_folder):
    """The tiny model's bundle in the session's export cache (the predictor tests export the same one)."""
    return cached_export(model_folder, None, None)


def check_runtime(report: dict, clips: int) -> None:
    assert len(report["clip_seconds"]["runs"]) == clips
    assert report["clip_seconds"]["min"] <= report["clip_seconds"]["median"]
    assert 0 <= report["host_overhead"] < 1
    # Each clip's steps take less than the clip; the median step is some clip's (timing noise aside).
    assert 0 < report["step_seconds"] * report["layout"]["steps"] < max(report["clip_seconds"]["runs"])


def test_python_side_on_a_tiny_bundle(bundle):
    report = time_python(bundle, clips=3, threads=1)
    check_runtime(report, 3)
    assert report["layout"] == {"history": 3, "clip": 2, "height": 32, "width": 32, "latent_channels": 4,
                                "latent_height": 4, "latent_width": 4, "steps": 3}  # fmt: skip


@pytest.mark.skipif(not BINARY.is_file(), reason=f"{BINARY} is not built (scripts/cpp_test.sh, or VGPT_BENCH_BINARY)")
def test_compare_cpp_on_a_tiny_bundle(bundle):
    report = compare_cpp(BINARY, bundle, clips=2, threads=1)
    for side in ("python", "cpp"):
        check_runtime(report[side], 2)
    assert report["cpp"]["layout"] == report["python"]["layout"]
    assert report["cpp_vs_python_clip"] > 0
    assert report["cpp_host_overhead"] == report["cpp"]["host_overhead"]
