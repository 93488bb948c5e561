"""The deployment contract: a bundle's manifest.json is written and read through BundleManifest, agrees
with docs/manifest.schema.json, and every malformed field is one BundleError that names it."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from vgpt.export.contract import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_HASH,
    BuildSettings,
    BundleError,
    BundleManifest,
    CodecRecord,
    EngineFile,
    EngineManifest,
    Environment,
    FileRecord,
    GpuRecord,
    LayoutRecord,
    Quantization,
    Requirements,
    SamplerRecord,
    TensorRTReadiness,
)
from vgpt.integrity import canonical_sha256
from vgpt.student import StudentSampler

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "manifest.schema.json").read_text())


def _validator(definition: str | None = None):
    """The bundle manifest's schema, or one of its definitions (the engine manifest's, say)."""
    if definition is None:
        return jsonschema.Draft202012Validator(SCHEMA)
    schema = {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def document(tiny_bundle):
    return json.loads((tiny_bundle / "manifest.json").read_text())


def _rehash(data: dict) -> dict:
    """As a (buggy or hostile) writer would: the manifest's own hash made to match its content."""
    return {**data, MANIFEST_HASH: canonical_sha256(data, MANIFEST_HASH)}


def test_a_fresh_manifest_is_valid_against_the_schema(document):
    _validator().validate(document)


def test_to_dict_writes_back_the_document_it_read(document):
    manifest = BundleManifest.from_dict(document)
    again = manifest.to_dict()
    assert again == document
    assert list(again) == list(document), "the keys keep their order: the file stays byte-compatible"
    assert manifest.sampler.config.steps == 4 and manifest.layout("m2-g3-4x6").layout.clip_frames == 3
    assert not manifest.quantized and manifest.requires == Requirements(None, False, "")


def test_an_engine_manifest_is_valid_against_the_schema(tmp_path):
    manifest = EngineManifest(tensorrt_version="10.15.1", gpu=GpuRecord("NVIDIA L4", (8, 9)), layout="m4-g4-8x8",
                              bundle_precision="fp32", builder=BuildSettings("fp16", False, ("FP16",)),
                              sampler=SamplerRecord(1, 1.0, 1.5, (0.0, 1.0)),
                              plans={g: EngineFile(f"{g}.plan", 3, "0" * 64)
                                     for g in ("encoder", "prefill", "denoise", "decoder")},
                              source_graphs_sha256={"denoise": "1" * 64}, bundle=str(tmp_path))  # fmt: skip
    data = manifest.to_dict()
    _validator("engine_manifest").validate(data)
    assert EngineManifest.from_dict(data) == manifest
    with pytest.raises(jsonschema.ValidationError):
        _validator("engine_manifest").validate({**data, "plans": {}})


# Each record and the schema definition that describes it.
RECORDS = {
    BundleManifest: None,
    SamplerRecord: "sampler",
    CodecRecord: "codec",
    Requirements: "requirements",
    Quantization: "quantization",
    Environment: "environment",
    TensorRTReadiness: "tensorrt_readiness",
    LayoutRecord: "layout_entry",
    FileRecord: "file_record",
    EngineManifest: "engine_manifest",
    BuildSettings: "build_settings",
    GpuRecord: "gpu",
    EngineFile: "engine_file",
    StudentSampler: "student",
}
# Keys written beside the fields: the format name, and the manifest's own hash.
WRITTEN_ONLY = {BundleManifest: {"format", MANIFEST_HASH}, EngineManifest: {"format"}}


@pytest.mark.parametrize("record", list(RECORDS), ids=lambda r: r.__name__)
def test_the_schema_describes_exactly_the_fields_of_each_record(record):
    definition = SCHEMA if RECORDS[record] is None else SCHEMA["$defs"][RECORDS[record]]
    fields = {f.name for f in dataclasses.fields(record)} | WRITTEN_ONLY.get(record, set())
    assert set(definition["properties"]) == fields
    assert definition["additionalProperties"] is False


def test_a_graph_record_is_written_flat_as_its_spec_and_the_schema_says_so():
    from vgpt.export.contract import GraphRecord
    from vgpt.export.spec import GraphSpec

    fields = {f.name for f in dataclasses.fields(GraphRecord)} - {"spec"}
    spec_keys = set(GraphSpec("denoise", (), ()).to_dict())
    assert set(SCHEMA["$defs"]["graph"]["properties"]) == fields | spec_keys


def _phase(document, name: str) -> list:
    return document["layouts"][0]["bindings"]["phases"][name]["bindings"]


def _swap_steps(binding: dict) -> None:
    """The step reads step1 and writes step0: the next step would not read the index this one wrote."""
    binding["inputs"]["step"], binding["outputs"]["step_next"] = (
        binding["outputs"]["step_next"],
        binding["inputs"]["step"],
    )


def _buffer(document, name: str) -> dict:
    return next(b for b in document["layouts"][0]["bindings"]["buffers"] if b["name"] == name)


