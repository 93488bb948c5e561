import json

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import random_model
from vgpt.checkpoint import load_checkpoint, save_checkpoint
from vgpt.cli.eval import eval_main
from vgpt.codecs import LightCodec
from vgpt.config import ConfigError, SamplerConfig, get_preset
from vgpt.sampler import schedule
from vgpt.student import StudentSampler, student_indices


@pytest.fixture
def teacher_and_students(tmp_path):
    teacher = save_checkpoint(random_model(get_preset("tiny"), seed=1), tmp_path / "teacher")
    digest = load_checkpoint(teacher).weights_sha256
    sigmas = schedule(8, 3.0)
    students = []
    for k, stage in ((2, "consistency"), (2, "self_forcing")):
        table = tuple(float(sigmas[i]) for i in student_indices(8, k))
        record = StudentSampler(table, 2.0, 3.0, 8, digest, stage)
        model = random_model(get_preset("tiny"), seed=len(students) + 2)
        students.append(save_checkpoint(model, tmp_path / stage, extra={"student": record.to_dict()}))
    torch.manual_seed(0)
    codec = LightCodec().eval().save(tmp_path / "codec")
    return teacher, students, codec


def test_side_by_side_rows_share_scenes_and_noise(teacher_and_students, tmp_path):
    teacher, students, codec = teacher_and_students
    out = tmp_path / "cmp.json"
    args = ["--checkpoint", str(teacher), "--codec", str(codec), "--layout", "2,2,32x32px", "--steps", "8",
            "--guidance", "2", "--shift", "3", "--count", "2", "--num-clips", "2", "--json", str(out),
            "--plot", str(tmp_path / "cmp.png"), "--sheet", str(tmp_path / "sheet.png"), "--no-progress"]  # fmt: skip
    for s in students:
        args += ["--student", str(s)]
    result = CliRunner().invoke(eval_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert list(rows) == ["teacher 8x2", "teacher 2x2", "consistency student 2x1", "self-forcing student 2x1"]
    assert [r["network_evaluations"] for r in rows.values()] == [16, 4, 2, 2]
    assert rows["consistency student 2x1"]["timesteps"] == [float(schedule(8, 3.0)[i]) for i in (0, 4, 8)]
    for row in rows.values():
        for key in ("presence_by_horizon", "centroid_error_by_horizon", "colour_error_by_horizon", "psnr_by_horizon"):
            assert len(row[key]) == 4
    # Different weights, same scenes: the two students' rows differ; the teacher rows differ by steps alone.
    assert rows["teacher 8x2"]["psnr_by_horizon"] != rows["teacher 2x2"]["psnr_by_horizon"]
    assert "consistency student 2x1" in result.output and "NFE" in result.output
    assert (tmp_path / "cmp.png").stat().st_size > 0 and (tmp_path / "sheet.png").stat().st_size > 0


def test_a_student_of_another_teacher_is_refused(teacher_and_students, tmp_path):
    from vgpt.comparison import row_configs
    from vgpt.evaluation import EvalConfig

    teacher, students, codec = teacher_and_students
    other = save_checkpoint(random_model(get_preset("tiny"), seed=9), tmp_path / "other")
    config = EvalConfig(checkpoint=str(other), codec=str(codec), steps=8, guidance=2.0)
    with pytest.raises(ConfigError, match=r"was distilled from weights .*, not"):
        row_configs(config, [str(students[0])])
    with pytest.raises(ConfigError, match="is not a distilled student"):
        row_configs(config.__class__(checkpoint=str(teacher), codec=str(codec)), [str(other)])
    assert SamplerConfig().timesteps is None


def test_eval_refuses_sampler_options_for_a_student(teacher_and_students):
    _, students, codec = teacher_and_students
    result = CliRunner().invoke(eval_main, ["--checkpoint", str(students[0]), "--codec", str(codec), "--steps", "8"])
    assert result.exit_code == 2
    assert "--steps: " in result.output and "is a distilled student" in result.output
