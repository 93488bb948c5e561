"""The graph registry and the binding plan it gives each layout (vgpt.export.registry)."""

import importlib
import json

import pytest

from vgpt.config import get_preset
from vgpt.export.registry import (
    ENGINE_GRAPHS,
    PLAN_FILES,
    REGISTRY,
    REQUIRED_GRAPHS,
    TRANSFORMER_GRAPHS,
    BindingPlan,
    PlanError,
    Target,
    binding_plan,
    graph_specs,
)
from vgpt.export.spec import APPEND, DENOISE, FRAME, PREFILL, RING
from vgpt.layout import Layout


def _plan(preset: str) -> tuple[BindingPlan, dict, Layout]:
    config = get_preset(preset)
    layout = Layout.for_model(config, 3, 2, 4, 4)
    specs = graph_specs(config, layout)
    return binding_plan(specs, layout), specs, layout


def test_every_entry_names_a_module_that_builds_from_a_context():
    for entry in REGISTRY:
        path, name = entry.module.split(":")
        assert callable(getattr(importlib.import_module(path), name).of), entry.name
    assert REQUIRED_GRAPHS == ENGINE_GRAPHS == ("encoder", "prefill", "denoise", "decoder")
    assert PLAN_FILES[DENOISE] == "model.plan" and TRANSFORMER_GRAPHS == (PREFILL, DENOISE, APPEND)


def test_video_gpt_slides_its_window_with_append_and_gpdit_lightweight_with_frame_and_ring():
    plan, specs, _ = _plan("tiny")
    assert list(specs) == ["encoder", "prefill", "denoise", "decoder", APPEND]
    assert set(plan.phases) == {"encode", "prefill", "denoise", "decode", "append", "denoise_alt"}
    # Append slides prefill's cache into the second and back; the steps after an odd count read the second.
    assert plan.target("append", "kv_next", 0) == plan.target("denoise_alt", "kv_cache", 0) == Target("kv_alt")
    assert plan.target("append", "kv_next", 1) == plan.target("prefill", "kv_cache") == Target("kv")
    plan, specs, _layout = _plan("gpdit-tiny")
    assert list(specs)[4:] == [FRAME, RING] and "append" not in plan.phases
    # The k-th observed frame writes its keys/values straight into ring slot k mod M.
    assert [plan.target("push", "frame_kv", s) for s in range(3)] == [Target("ring", s) for s in range(3)]
    assert plan.buffer("ring").shape == (3, *specs[FRAME].tensor("frame_kv").shape)
    assert plan.target("read", "kv_cache") == Target("kv")


@pytest.mark.parametrize("preset", ["tiny", "gpdit-tiny"])
def test_a_plan_is_written_and_read_back_unchanged(preset):
    plan, specs, layout = _plan(preset)
    again = BindingPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    again.check(specs, layout.history_frames)


def test_a_buffer_two_graphs_bind_at_different_shapes_is_refused():
    config = get_preset("tiny")
    layout = Layout.for_model(config, 3, 2, 4, 4)
    specs = graph_specs(config, layout)
    other = graph_specs(config, Layout.for_model(config, 2, 2, 4, 4))
    with pytest.raises(PlanError, match="binds buffer 'kv' as float32"):
        binding_plan({**specs, DENOISE: other[DENOISE]}, layout)


def test_malformed_plans_say_what_is_wrong():
    plan, specs, layout = _plan("gpdit-tiny")
    doc = plan.to_dict()
    doc["phases"]["push"]["bindings"][1]["outputs"]["frame_kv"]["slot"] = 0
    with pytest.raises(PlanError, match="phase 'push' binding 1 does not write ring slot 1 of 'ring'"):
        BindingPlan.from_dict(doc).check(specs, layout.history_frames)
    doc = plan.to_dict()
    del doc["phases"]["read"]
    with pytest.raises(PlanError, match=r"has only some of the phases \['push', 'read'\]"):
        BindingPlan.from_dict(doc).check(specs, layout.history_frames)
    doc = plan.to_dict()
    doc["phases"]["decode"]["graph"] = "encoder"
    with pytest.raises(PlanError, match="phase 'decode' runs graph 'encoder'; it runs 'decoder'"):
        BindingPlan.from_dict(doc).check(specs, layout.history_frames)
    doc = plan.to_dict()
    doc["phases"]["denoise"]["bindings"][0]["inputs"]["kv_cache"] = {"buffer": "kv", "extra": 1}
    with pytest.raises(PlanError, match="a target is"):
        BindingPlan.from_dict(doc)
    with pytest.raises(PlanError, match="must be an object of 'buffers' and 'phases'"):
        BindingPlan.from_dict([])
