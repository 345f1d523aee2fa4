#!/usr/bin/env bash
# Runs a suite on one machine with several accelerators: one process per device, each its own
# shard of the suite, and the report once all are done.
#
#   scripts/run_suite_per_device.sh --suite=full --workdir=runs/full [--devices=K] \
#     [--python=PATH] [--logs=DIR]
#
# Starts K processes in the background (K: --devices, else the GPUs `nvidia-smi -L` lists, else
# 1); process i sees device i only and runs
#   python -m comparenets.compare --suite=NAME --workdir=W --shard=i/K --report_when_all_done
# so the last one to finish writes W/REPORT.md over every shard's runs. Each process is alone
# on its device, with no jax.distributed: a GPU through CUDA_VISIBLE_DEVICES=i; a TPU chip
# through libtpu's variables for one process on a subset of a TPU VM's chips
# (TPU_VISIBLE_CHIPS=i, TPU_CHIPS_PER_PROCESS_BOUNDS=1,1,1, TPU_PROCESS_BOUNDS=1,1,1, a port of
# its own in TPU_PROCESS_PORT/TPU_PROCESS_ADDRESSES, as in
# gist.github.com/skye/f82ba45d2445bb19d53545538754f9a3; not yet tried on a TPU VM). Both sets
# are given to every process: each runtime ignores the other's.
# Process i logs to LOGS/shard-i.log (default W/logs; give --logs for a gs:// workdir). The
# script waits for all of them and exits 0, or 1 naming every shard that failed (the others'
# runs are kept: the same command runs what is left). SIGTERM or Ctrl-C is passed on to every
# process, which checkpoints and stops.
set -euo pipefail

PROG=run_suite_per_device.sh
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# die, usage, split_flag
source "$ROOT/scripts/flags.sh"
BASE_PORT=8476

SUITE='' WORKDIR='' DEVICES='' PYTHON='' LOGS=''
while (($#)); do
  arg="$1"
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    *)
      split_flag "$@" || die "unexpected argument '$arg'"
      key="$KEY" value="$VALUE"; shift "$TAKEN" ;;
  esac
  case "$key" in
    --suite) SUITE="$value" ;;
    --workdir) WORKDIR="$value" ;;
    --devices) DEVICES="$value" ;;
    --python) PYTHON="$value" ;;
    --logs) LOGS="$value" ;;
    *) die "unknown flag $key (see --help)" ;;
  esac
done

[[ -n "$SUITE" ]] || die "--suite is required (e.g. --suite=quick)"
[[ -n "$WORKDIR" ]] || die "--workdir is required"
if [[ -z "$DEVICES" ]]; then
  DEVICES="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
  ((DEVICES > 0)) || DEVICES=1
fi
[[ "$DEVICES" =~ ^[1-9][0-9]*$ ]] || die "--devices=$DEVICES must be a positive integer"
if [[ -z "$PYTHON" ]]; then
  PYTHON="$ROOT/.venv/bin/python"
  [[ -x "$PYTHON" ]] || PYTHON=python3
fi
if [[ -z "$LOGS" ]]; then
  [[ "$WORKDIR" != *://* ]] || die "--workdir=$WORKDIR is on a bucket: give --logs=DIR (local)"
  LOGS="$WORKDIR/logs"
fi
mkdir -p "$LOGS"

pids=() stopped='' caught=0
stop() {
  stopped=1 caught=$((caught + 1))
  echo "$PROG: stopping every shard (each checkpoints)" >&2
  ((${#pids[@]} == 0)) || kill -TERM "${pids[@]}" 2>/dev/null || true
}
trap stop TERM INT HUP
for ((i = 0; i < DEVICES; i++)); do
  port=$((BASE_PORT + i))
  CUDA_VISIBLE_DEVICES="$i" TPU_VISIBLE_CHIPS="$i" TPU_CHIPS_PER_PROCESS_BOUNDS=1,1,1 \
  TPU_PROCESS_BOUNDS=1,1,1 TPU_PROCESS_PORT="$port" TPU_PROCESS_ADDRESSES="localhost:$port" \
  CLOUD_TPU_TASK_ID=0 \
    "$PYTHON" -m comparenets.compare --suite="$SUITE" --workdir="$WORKDIR" \
    --shard="$i/$DEVICES" --report_when_all_done > "$LOGS/shard-$i.log" 2>&1 < /dev/null &
  pids+=($!)
  echo "$PROG: shard $i/$DEVICES started (pid $!), log $LOGS/shard-$i.log" >&2
done

failed=()
for ((i = 0; i < DEVICES; i++)); do
  rc=0
  while :; do
    signals=$caught
    wait "${pids[$i]}" && rc=0 || rc=$?
    # a trapped signal ends `wait` early with 128+signal, the process not yet reaped: wait
    # again, for the process's own status
    ((caught == signals)) && break
  done
  ((rc == 0)) || failed+=("shard $i/$DEVICES (exit $rc, log $LOGS/shard-$i.log)")
done
if ((${#failed[@]})); then
  echo "$PROG: error: ${#failed[@]} of $DEVICES failed: ${failed[*]}" >&2
  exit 1
fi
if [[ -n "$stopped" ]]; then  # the shards exit 0 when stopped: nothing is finished
  echo "$PROG: stopped; run the same command to finish the suite" >&2
  exit 143
fi
report="$WORKDIR/REPORT.md"
if [[ "$WORKDIR" != *://* && ! -e "$report" ]]; then
  echo "$PROG: error: every shard exited 0 but no report was written; the logs in $LOGS say" \
    "which runs are left" >&2
  exit 1
fi
echo "$PROG: all $DEVICES shards done; report: $report" >&2
