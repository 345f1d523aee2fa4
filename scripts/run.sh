#!/usr/bin/env bash
# Sets up .venv (see setup_env.sh) and runs the main job on embedded data: the quick comparison
# suite (every family on digits, sequential digits, the adding problem, copy memory,
# sunspot forecasting, the character LM, Bach chorales, moving digits;
# experiments/suites/quick.py), then writes the report
# $WORKDIR/REPORT.md with its plots (default WORKDIR: runs/quick). Finished runs are skipped and
# an interrupted suite resumes, so running it again only writes the report again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
WORKDIR="${WORKDIR:-$ROOT/runs/quick}"
python -m comparenets.compare --suite=quick --workdir="$WORKDIR" "$@"
python -m comparenets.summary "$WORKDIR"
