#!/usr/bin/env bash
# Reproduces the bundled GPDiT model (vgpt/assets/default/gpdit/) on a CPU: gpdit-small from scratch on
# the bundled default's 3000 training scenes and its codec (one stage, training/stages/gpdit-bundled.json),
# the held-out evaluation at the bundled default's layout and sampler, then copies the averaged weights
# into the package beside the Video-GPT teacher. Resumes after an interruption (--resume auto).
# Usage: scripts/train_bundled_gpdit.sh [RUNS_DIR]   (default runs/; data/synthetic-train-3k is made if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
[[ -d data/synthetic-train-3k ]] || vgpt-synth --out data/synthetic-train-3k --count 3000 --frames 32 --seed-start 0
vgpt-train --config gpdit-bundled --data data/synthetic-train-3k --out "$runs/gpdit-bundled" --resume auto
latest=$runs/gpdit-bundled/checkpoints/$(cat "$runs/gpdit-bundled/checkpoints/latest")
rm -rf vgpt/assets/default/gpdit
cp -r "$latest/ema" vgpt/assets/default/gpdit  # the averaged weights
# The same 64 held-out scenes, noise and sampler (defaults.json: 50 steps, guidance 2, shift 3) as the
# Video-GPT default's figures in docs/bundled-eval.json.
vgpt-eval --model gpdit --count 64 --num-clips 2 --json docs/gpdit-eval.json --plot docs/gpdit-eval.png \
  --sheet docs/gpdit-eval-sheet.png
du -sh vgpt/assets/default/gpdit
