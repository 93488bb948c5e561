#!/usr/bin/env bash
# Re-runs the bundled default's few-step student (docs/distillation.md) from the bundled teacher
# (vgpt/assets/default/model): stage 1 (consistency distillation), stage 2 (its own rollouts, DMD), the
# side-by-side evaluation, and copies the stage-2 student into vgpt/assets/default/student/ with that
# comparison, which decides whether the commands take it by default (vgpt.default_model.meets_the_bar: at
# least the teacher at every horizon) or only with --model student.
# Run it again after the teacher changes (scripts/train_bundled.sh). Each command resumes exactly from its
# last checkpoint (--resume auto): after an interruption, run the script again.
#   scripts/train_bundled_student.sh            # K = 4
#   K=2 scripts/train_bundled_student.sh
set -euo pipefail
cd "$(dirname "$0")/.."
K=${K:-4}
runs=${RUNS:-runs}
data=data/synthetic-train-3k
[[ -d $data ]] || vgpt-synth --out $data --count 3000 --frames 32 --seed-start 0
vgpt-distill --config distill-consistency --student-steps "$K" --data $data --out "$runs/distill-consistency-k$K" \
    --resume auto
vgpt-distill --config distill-self-forcing --student-steps "$K" --data $data --init "$runs/distill-consistency-k$K" \
    --out "$runs/distill-self-forcing-k$K" --resume auto
vgpt-eval --student "$runs/distill-consistency-k$K" --student "$runs/distill-self-forcing-k$K" --count 64 --num-clips 2 \
    --json "$runs/distill-eval-k$K.json" --plot "$runs/distill-eval-k$K.png" --sheet "$runs/distill-sheet-k$K.png"
python - "$runs/distill-self-forcing-k$K" "$runs/distill-eval-k$K.json" <<'PY'
import json, shutil, sys
from pathlib import Path

from vgpt.checkpoint import read_student, recorded_identity
from vgpt.default_model import BUNDLED_MODELS, COMPARISON, meets_the_bar

run, comparison = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip() / "model"
teacher = Path("vgpt/assets/default") / BUNDLED_MODELS["teacher"]
verdict = meets_the_bar(comparison, read_student(latest).to_dict(), recorded_identity(teacher)[0])
dst = Path("vgpt/assets/default") / BUNDLED_MODELS["student"]
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(latest, dst)
(dst / COMPARISON).write_text(json.dumps(comparison, indent=2))
print(f"shipped {latest} as {dst}: " + ("the default" if verdict is None else f"--model student only ({verdict})"))
PY
