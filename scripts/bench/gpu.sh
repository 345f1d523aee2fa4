#!/usr/bin/env bash
# Every accelerator measurement, as one call: accelerator time comes in short windows.
#
#   bash scripts/bench/gpu.sh [OUTDIR]     # default: scripts/bench/results/<date>-<device>
#   GPU_SH_TINY=1 bash scripts/bench/gpu.sh /tmp/out   # seconds-sized: proves it on a CPU
#
# In order, each step with its own timeout (together at most 8 minutes; GPU_SH_TINY shrinks
# every size and keeps the same steps):
#   1. bench.jsonl: the matmul peak, the recurrent layers (ours, Flax, PyTorch/cuDNN), the CNN
#      step, and the TCN in each convolution form against the LSTM at equal parameters at
#      T=256 and 4096 with the fraction of the matmul peak (issue 19, item 1), in one job;
#   2. bench.jsonl: the train loop against the bare step at several steps_per_dispatch for the
#      digits CNN and LSTM (issue 19, item 2), and the compile time;
#   3. runs.jsonl: training smoke runs in float32 and bfloat16;
#   4. memory.txt: the train step's memory of the two recurrent implementations;
#   5. members.jsonl: a sweep's members in one program (3 and 8 members of the digits CNN and
#      LSTM, batched and in turn) against one member's step (issue 19, item 4).
# Runs without nvidia-smi and without torch (both are reported as missing).
set -u
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
tiny=${GPU_SH_TINY:-0}
device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 |
         tr -c 'a-zA-Z0-9\n' '-' | tr 'A-Z' 'a-z')
out=${1:-scripts/bench/results/$(date +%F)-${device:-cpu}}
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}  # room for torch
export PYTHONUNBUFFERED=1
start_all=$(date +%s)

if [ "$tiny" = 1 ]; then
  t_bench=300 t_loop=300 t_run=90 t_mem=60 t_members=120  # a loaded 2-core CPU
  bench_sizes=(--tiny --repeats=1 --min_time=0)
  loop_sizes=(--tiny --repeats=1 --steps_per_dispatch=1,5)
  members_sizes=(--tiny --repeats=1)
  run_extra=--config.train.steps=20 mem_len=16 mem_hidden=16
else  # 170 + 110 + 4 x 30 + 30 + 50 = 480 s at most
  t_bench=170 t_loop=110 t_run=30 t_mem=30 t_members=50
  bench_sizes=(--repeats=5 --min_time=0.1 --recurrent_shapes=64,128,32,256:256,512,128,512
               --tcn_lengths=256,4096 --tcn_batch=128)
  loop_sizes=(--repeats=2 --steps_per_dispatch=1,5,25,100)
  members_sizes=(--repeats=3 --min_time=0.1)
  run_extra= mem_len=1024 mem_hidden=512
fi

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null ||
    echo "no nvidia-smi"
  "$py" -c "import jax, flax, optax
try:
  import torch; t = torch.__version__
except ImportError:
  t = None
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'torch', t,
      jax.devices())"
} > "$out/device.txt" 2>&1
cat "$out/device.txt"

echo "== 1. benchmarks: matmul peak, recurrent layers, CNN step, TCN forms vs LSTM"
timeout "$t_bench" "$py" -m comparenets.analysis.bench --cases=matmul,recurrent,cnn,tcn \
  "${bench_sizes[@]}" --out="$out/bench.jsonl" > "$out/bench.log" 2>&1 ||
  echo "bench exit $?"

echo "== 2. loop vs bare step at several steps_per_dispatch; compile time"
timeout "$t_loop" "$py" -m comparenets.analysis.bench --cases=loop,compile "${loop_sizes[@]}" \
  --out="$out/bench.jsonl" >> "$out/bench.log" 2>&1 || echo "loop bench exit $?"

echo "== 3. training smoke runs"
for run in "digits.py:model=lstm|" "digits.py:model=lstm|--config.train.compute_dtype=bfloat16" \
           "digits.py:model=cnn|" "digits.py:model=tcn|"; do
  cfg=${run%%|*} extra=${run#*|}
  name=$(echo "$cfg$extra" | tr -c 'a-zA-Z0-9' '_')
  start=$(date +%s.%N)
  rm -rf "/tmp/gpu_runs/$name"
  timeout "$t_run" "$py" -m comparenets.main --config="experiments/$cfg" \
    --workdir="/tmp/gpu_runs/$name" $extra $run_extra > "$out/run_$name.log" 2>&1
  rc=$?
  "$py" - "$name" "$rc" "$start" "/tmp/gpu_runs/$name/results.json" >> "$out/runs.jsonl" <<'PY'
import json, sys, time
name, rc, start, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
try:
  r = json.load(open(path))
  keep = {k: r.get(k) for k in ('model', 'steps', 'devices', 'train_time_s', 'test')}
except OSError:
  keep = {}
print(json.dumps({'run': name, 'exit': rc, 'wall_s': time.time() - start, **keep}))
PY
done
tail -n 4 "$out/runs.jsonl"

echo "== 4. train-step memory, fused vs scan"
timeout "$t_mem" "$py" - "$mem_len" "$mem_hidden" > "$out/memory.txt" 2>&1 <<'PY'
import sys
import jax, jax.numpy as jnp
from comparenets import models
from comparenets.models.heads import ClassificationHead, TaskModel
length, hidden = int(sys.argv[1]), int(sys.argv[2])
x = jnp.ones((64, length, 32))
for impl in ('fused', 'scan'):
  m = TaskModel(backbone=models.build('lstm', hidden=hidden, layers=4, impl=impl),
                head=ClassificationHead(10))
  v = m.init(jax.random.PRNGKey(0), x)
  g = jax.jit(jax.grad(lambda v, x: m.apply(v, x).sum()))
  mem = g.lower(v, x).compile().memory_analysis()
  print({'impl': impl, 'T': length, 'H': hidden, 'temp_MB': mem.temp_size_in_bytes / 1e6})
PY
cat "$out/memory.txt"

echo "== 5. members in one program: 3 and 8 members of the digits CNN and LSTM, batched and in turn"
timeout "$t_members" "$py" -m comparenets.analysis.bench --cases=members "${members_sizes[@]}" \
  --out="$out/members.jsonl" > "$out/members.log" 2>&1 || echo "members exit $?"
cat "$out/members.jsonl"

echo "== done in $(( $(date +%s) - start_all )) s; $(grep -c . "$out/bench.jsonl") bench lines in $out"
