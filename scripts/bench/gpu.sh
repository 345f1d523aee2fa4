#!/usr/bin/env bash
# The GPU checks, as one script: benchmarks (ours vs Flax vs PyTorch/cuDNN), training smoke runs
# in float32 and bfloat16, and the training step's memory of the two recurrent implementations.
# Writes everything under OUTDIR.
#
#   bash scripts/bench/gpu.sh OUTDIR
#
# Needs jax with its CUDA plugin, flax, optax, orbax, ml_collections, tensorboardX, absl,
# scikit-learn, matplotlib and (optional) torch in $PYTHON (default python3).
set -u
out=${1:?usage: bash scripts/bench/gpu.sh OUTDIR}
mkdir -p "$out"
py=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}  # room for torch
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$py" -c "import jax, flax, optax, torch; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, 'torch', torch.__version__, jax.devices())"
} > "$out/gpu.txt" 2>&1

echo "== benchmarks"
timeout 300 "$py" -m comparenets.analysis.bench --cases=matmul,recurrent,cnn --repeats=5 \
  --min_time=0.1 --recurrent_shapes=64,128,32,256:256,512,128,512 --out="$out/bench.jsonl" \
  > "$out/bench.log" 2>&1 || echo "bench exit $?"

echo "== training smoke runs"
for run in "digits.py:model=lstm|" "digits.py:model=lstm|--config.train.compute_dtype=bfloat16" \
           "digits.py:model=cnn|" "adding.py:model=lstm|"; do
  cfg=${run%%|*} extra=${run#*|}
  name=$(echo "$cfg$extra" | tr -c 'a-zA-Z0-9' '_')
  start=$(date +%s.%N)
  timeout 120 "$py" -m comparenets.main --config="experiments/$cfg" --workdir="/tmp/gpu_runs/$name" \
    $extra > "$out/run_$name.log" 2>&1
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
tail -n 5 "$out/runs.jsonl"

echo "== train-step memory, fused vs scan"
timeout 60 "$py" - > "$out/memory.txt" 2>&1 <<'PY'
import jax, jax.numpy as jnp
from comparenets import models
from comparenets.models.heads import ClassificationHead, TaskModel
x = jnp.ones((64, 1024, 32))
for impl in ('fused', 'scan'):
  m = TaskModel(backbone=models.build('lstm', hidden=512, layers=4, impl=impl),
                head=ClassificationHead(10))
  v = m.init(jax.random.PRNGKey(0), x)
  g = jax.jit(jax.grad(lambda v, x: m.apply(v, x).sum()))
  mem = g.lower(v, x).compile().memory_analysis()
  print({'impl': impl, 'temp_MB': mem.temp_size_in_bytes / 1e6})
PY
cat "$out/memory.txt"

echo "== loop overhead, compile time"
timeout 150 "$py" -m comparenets.analysis.bench --cases=loop,compile --repeats=2 \
  --out="$out/bench.jsonl" >> "$out/bench.log" 2>&1 || echo "bench exit $?"
grep -c . "$out/bench.jsonl"
