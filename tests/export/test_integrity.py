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


def _denoise(copy):
    entry = load_bundle(copy).layouts[0]
    return entry.path("denoise"), entry.graphs["denoise"].files["denoise.onnx"].sha256


def test_a_remembered_verdict_is_dropped_when_the_file_is_written(copy):
    denoise, sha = _denoise(copy)
    assert verify_file(denoise, sha, trust_cache=True)
    stat = denoise.stat()
    _flip(denoise, 4096, 4096)
    os.utime(denoise, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # any write moves the modification time
    assert not verify_file(denoise, sha, trust_cache=True)


def test_a_file_changed_with_its_modification_time_kept_is_refused_even_with_trust_cache(copy):
    """The audit: `cp -p` / `rsync -t` of a corrupted file keeps size and mtime. Without --trust-cache
    every load hashes; with it, the verdict is bound to the inode and the ctime, which no tool sets back."""
    denoise, sha = _denoise(copy)
    assert verify_file(denoise, sha, trust_cache=True)  # remembered
    stat = denoise.stat()
    corrupt = copy / "corrupt.onnx"
    shutil.copyfile(denoise, corrupt)
    _flip(corrupt, 4096, 16)
    os.utime(corrupt, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(corrupt, denoise)  # what cp -p does: same path, size and mtime, other bytes
    assert denoise.stat().st_mtime_ns == stat.st_mtime_ns and denoise.stat().st_size == stat.st_size
    assert not verify_file(denoise, sha, trust_cache=True)
    with pytest.raises(BundleError, match=r"denoise\.onnx does not match the sha256"):
        load_bundle(copy)
    with pytest.raises(BundleError, match=r"denoise\.onnx does not match the sha256"):
        load_bundle(copy, trust_cache=True)


def test_a_verdict_file_written_by_someone_else_approves_nothing(copy, tmp_path):
    """A forged verdict (a writable verified-files.json) for a corrupted file: without trust_cache it is
    never read; with it, a verdict file others may write is ignored."""
    denoise, sha = _denoise(copy)
    _flip(denoise, 4096, 16)
    stat = denoise.stat()
    state = tmp_path / "cache" / "verified-files.json"
    state.parent.mkdir(exist_ok=True)
    forged = [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, sha]
    state.write_text(json.dumps({str(denoise.resolve()): forged}))
    assert not verify_file(denoise, sha)
    state.chmod(0o666)  # anyone may write it
    assert not verify_file(denoise, sha, trust_cache=True)
    state.chmod(0o600)  # a private verdict is what trust_cache trusts, as documented
    assert verify_file(denoise, sha, trust_cache=True)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "{broken", '["a list"]', "\udcff"])
def test_a_broken_verdict_file_is_repaired_not_fatal(copy, text):
    denoise, sha = _denoise(copy)
    state = copy.parent / "cache" / "verified-files.json"
    state.parent.mkdir(exist_ok=True)
    state.write_text(text, errors="surrogateescape")
    assert verify_file(denoise, sha, trust_cache=True)  # hashed, and the file rewritten
    assert str(denoise.resolve()) in json.loads(state.read_text())


def test_an_edited_manifest_is_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    assert MANIFEST_HASH in manifest
    manifest["sampler"]["steps"] = 2  # the graphs bake in 4
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(BundleError, match="was edited after the export"):
        load_bundle(copy)


@pytest.mark.parametrize(
    "text", ["{not json", "[]", '{"format": "vgpt-onnx-bundle", "format_version": 1}', "[" * 100_000, "\udcff{}"]
)
def test_malformed_manifests_are_one_clear_error(copy, text):
    (copy / "manifest.json").write_text(text, errors="surrogateescape")
    with pytest.raises(BundleError, match=r"manifest\.json"):
        load_bundle(copy)
