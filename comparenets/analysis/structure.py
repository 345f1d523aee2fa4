"""Structure of a backbone as a function of its input: parameters, FLOPs, receptive field,
training-step memory, compile time and throughput.

FLOPs come from XLA's cost analysis of the compiled program. XLA counts the body of a ``while``
loop once, whatever its trip count (measured: a 64-step LSTM's forward pass reports 11.2 MFLOP
where its matrix products alone are 142.6 MFLOP). `xla_flops` therefore compiles recurrent
models twice, with ``unroll=1`` and ``unroll=2``: the difference is one time step of every loop,
and ``F(1) + (T - 1) (F(2) - F(1))`` is the whole sequence. The tests check this against a fully
unrolled program and against the analytic count.

    python -m comparenets.analysis.structure --models=cnn,tcn,rnn,lstm,gru --lengths=16,64,256
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from comparenets import console, models, runtime
from comparenets.models.heads import ClassificationHead, TaskModel


def count_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def compiled_flops(fn: Callable, *args) -> tuple[float, Any]:
  """XLA's FLOP count of ``fn`` compiled for ``args`` (a loop body counts once), and the
  compiled program."""
  compiled = jax.jit(fn).lower(*args).compile()
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis.get('flops', 0.0)), compiled


def build(name: str, kwargs: dict[str, Any], num_classes: int = 10) -> TaskModel:
  return TaskModel(backbone=models.build(name, **kwargs),
                   head=ClassificationHead(num_classes))


# Side of each frame of a video backbone's example input (its length is the number of frames).
VIDEO_SIDE = 16


def example_input(name: str, length: int, features: int) -> jax.Array:
  """A batch-of-one input: a length x length x features image, a length-step sequence, or a
  video of length frames of VIDEO_SIDE x VIDEO_SIDE x features."""
  kind = models.input_kind(name)
  if kind == 'image':
    return jnp.ones((1, length, length, features))
  if kind == 'video':
    return jnp.ones((1, length, VIDEO_SIDE, VIDEO_SIDE, features))
  return jnp.ones((1, length, features))


def _programs(model: TaskModel, variables, x):
  labels = jnp.zeros((x.shape[0],), jnp.int32)

  def forward(variables, x):
    return model.apply(variables, x)

  def train_step(variables, x):
    def loss(params):
      logits = model.apply({**variables, 'params': params}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return jax.grad(loss)(variables['params'])

  return forward, train_step


def xla_flops(name: str, kwargs: dict[str, Any], x: jax.Array) -> dict[str, float]:
  """Forward and forward+backward FLOPs of ``x``'s batch, counting every time step."""
  recurrent = 'unroll' in models.fields(name)
  steps = x.shape[1]
  out = {}
  for unroll in ((1, 2) if recurrent and steps > 1 else (None,)):
    kw = dict(kwargs, unroll=unroll) if unroll else kwargs
    model = build(name, kw)
    variables = runtime.run_once(model.init, jax.random.PRNGKey(0), x)
    forward, train_step = _programs(model, variables, x)
    out[unroll] = (compiled_flops(forward, variables, x)[0],
                   compiled_flops(train_step, variables, x)[0])
  if None in out:
    fwd, train = out[None]
  else:
    (f1, t1), (f2, t2) = out[1], out[2]
    if steps % 2:  # unroll=2 over an odd length adds a remainder step; avoid the guesswork
      raise ValueError('xla_flops of a recurrent model needs an even sequence length')
    fwd, train = f1 + (steps - 1) * (f2 - f1), t1 + (steps - 1) * (t2 - t1)
  return {'forward': fwd, 'train_step': train}


def analyze(name: str, kwargs: dict[str, Any], length: int, features: int = 1,
            batch: int = 32, repeats: int = 5) -> dict[str, Any]:
  """Every structure metric of one backbone (with a 10-way head) at one input size."""
  x1 = example_input(name, length, features)
  model = build(name, kwargs)
  variables = runtime.run_once(model.init, jax.random.PRNGKey(0), x1)
  flops = xla_flops(name, kwargs, x1)
  xb = jnp.ones((batch,) + x1.shape[1:])
  _, train_step = _programs(model, variables, xb)
  cached = jax.config.jax_enable_compilation_cache
  jax.config.update('jax_enable_compilation_cache', False)  # a compile time, not a cache read
  try:
    start = time.perf_counter()
    compiled = jax.jit(train_step).lower(variables, xb).compile()
    compile_s = time.perf_counter() - start
  finally:
    jax.config.update('jax_enable_compilation_cache', cached)
  memory = compiled.memory_analysis()
  jax.block_until_ready(compiled(variables, xb))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(variables, xb))
    times.append(time.perf_counter() - start)
  step_s = float(np.median(times))
  backbone = models.build(name, **kwargs)
  receptive = getattr(backbone, 'receptive_field', None)
  return {
      'model': name, 'length': length, 'features': features, 'batch': batch,
      'params': count_params(variables['params']),
      'backbone_params': count_params(variables['params']['backbone']),
      'flops_forward_per_example': flops['forward'],
      'flops_train_per_example': flops['train_step'],
      'receptive_field': receptive() if receptive else None,
      'train_step_temp_bytes': int(memory.temp_size_in_bytes),
      'compile_s': compile_s,
      'train_step_s': step_s,
      'examples_per_s': batch / step_s,
      'time_steps_per_s': batch * length / step_s
                          if models.input_kind(name) in ('sequence', 'video') else None,
      'achieved_flops_per_s': flops['train_step'] * batch / step_s,
  }


# The sizes each backbone is measured at: its own defaults (every configurable field spelled
# out), read from the registry. This was a table of its own that matched the defaults field for
# field; a second copy of them could only drift.
DEFAULT_KWARGS: dict[str, dict[str, Any]] = {name: models.fields(name)
                                             for name in models.ordered()}


def sequence_models() -> list[str]:
  """The backbones whose structure changes with a sequence length T (those reading sequences),
  in display order: the ones the report measures at its lengths."""
  return [name for name in models.ordered() if models.input_kind(name) == 'sequence']


def _define_flags() -> None:
  """The command line's flags, defined when it runs: on import they would collide with a
  notebook's or script's own --models / --batch (absl flags are process-wide)."""
  flags.DEFINE_list('models', ['cnn', 'tcn', 'rnn', 'lstm', 'gru'], 'Backbones.')
  flags.DEFINE_list('lengths', ['16', '64', '256'], 'Sequence lengths T (image side for the CNN).')
  flags.DEFINE_integer('batch', 32, 'Batch size of the timed train step.')


def main(argv: Sequence[str]) -> None:
  """Prints one JSON line per (model, length) (`python -m comparenets.analysis.structure`)."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  console.setup_logging(logging.WARNING)  # stdout is the JSON lines; stderr warnings only
  opts = flags.FLAGS
  for name in opts.models:
    for length in map(int, opts.lengths):
      print(json.dumps(analyze(name, DEFAULT_KWARGS[name], length, batch=opts.batch)),
            flush=True)


if __name__ == '__main__':
  console.run(main, _define_flags)
