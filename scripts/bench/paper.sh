#!/usr/bin/env bash
# The paper suite (experiments/suites/paper.py: Bai et al. 2018, Table 1's rows that embedded or
# generated data reproduce) on an accelerator, in one call sized for a short window, then its
# report with the section "Against the published table".
#
#   bash scripts/bench/paper.sh [WORKDIR]           # default: runs/paper; at most PAPER_SH_S s
#   PAPER_SH_STEPS=20 bash scripts/bench/paper.sh /tmp/paper   # every entry 20 steps: a proof
#   PAPER_SH_S=5400 PAPER_SH_STEPS=800 PAPER_SH_ARG=rows=adding_T600+copy_memory_T1000,rates=1 \
#     bash scripts/bench/paper.sh runs/paper_cpu    # the share a CPU runs in 90 minutes
#
# The suite trains until PAPER_SH_S seconds (default 420) have passed, then SIGTERM makes the
# run in progress save a checkpoint and stop (exit 0); the report is written over every run
# finished so far. The same command in the next window skips the finished runs and resumes the
# interrupted one, so the suite completes over as many windows as it needs.
set -u
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
workdir=${1:-runs/paper}
limit=${PAPER_SH_S:-420}
steps=${PAPER_SH_STEPS:-}
extra=${PAPER_SH_ARG:-}   # more of the suite's arguments (experiments/suites/paper.py)
args=${steps:+steps=$steps}${extra:+${steps:+,}$extra}
suite=paper${args:+:$args}
export PYTHONUNBUFFERED=1
mkdir -p "$workdir"
start=$(date +%s)
echo "== $suite into $workdir, at most $limit s"
timeout -s TERM -k 60 "$limit" "$py" -m comparenets.compare --suite="$suite" \
  --workdir="$workdir" > "$workdir/suite.log" 2>&1
echo "suite exit $? after $(( $(date +%s) - start )) s"
"$py" - "$workdir" <<'PY'
import sys
import comparenets as cn
from comparenets.errors import ConfigError
try:
  print('report:', cn.write_report(sys.argv[1]))
except ConfigError as e:  # nothing finished yet
  print('no report yet:', e)
PY
echo "== finished runs: $(find "$workdir" -name results.json | wc -l); done in $(( $(date +%s) - start )) s"
