#!/usr/bin/env bash
# Sets up .venv (see setup_env.sh) and runs the main job on embedded data: every model family
# (cnn, tcn, rnn, lstm, gru) trained on the digits task with the experiment's default settings,
# then a table of their results. Runs land in $WORKDIR (default: runs/digits); a run that is
# already there resumes or, when finished, is evaluated again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
WORKDIR="${WORKDIR:-$ROOT/runs/digits}"
for model in cnn tcn rnn lstm gru; do
  echo "== $model"
  python -m comparenets.main --config="experiments/digits.py:model=$model" \
    --workdir="$WORKDIR/$model" "$@"
done
python -m comparenets.summary "$WORKDIR"
