"""The default model: our `small` model and light codec, trained on synthetic physics videos, shipped
inside vgpt (the model every command takes when none is named).

`vgpt/assets/default/` holds `model/` (a vgpt checkpoint), `codec/` (a light codec) and
`defaults.json` (the layout and sampler settings they were trained and evaluated with, and the
command that reproduces them). `Defaults` is the one reader of those settings: every command takes
its layout and sampler from `defaults.layout(...)` and `defaults.sampler(...)`.

The folder can ship more models of the same layout and codec beside `model/` (the teacher): a distilled
few-step student in `student/` (vgpt-distill), with `student/comparison.json`, its `vgpt-eval --student`
side by side with the teacher, and a model of the GPDiT family in `gpdit/` (`vgpt-train --config
gpdit-bundled`: lightweight causal attention, so its live window slides exactly, docs/gpdit.md).
`--model NAME` (vgpt-run, vgpt-eval; `load_model(model=NAME)`) picks one by name; without it the
commands take `preferred_model`: the student once its recorded figures at every horizon are at least
the teacher's (`meets_the_bar`), else the teacher; never the GPDiT model, which is another family and
is taken by name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgpt.config import ConfigError, ModelConfig, SamplerConfig
from vgpt.layout import Layout

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).parent / "assets" / "default"
SETTINGS = "defaults.json"  # beside model/ and codec/
# The models a folder laid out like the default can ship, by name: their checkpoint folders in it.
BUNDLED_MODELS = {"teacher": "model", "student": "student", "gpdit": "gpdit"}
COMPARISON = "comparison.json"  # in a shipped student's folder: vgpt-eval --student's JSON


def bundled_model_note(root: Path = DEFAULT_DIR) -> str:
    """What the bundled model is, said once where a user meets it (vgpt-run's first line and --help,
    the README's quick start), from the `trained_on` of its defaults.json."""
    trained_on = json.loads((root / SETTINGS).read_text())["trained_on"]
    return (
        f"the bundled model is a demonstration, trained only on {trained_on}; on other videos it "
        "predicts ball-like blobs: train or fine-tune a model on your own videos with vgpt-train --data"
    )


class DefaultModelMissingError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class Defaults:
    """The layout (in pixels) and sampler a model was trained and evaluated with: its `defaults.json`,
    or, for a checkpoint without one, the default model's usual values. Options a user gives win."""

    history: int = 4  # M frames
    clip: int = 4  # G frames
    height: int = 64  # px
    width: int = 64  # px
    steps: int = SamplerConfig.steps
    guidance: float = SamplerConfig.guidance
    shift: float = SamplerConfig.shift
    fps: float = 10.0  # frames per second of the training videos (the synthetic scenes': SceneConfig.fps)

    @classmethod
    def from_settings(cls, settings: dict[str, Any], source: str = SETTINGS) -> Defaults:
        """The fields of `defaults.json` this class knows; other keys (evaluation figures, notes) are ignored."""
        known = {k: settings[k] for k in ("history", "clip", "height", "width", "steps", "guidance", "shift", "fps")
                 if k in settings}  # fmt: skip
        for key in ("history", "clip", "height", "width", "steps"):
            if key in known and (not isinstance(known[key], int) or isinstance(known[key], bool)):
                raise ConfigError(f"{source}: {key}={known[key]!r} must be an integer")
        return cls(**known)

    def layout(self, config: ModelConfig, history: int | None = None, clip: int | None = None) -> Layout:
        return Layout.from_pixels(config, history or self.history, clip or self.clip, self.height, self.width)

    def sampler(self, steps: int | None = None, guidance: float | None = None,
                shift: float | None = None) -> SamplerConfig:  # fmt: skip
        return SamplerConfig(steps=steps or self.steps, guidance=guidance or self.guidance, shift=shift or self.shift)


@dataclass(frozen=True)
class DefaultModel:
    root: Path
    settings: dict[str, Any]  # defaults.json as written (with its evaluation figures)
    defaults: Defaults = field(default_factory=Defaults)

    def layout(self, config: ModelConfig) -> Layout:
        return self.defaults.layout(config)

    def sampler(self) -> SamplerConfig:
        return self.defaults.sampler()

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    def shipped(self) -> list[str]:
        """The names of the models this folder holds (`BUNDLED_MODELS`)."""
        return [name for name, sub in BUNDLED_MODELS.items() if (self.root / sub / "manifest.json").is_file()]

    def model_path(self, name: str | None = None) -> Path:
        """The checkpoint folder of the model `name` (None: `preferred_model`)."""
        name = name or self.preferred_model()
        if name not in BUNDLED_MODELS:
            raise ConfigError(f"--model {name!r}: the bundled models are named {sorted(BUNDLED_MODELS)}")
        if name not in self.shipped():
            raise ConfigError(f"--model {name}: {self.root} ships no {name} (it holds {self.shipped()}); distil one "
                              "with vgpt-distill and name its checkpoint instead")  # fmt: skip
        return self.root / BUNDLED_MODELS[name]

    def preferred_model(self) -> str:
        """What the commands take without --model: the student once its recorded comparison with the
        teacher meets the bar at every horizon (`meets_the_bar`), else the teacher."""
        if "student" not in self.shipped():
            return "teacher"
        from vgpt.checkpoint import read_student, recorded_identity

        comparison = self.root / BUNDLED_MODELS["student"] / COMPARISON
        identity = recorded_identity(self.model_dir)
        student = read_student(self.root / BUNDLED_MODELS["student"])
        if not comparison.is_file() or identity is None or student is None:
            log.info("the bundled student has no comparison with its teacher (%s): taking the teacher", comparison)
            return "teacher"
        verdict = meets_the_bar(json.loads(comparison.read_text()), student.to_dict(), identity[0])
        if verdict is not None:
            log.info("the bundled student is not the default: %s", verdict)
            return "teacher"
        return "student"

    @property
    def codec_dir(self) -> Path:
        return self.root / "codec"


# The object figures a student must match at every horizon: (key, True where higher is better).
BAR = (("presence_by_horizon", True), ("centroid_error_by_horizon", False))


def meets_the_bar(comparison: dict[str, Any], student: dict[str, Any], teacher_sha256: str) -> str | None:
    """Whether a student may replace its teacher by default, read from a recorded `vgpt-eval --student`
    comparison (vgpt.comparison.compare's JSON): None when the student's row is at least as good as the
    teacher's full-sampler row at every horizon in presence and centroid error, else why not. The student
    row is the one recording this very student (`distilled` equal to its record), distilled from these
    teacher weights; the teacher row is the guided row with the most network evaluations per clip."""
    if student.get("distilled_from") != teacher_sha256:
        return f"the student was distilled from {str(student.get('distilled_from'))[:12]}..., not this teacher"
    rows = comparison.get("rows", {})
    student = json.loads(json.dumps(student))  # as the JSON holds it (lists, not tuples)
    mine = [label for label, row in rows.items() if row.get("distilled") == student]
    teachers = [(row.get("network_evaluations", 0), label) for label, row in rows.items() if "distilled" not in row]
    if not mine or not teachers:
        return "the comparison holds no row of this student or of the teacher"
    teacher_label = max(teachers)[1]
    s, t = rows[mine[0]], rows[teacher_label]
    if comparison.get("num_clips", 0) < 2:
        return f"the comparison rolls out {comparison.get('num_clips')} clip(s) per scene; the bar needs at least 2"
    for key, higher in BAR:
        ours, theirs = s.get(key) or [], t.get(key) or []
        if len(ours) != len(theirs) or not ours:
            return f"{key}: the rows give {len(ours)} and {len(theirs)} horizons"
        for h, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            if a is None or b is None:
                return f"{key} at +{h + 1}: no figure (no ball scored)"
            if (a < b) if higher else (a > b):
                return f"{key} at +{h + 1}: the student's {a:.3f} against the teacher's {b:.3f} ({teacher_label})"
    return None


def default_model(root: str | Path | None = None) -> DefaultModel:
    """The default model shipped with vgpt, or a folder laid out like it (`root`)."""
    root = Path(root) if root is not None else DEFAULT_DIR
    settings = root / SETTINGS
    if not settings.is_file() or not (root / "model").is_dir() or not (root / "codec").is_dir():
        raise DefaultModelMissingError(
            f"the bundled model is missing from {root} (needs model/, codec/ and {SETTINGS}); reinstall vgpt "
            "or train one with the command in the README"
        )
    data = json.loads(settings.read_text())
    return DefaultModel(root, data, Defaults.from_settings(data, str(settings)))


def named_model(source: str | Path | None, model: str | None) -> str | Path | None:
    """`source` with `--model NAME` applied: the checkpoint folder of that bundled model in the default
    model's folder (source None) or a folder laid out like it; `source` itself without a name."""
    if model is None:
        return source
    if source is not None and not (Path(source) / SETTINGS).is_file():
        raise ConfigError(f"--model {model} picks one of the bundled models; {source} is not a folder laid out like "
                          f"the bundled one (no {SETTINGS}): leave --model out")  # fmt: skip
    return str(default_model(source).model_path(model))


def resolve_checkpoint(source: str | Path | None, codec: str | Path | None = None,
                       model: str | None = None) -> tuple[str, str, Defaults]:  # fmt: skip
    """What a user names as the model -> (checkpoint folder, codec folder, its defaults).

    None is the default model; a folder with defaults.json is laid out like it (`model`: which of the
    models it ships, `BUNDLED_MODELS`; default its `preferred_model`); a model folder inside such a folder
    takes its layout and codec; anything else is a checkpoint or a training run. A checkpoint without a
    codec beside it (a training checkpoint, say) takes `codec`, else the default model's codec, with a
    printed note."""
    from vgpt.checkpoint import CheckpointError, weights_dir

    path = None if source is None else Path(source)
    if path is not None and not path.exists():
        raise CheckpointError(f"{path} does not exist: name an export bundle, a checkpoint folder or a training run")
    laid_out = path is None or (path / SETTINGS).is_file()  # the default model, or a folder laid out like it
    if model is not None and not laid_out:
        raise ConfigError(f"--model {model} picks one of the bundled models; {path} is a checkpoint itself")
    if laid_out or ((path.parent / SETTINGS).is_file() and path.name in BUNDLED_MODELS.values()):
        default = default_model(path if laid_out else path.parent)
        chosen = default.model_path(model) if laid_out else path
        return str(chosen), str(codec or default.codec_dir), default.defaults
    model = weights_dir(path)
    beside = next((p / name for p in (path, model.parent) for name in ("codec", "vae") if (p / name).is_dir()), None)
    if codec is None and beside is None:
        codec = default_model().codec_dir
        log.info("note: no codec beside %s and no --codec given: using the bundled codec (%s)", path, codec)
    return str(model), str(codec or beside), Defaults()
