#!/usr/bin/env bash
# Runs one experiment on a SLURM GPU cluster: writes an sbatch script and submits it.
#
#   scripts/launch_slurm.sh --nodes=2 --gpus-per-node=8 --config=experiments/digits.py:model=lstm \
#     --workdir=/shared/runs/x [--per=gpu|node] [--partition=P] [--account=A] [--time=04:00:00] \
#     [--job-name=comparenets] [--python=PATH] [--script=FILE] [--dry-run] \
#     [-- --config.train.steps=5000 ...]
#
# The checkout this script lives in must be on a filesystem every node sees, with its Python
# environment (default: .venv here; install jax[cuda12] into it). `srun` starts one process per
# GPU (--per=gpu: --gpus-per-task=1, so srun leaves each task its one GPU in
# CUDA_VISIBLE_DEVICES) or one per node (--per=node: the task sees every GPU of its node and
# drives them all). With more than one task, every process finds the others through
# jax.distributed's SLURM detection (SLURM_NTASKS > 1), and asks JAX for the GPUs that
# CUDA_VISIBLE_DEVICES leaves it (comparenets.distributed.slurm_local_device_ids), not for GPU
# number SLURM_LOCALID as JAX would on its own. The workdir must be shared too: a path
# on the cluster's shared filesystem or a gs:// bucket. The same command resumes from the newest
# checkpoint.
#
# A whole suite, spread over a SLURM job array (one array task per shard, each one process on
# --gpus-per-node GPUs of one node), then a report job that waits for every shard (afterok):
#
#   scripts/launch_slurm.sh --suite=full --shards=16 --workdir=/shared/runs/full [--gpus-per-node=1]
#
# Each shard runs `python -m comparenets.compare --suite=full --shard=$SLURM_ARRAY_TASK_ID/16`
# into the shared workdir; the report job runs the same command without --shard, which finds
# every run finished and writes REPORT.md (a shard stopped early is finished there first).
#
# --dry-run prints the sbatch script(s) and the sbatch command(s), and submits nothing. Anything
# after `--` is passed to comparenets.main.
set -euo pipefail

PROG=launch_slurm.sh
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# die, usage, split_flag
source "$ROOT/scripts/flags.sh"

quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

quote_all() {
  local out='' word
  for word in "$@"; do out+="${out:+ }$(quote "$word")"; done
  printf '%s' "$out"
}

NODES=1 GPUS=1 PER=gpu PARTITION='' ACCOUNT='' TIME='04:00:00' JOB='comparenets' CONFIG=''
WORKDIR='' PYTHON="$ROOT/.venv/bin/python" SCRIPT='' DRY_RUN=0 SUITE='' SHARDS=''

EXTRA=()
while (($#)); do
  arg="$1"
  case "$arg" in
    --dry-run) DRY_RUN=1; shift; continue ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *)
      split_flag "$@" || die "unexpected argument '$arg' (flags go before '--', comparenets flags after it)"
      key="$KEY" value="$VALUE"; shift "$TAKEN" ;;
  esac
  case "$key" in
    --nodes) NODES="$value" ;;
    --gpus-per-node) GPUS="$value" ;;
    --per) PER="$value" ;;
    --partition) PARTITION="$value" ;;
    --account) ACCOUNT="$value" ;;
    --time) TIME="$value" ;;
    --job-name) JOB="$value" ;;
    --config) CONFIG="$value" ;;
    --workdir) WORKDIR="$value" ;;
    --python) PYTHON="$value" ;;
    --script) SCRIPT="$value" ;;
    --suite) SUITE="$value" ;;
    --shards) SHARDS="$value" ;;
    *) die "unknown flag $key (see --help)" ;;
  esac
done

