"""vgpt-cache list|clear: what vgpt made in its cache folder, removed without touching anything else or an
export another process is writing."""

import fcntl
import json

from click.testing import CliRunner

from vgpt.cli.cache import cache_main

KEY, BUSY = "0123456789abcdef0123", "fedcba9876543210fedc"


def _fill(root):
    for key in (KEY, BUSY):
        (root / "exports" / key).mkdir(parents=True)
        (root / "exports" / key / "manifest.json").write_text(json.dumps({"sources": {"checkpoint": "runs/a"}}))
        (root / "exports" / key / "denoise.onnx").write_bytes(b"x" * 1000)
        (root / "exports" / f"{key}.lock").touch()
    (root / "exports" / f".{KEY}.tmp1").mkdir()  # left by a killed export
    calib = root / "calibration" / "aa11bb22cc33dd44ee55"
    calib.mkdir(parents=True)
    (calib / "manifest.json").write_text(json.dumps({"clips": 32}))
    (calib / "data.safetensors").write_bytes(b"y" * 500)
    (root / "verified-files.json").write_text("{}")
    # Not vgpt's: a user's notes, a folder without a manifest, a folder named like a key but holding no manifest.
    (root / "notes.txt").write_text("mine")
    (root / "exports" / "mine").mkdir()
    (root / "calibration" / "0000000000000000aaaa").mkdir()


def test_list_names_every_entry_and_clear_removes_only_vgpts_and_not_an_export_in_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("VGPT_CACHE", str(tmp_path))
    _fill(tmp_path)
    listed = CliRunner().invoke(cache_main, ["list"])
    assert listed.exit_code == 0, listed.output
    assert f"export            {KEY}  runs/a" in listed.output and "calibration" in listed.output
    assert "unfinished export" in listed.output and f"5 entries, 0.0 MB in {tmp_path}" in listed.output
    with open(tmp_path / "exports" / f"{BUSY}.lock", "a") as held:  # another process exporting BUSY
        fcntl.flock(held, fcntl.LOCK_EX)
        cleared = CliRunner().invoke(cache_main, ["clear"])
    assert cleared.exit_code == 0, cleared.output
    assert f"kept {tmp_path / 'exports' / BUSY}: another process is exporting it" in cleared.output
    assert "removed 4 entries" in cleared.output
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == sorted([
        "notes.txt", "exports", "exports/mine", "calibration", "calibration/0000000000000000aaaa",
        f"exports/{BUSY}", f"exports/{BUSY}/manifest.json", f"exports/{BUSY}/denoise.onnx",
        f"exports/{BUSY}.lock", f"exports/{KEY}.lock",
    ])  # fmt: skip
    assert "1 entry" in CliRunner().invoke(cache_main, ["list"]).output


def test_an_empty_or_missing_cache_lists_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "none"))
    result = CliRunner().invoke(cache_main, ["list"])
    assert result.exit_code == 0 and "0 entries, 0.0 MB" in result.output
    assert "removed 0 entries" in CliRunner().invoke(cache_main, ["clear"]).output
