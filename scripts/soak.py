"""Soak test of `vgpt-run --live`: a local HTTP MJPEG camera on the loopback address, vgpt-run reading it
for a given time, its resident memory sampled from outside every second and its per-clip log (--stats)
read back; prints the RSS and latency slopes and writes them as JSON.

    python scripts/soak.py --minutes 10 --fps 25 --json soak.json

The run passes when the stream delivered at least --min-frames frames, vgpt-run ended by SIGTERM with
exit status 130 and a playable video, and RSS grew by less than --max-rss-growth MiB over the second
half of the run (the first half includes warm-up: arenas, the export cache, thread pools). Exit status
0 when it passes, 1 when not. Nothing leaves the machine: the server binds 127.0.0.1 and stops by
itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def slope_per_hour(t: list[float], y: list[float]) -> float:
    """Least-squares slope of y over t (seconds), per hour."""
    if len(t) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(t), np.asarray(y), 1)[0] * 3600)


def soak(minutes: float, fps: float, size: int, threads: int | None, out_dir: Path) -> dict:
    port = free_port()
    seconds = minutes * 60
    server = subprocess.Popen([sys.executable, str(HERE / "mjpeg_server.py"), "--port", str(port), "--fps", str(fps),
                               "--size", str(size), "--seconds", str(seconds + 60)])  # fmt: skip
    stats_path, video = out_dir / "stats.jsonl", out_dir / "soak.mp4"
    stats_path.unlink(missing_ok=True)
    command = ["vgpt-run", "--live", "--input", f"http://127.0.0.1:{port}/stream.mjpg", "--output", str(video),
               "--stats", str(stats_path), "--no-progress"]  # fmt: skip
    command += ["--threads", str(threads)] if threads else []
    time.sleep(1.0)  # the server's socket is listening
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds and run.poll() is None:
            rss = rss_mib(run.pid)
            if rss is not None:
                samples.append((time.monotonic() - start, rss))
            time.sleep(1.0)
        stopped_at = time.monotonic() - start
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)  # what a supervisor does: vgpt-run finishes the video
        output, _ = run.communicate(timeout=120)
        exit_seconds = time.monotonic() - start - stopped_at
    finally:
        if run.poll() is None:
            run.kill()
        server.terminate()
        server.wait(timeout=30)
    clips = [json.loads(line) for line in stats_path.read_text().splitlines()] if stats_path.exists() else []
    latency = [c["clip_seconds"] for c in clips]
    tenth = max(1, len(clips) // 10)
    half = [(t, r) for t, r in samples if t >= stopped_at / 2]
    frames_read = clips[-1]["observed"] + clips[-1]["dropped"] if clips else 0
    report = {
        "minutes": round(stopped_at / 60, 2),
        "stream_fps": fps,
        "frame_size": size,
        "frames_read": frames_read,
        "frames_observed": clips[-1]["observed"] if clips else 0,
        "frames_dropped": clips[-1]["dropped"] if clips else 0,
        "clips": len(clips),
        "rss_mib": {
            "at_1_minute": next((r for t, r in samples if t >= 60), None),
            "at_half": half[0][1] if half else None,
            "last": samples[-1][1] if samples else None,
            "max": max(r for _, r in samples) if samples else None,
            "growth_second_half": (half[-1][1] - half[0][1]) if half else None,
            "slope_mib_per_hour_second_half": slope_per_hour(*zip(*half, strict=True)) if half else None,
        },
        "clip_seconds": {
            "median": float(np.median(latency)) if clips else None,
            "first_tenth_median": float(np.median(latency[:tenth])) if clips else None,
            "last_tenth_median": float(np.median(latency[-tenth:])) if clips else None,
            "slope_ms_per_hour": slope_per_hour([c["seconds"] for c in clips], [x * 1000 for x in latency]),
        },
        "exit_status": run.returncode,
        "exit_seconds_after_sigterm": round(exit_seconds, 2),
        "video_frames": _frames_in(video),
        "vgpt_run_said": output.strip().splitlines()[-3:],
    }
    return report


def _frames_in(video: Path) -> int | None:
    if not video.exists():
        return None
    from vgpt.video import probe

    return probe(video).frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=25.0, help="The stream's frame rate.")
    parser.add_argument("--size", type=int, default=64, help="Frame size of the synthetic stream (px).")
    parser.add_argument("--threads", type=int, default=None, help="vgpt-run --threads.")
    parser.add_argument("--min-frames", type=int, default=10_000, help="Frames the stream must deliver.")
    parser.add_argument("--max-rss-growth", type=float, default=20.0, help="MiB allowed over the second half.")
    parser.add_argument("--out", default=None, help="Folder for the video and the log (default: a temporary one).")
    parser.add_argument("--json", default=None, help="Write the report here.")
    args = parser.parse_args()
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="vgpt-soak-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = soak(args.minutes, args.fps, args.size, args.threads, out_dir)
    checks = {
        f"stream delivered >= {args.min_frames} frames": report["frames_read"] >= args.min_frames,
        "vgpt-run exited 130 on SIGTERM": report["exit_status"] == 130,
        "the video is playable and holds every logged clip": (report["video_frames"] or 0)
        >= report["clips"] * _clip_frames(report)
        > 0,
        f"RSS grew < {args.max_rss_growth} MiB over the second half": (report["rss_mib"]["growth_second_half"] or 0)
        < args.max_rss_growth,
    }
    report["checks"] = checks
    report["passed"] = all(checks.values())
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(f"soak {'passed' if report['passed'] else 'FAILED'} ({out_dir})", file=sys.stderr)
    return 0 if report["passed"] else 1


def _clip_frames(report: dict) -> int:
    """G, from vgpt-run's summary line ('predicted N frames in K clips')."""
    import re

    for line in report["vgpt_run_said"]:
        found = re.search(r"predicted (\d+) frames? in (\d+) clips?", line)
        if found and int(found.group(2)):
            return int(found.group(1)) // int(found.group(2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
