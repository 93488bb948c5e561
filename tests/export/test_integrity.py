"""A bundle whose bytes changed is never run: every file's sha256 and the manifest's own hash are
checked at load, and the runtime's cached export repairs itself."""

import json
import os
import shutil

import pytest

from vgpt.export.contract import MANIFEST_HASH
from vgpt.export.manifest import BundleError, load_bundle
from vgpt.integrity import verify_file


@pytest.fixture
def copy(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, target)
    return target


def _flip(path, offset, count):
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_of_the_same_size_are_refused(copy):
    load_bundle(copy)  # verified, and remembered
    encoder = next(copy.rglob("encoder.onnx"))
    _flip(encoder, encoder.stat().st_size // 2, 16)  # same size: only the hash can tell
    with pytest.raises(BundleError, match=r"encoder\.onnx does not match the sha256 its manifest records"):
        load_bundle(copy)


def test_a_remembered_verdict_is_dropped_when_the_file_is_written(copy):
    entry = load_bundle(copy).layouts[0]
    denoise = entry.path("denoise")
    sha = entry.graphs["denoise"].files["denoise.onnx"].sha256
    assert verify_file(denoise, sha)
    stat = denoise.stat()
    _flip(denoise, 4096, 4096)
    os.utime(denoise, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # any write moves the modification time
    assert not verify_file(denoise, sha)


def test_an_edited_manifest_is_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    assert MANIFEST_HASH in manifest
    manifest["sampler"]["steps"] = 2  # the graphs bake in 4
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(BundleError, match="was edited after the export"):
        load_bundle(copy)


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format": "vgpt-onnx-bundle", "format_version": 1}'])
def test_malformed_manifests_are_one_clear_error(copy, text):
    (copy / "manifest.json").write_text(text)
    with pytest.raises(BundleError, match=r"manifest\.json"):
        load_bundle(copy)