def _broken(document, edit):
    data = copy.deepcopy(document)
    edit(data)
    return _rehash(data)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("sampler"), r"lacks \['sampler'\]"),
        (lambda d: d["sampler"].update(steps="4"), r"field 'sampler\.steps' must be an integer, found str '4'"),
        (lambda d: d["sampler"].update(schedule=[0.0, 1.0]), r"field 'sampler\.schedule' has 2 levels; 4 steps need 5"),
        (lambda d: d.update(precision="fp4"), r"field 'precision' is 'fp4'"),
        (lambda d: d.update(precision="int8"), r"field 'quantization' is missing, but precision is 'int8'"),
        (lambda d: d["layouts"][0].update(name="m9-g2-4x4"), r"field 'layouts\[0\]\.name' is 'm9-g2-4x4'"),
        (lambda d: d["layouts"][0]["graphs"].pop("denoise"), r"field 'layouts\[0\]\.graphs' lacks \['denoise'\]"),
        (
            lambda d: d["layouts"][1]["graphs"]["denoise"]["inputs"][0].update(shape=[1, 3, 99, 4, 6]),
            r"field 'layouts\[1\]\.graphs\.denoise' records .* but model_config and the layout give",
        ),
        (
            lambda d: d["layouts"][0]["graphs"]["encoder"]["files"]["encoder.onnx"].pop("sha256"),
            r"field 'layouts\[0\]\.graphs\.encoder\.files\.encoder\.onnx' lacks \['sha256'\]",
        ),
        (lambda d: d["rope_factor_set"].pop("m3-g2-4x4"), r"field 'rope_factor_set' names layouts"),
        (lambda d: d["codec"].update(latent_channels=3), r"field 'codec\.latent_channels' is 3; the model takes"),
        (lambda d: d["layouts"][0]["layout"].update(patch_size=0), r"field 'layouts\[0\]\.layout' is not valid"),
        (lambda d: d.update(format_version=4), r"written by a newer vgpt \(format 4\)"),
        (lambda d: d["layouts"][0].pop("bindings"), r"field 'layouts\[0\]' lacks \['bindings'\]"),
        (
            lambda d: _phase(d, "denoise")[0]["inputs"]["kv_cache"].update(buffer="nowhere"),
            r"'layouts\[0\]\.bindings' .*denoise's kv_cache is bound to buffer 'nowhere', which the plan does not",
        ),
        (
            lambda d: _swap_steps(_phase(d, "denoise")[0]),
            r"binding 0's step_next is not binding 1's step: the steps must feed each other",
        ),
        (lambda d: d["layouts"][0]["bindings"]["phases"].pop("decode"), r"lacks the phases \['decode'\]"),
        (lambda d: _buffer(d, "kv")["shape"].__setitem__(0, 9), r"prefill's kv_cache is float32 \[.*\], bound to kv"),
        (lambda d: _phase(d, "append").pop(), r"phase 'append' has 1 bindings; it cycles through 2"),
        (
            lambda d: _phase(d, "encode")[0]["outputs"]["latents"].update(slot=0),
            r"encoder's latents is float32 \[1, .*\], bound to a slot of latent: float32",
        ),
    ],
)
def test_each_malformed_field_is_one_error_that_names_it(document, edit, message):
    with pytest.raises(BundleError, match=message):
        BundleManifest.from_dict(_broken(document, edit), "b/manifest.json")


def test_a_format_2_manifest_is_given_the_plan_of_its_graphs(document):
    """Format 2 had no binding plan: its layouts get the one this vgpt writes, which is how every runtime
    bound them before the plan was written down."""
    fresh = BundleManifest.from_dict(document)
    old = copy.deepcopy(document)
    old["format_version"] = 2
    for layout in old["layouts"]:
        del layout["bindings"]
    migrated = BundleManifest.from_dict(_rehash(old))
    assert [e.bindings for e in migrated.layouts] == [e.bindings for e in fresh.layouts]
    assert migrated.to_dict() == fresh.to_dict()  # written back as format 3, plan included


def test_an_edited_plan_that_still_binds_is_refused_as_not_this_vgpts(document):
    """Renaming a buffer everywhere keeps the plan bindable, but it is not what this vgpt's export writes."""
    text = (
        json.dumps(document)
        .replace('"buffer": "clip"', '"buffer": "clip2"')
        .replace('"name": "clip"', '"name": "clip2"')
    )
    with pytest.raises(BundleError, match=r"is not the plan this vgpt writes for its graphs"):
        BundleManifest.from_dict(_rehash(json.loads(text)))


def test_an_edit_without_a_new_hash_is_refused_before_any_field(document):
    document["sampler"]["steps"] = "many"
    with pytest.raises(BundleError, match="was edited after the export"):
        BundleManifest.from_dict(document)


def test_format_1_is_read_and_written_as_the_current_format(document):
    old = {k: v for k, v in copy.deepcopy(document).items() if k not in ("format_version", MANIFEST_HASH)}
    for layout in old["layouts"]:
        del layout["bindings"]  # format 3's
    assert old["format"] == FORMAT
    manifest = BundleManifest.from_dict(old)
    written = manifest.to_dict()
    assert written["format_version"] == FORMAT_VERSION == 3 and written[MANIFEST_HASH] == canonical_sha256(
        written, MANIFEST_HASH
    )
    assert BundleManifest.from_dict(written) == manifest