[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "--nodes=$NODES must be a positive integer"
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node=$GPUS must be a positive integer"
[[ "$PER" == gpu || "$PER" == node ]] || die "--per=$PER must be 'gpu' or 'node'"
[[ "$TIME" =~ ^([0-9]+-)?[0-9]+(:[0-9]{2}){0,2}$ ]] || die "--time=$TIME is not a SLURM time such as 04:00:00"
[[ "$JOB" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--job-name=$JOB may hold letters, digits, '_', '.' and '-' only"
if [[ -n "$SUITE" ]]; then
  [[ -z "$CONFIG" ]] ||
    die "--suite and --config exclude each other: a suite names its experiments"
  ((${#EXTRA[@]} == 0)) ||
    die "--suite takes no comparenets.main flags after '--' (the suite file sets its overrides)"
  [[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] ||
    die "--suite needs --shards=N, a positive integer (array tasks)"
  [[ -f "$ROOT/experiments/suites/$SUITE.py" || ( "$SUITE" == *.py && -f "$SUITE" ) ]] ||
    die "--suite=$SUITE is neither experiments/suites/$SUITE.py nor a suite file"
else
  [[ -z "$SHARDS" ]] || die "--shards needs --suite"
  [[ -n "$CONFIG" ]] || die "--config is required (e.g. experiments/digits.py:model=lstm)"
  EXPERIMENT="${CONFIG%%:*}"
  [[ "$EXPERIMENT" == experiments/*.py ]] ||
    die "--config=$CONFIG must name a file under experiments/ (e.g. experiments/digits.py:model=lstm)"
  [[ -f "$ROOT/$EXPERIMENT" ]] || die "$EXPERIMENT does not exist in $ROOT"
fi
[[ -n "$WORKDIR" ]] || die "--workdir is required (a shared path or gs://...)"
if [[ "$WORKDIR" != gs://?* ]]; then
  [[ "$WORKDIR" == /* ]] || die "--workdir=$WORKDIR must be an absolute path on the shared filesystem, or gs://..."
fi
SCRIPT="${SCRIPT:-${TMPDIR:-/tmp}/comparenets-$JOB.sbatch}"

# The #SBATCH lines every script shares, after its own.
common() {
  local out="#SBATCH --time=$TIME"$'\n'"#SBATCH --output=$1"
  [[ -n "$PARTITION" ]] && out+=$'\n'"#SBATCH --partition=$PARTITION"
  [[ -n "$ACCOUNT" ]] && out+=$'\n'"#SBATCH --account=$ACCOUNT"
  printf '%s' "$out"
}

if [[ -n "$SUITE" ]]; then
  REPORT_SCRIPT="${SCRIPT%.sbatch}-report.sbatch"
  compare=("$PYTHON" -m comparenets.compare --suite="$SUITE" --workdir="$WORKDIR")
  one_node="#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=$GPUS"
  array_script="#!/bin/bash
#SBATCH --job-name=$JOB
#SBATCH --array=0-$((SHARDS - 1))
$one_node
$(common "$JOB-%A_%a.out")
# shard \$SLURM_ARRAY_TASK_ID of $SHARDS of suite $SUITE: one process, no jax.distributed
set -euo pipefail
cd $(quote "$ROOT")
srun $(quote_all "${compare[@]}") --shard=\"\$SLURM_ARRAY_TASK_ID/$SHARDS\""
  report_script="#!/bin/bash
#SBATCH --job-name=$JOB-report
$one_node
$(common "$JOB-report-%j.out")
# after every shard (submitted with --dependency=afterok:<the array's job id>): the report
set -euo pipefail
cd $(quote "$ROOT")
srun $(quote_all "${compare[@]}")"
  submit_array="sbatch --parsable $(quote "$SCRIPT")"
  submit_report="sbatch --dependency=afterok:\$ARRAY_JOB $(quote "$REPORT_SCRIPT")"
  if ((DRY_RUN)); then
    printf '# %s\n%s\n# %s\n%s\n# submit with:\n' "$SCRIPT" "$array_script" "$REPORT_SCRIPT" \
      "$report_script"
    printf 'ARRAY_JOB=$(%s); ARRAY_JOB=${ARRAY_JOB%%%%;*}\n%s\n' "$submit_array" "$submit_report"
    exit 0
  fi
  printf '%s\n' "$array_script" > "$SCRIPT"
  printf '%s\n' "$report_script" > "$REPORT_SCRIPT"
  echo "+ $submit_array" >&2
  ARRAY_JOB="$(sbatch --parsable "$SCRIPT")"
  ARRAY_JOB="${ARRAY_JOB%%;*}"  # --parsable: "jobid" or "jobid;cluster"
  [[ "$ARRAY_JOB" =~ ^[0-9]+$ ]] || die "sbatch --parsable gave '$ARRAY_JOB', not a job id"
  echo "+ sbatch --dependency=afterok:$ARRAY_JOB $(quote "$REPORT_SCRIPT")" >&2
  sbatch --dependency=afterok:"$ARRAY_JOB" "$REPORT_SCRIPT"
  exit 0
fi

if [[ "$PER" == gpu ]]; then
  tasks_per_node="$GPUS"; gpu_lines="#SBATCH --gpus-per-task=1"
else
  tasks_per_node=1; gpu_lines="#SBATCH --gpus-per-node=$GPUS"
fi
run=(srun --kill-on-bad-exit=1 "$PYTHON" -m comparenets.main --config="$CONFIG"
     --workdir="$WORKDIR" "${EXTRA[@]}")

sbatch_script="#!/bin/bash
#SBATCH --job-name=$JOB
#SBATCH --nodes=$NODES
#SBATCH --ntasks-per-node=$tasks_per_node
$gpu_lines
#SBATCH --time=$TIME
#SBATCH --output=$JOB-%j.out"
[[ -n "$PARTITION" ]] && sbatch_script+=$'\n'"#SBATCH --partition=$PARTITION"
[[ -n "$ACCOUNT" ]] && sbatch_script+=$'\n'"#SBATCH --account=$ACCOUNT"
sbatch_script+="
# $((NODES * tasks_per_node)) process(es), one per $PER; each joins jax.distributed when there are several
set -euo pipefail
cd $(quote "$ROOT")
$(quote_all "${run[@]}")"

submit="sbatch $(quote "$SCRIPT")"
if ((DRY_RUN)); then
  printf '# %s\n%s\n# submit with:\n%s\n' "$SCRIPT" "$sbatch_script" "$submit"
  exit 0
fi
printf '%s\n' "$sbatch_script" > "$SCRIPT"
echo "+ $submit" >&2
sbatch "$SCRIPT"
