#!/usr/bin/env bash
# Reproduces the bundled default model (vgpt/assets/default/) on a CPU: synthetic training videos, the
# light codec, the small transformer, the held-out evaluation, then copies the result into the package.
set -euo pipefail
cd "$(dirname "$0")/.."
vgpt-synth --out data/synthetic-train --count 600 --frames 32 --seed-start 0
# The codec: 1000 steps of an 8000-step schedule at lr 2e-3, then a fresh 3500-step schedule at 1e-3
# from there (how the shipped codec was made: the first schedule was cut short to save CPU time).
vgpt-train-codec --data data/synthetic-train --out runs/codec-warm --steps 8000 --lr 2e-3 --stop-after 1000
vgpt-train-codec --data data/synthetic-train --out runs/codec --init runs/codec-warm --steps 3500 --lr 1e-3
vgpt-train --config bundled --progress
latest=runs/bundled/checkpoints/$(cat runs/bundled/checkpoints/latest)
vgpt-eval --checkpoint "$latest/model" --codec runs/codec --history 4 --clip 4 --steps 50 --guidance 1.5 \
  --json runs/bundled/eval.json
python - "$latest" <<'PY'
import json, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path("vgpt/assets/default")
shutil.rmtree(dst, ignore_errors=True)
dst.mkdir(parents=True)
shutil.copytree(src / "model", dst / "model")
shutil.copytree("runs/codec", dst / "codec")
settings = {"history": 4, "clip": 4, "height": 64, "width": 64, "steps": 50, "guidance": 1.5, "shift": 1.0,
            "reproduce": "bash scripts/train_bundled.sh", "eval": json.loads(Path("runs/bundled/eval.json").read_text())}
(dst / "bundle.json").write_text(json.dumps(settings, indent=2))
PY
du -sh vgpt/assets/default
