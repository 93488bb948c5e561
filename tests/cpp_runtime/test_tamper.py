"""The tamper fixture (tests/cpp_runtime/tamper.py) against the Python runtime; cpp/tests/test_tamper.cpp
runs the same cases, as make_fixtures.py writes them, against the C++ runtime."""

import json
import re
import shutil
from functools import partial

import pytest

from tests.cpp_runtime.make_fixtures import tiny_bundle
from tests.cpp_runtime.tamper import CASES, ENGINE_CASES, SECRET_BYTES, write_cases, write_engine_cases
from vgpt.engines.manifest import check_engine_folder
from vgpt.export.contract import BundleError, EngineError
from vgpt.export.manifest import load_bundle

pytest.importorskip("onnxruntime")
pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def tamper(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamper")
    index = write_cases(tiny_bundle(root / "tiny"), root / "cases")
    return root / "cases", index


@pytest.mark.parametrize("name", list(CASES))
def test_every_tampered_bundle_is_refused_without_revealing_outside_files(tamper, name):
    root, index = tamper
    case = next(c for c in index["cases"] if c["name"] == name)
    keys = [root / case["trusted_key"]] if case["trusted_key"] else []
    with pytest.raises(BundleError, match=case["python"]) as err:
        load_bundle(root / case["bundle"], trusted_keys=keys)
    assert not re.search(rf"\b{SECRET_BYTES}\b", str(err.value)), str(err.value)
    assert "outside/secret" not in str(err.value) or name == "files-outside"  # named only as the manifest's entry


def test_the_signed_copy_loads_with_its_key_and_any_bundle_without_keys(tamper):
    root, index = tamper
    load_bundle(root / index["signed"], trusted_keys=[root / index["trusted_key"]])
    load_bundle(next(root / c["bundle"] for c in index["cases"] if c["name"] == "unsigned"))


def test_a_signed_bundle_whose_graph_changed_is_refused_by_its_hash(tamper, tmp_path):
    root, index = tamper
    copy = tmp_path / "bundle"
    shutil.copytree(root / index["signed"], copy)
    layout = json.loads((copy / "manifest.json").read_text())["layouts"][0]["name"]
    with open(copy / layout / "decoder.onnx", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="does not match the sha256"):
        load_bundle(copy, trusted_keys=[root / index["trusted_key"]])


@pytest.fixture(scope="module")
def engine_tamper(tamper):
    root = tamper[0].parent
    return root, write_engine_cases(root / "tiny", root / "engine-cases")


@pytest.mark.parametrize("name", list(ENGINE_CASES))
def test_every_altered_engines_folder_is_refused_before_tensorrt_reads_a_plan(engine_tamper, name):
    """The TensorRT backend's checks (vgpt.engines.manifest.check_engine_folder) against the engine cases;
    cpp/tests/test_tamper.cpp holds the C++ runtime's check_engine_folder to the same cases."""
    root, index = engine_tamper
    case = next(c for c in index["cases"] if c["name"] == name)
    host = index["host"]
    check = partial(check_engine_folder, root / case["engines"], host["tensorrt_version"], host["gpu"],
                    tuple(host["capability"]), bundle=root / index["bundle"])  # fmt: skip
    if case["python"] is None:
        manifest, entry = check()
        assert entry.name == manifest.layout
        return
    with pytest.raises(EngineError, match=case["python"]):
        check()
