"""Benchmarks against references run in the same job: one JSON line per case.

    python -m comparenets.analysis.bench                      # every case, 5 repeats
    python -m comparenets.analysis.bench --cases=recurrent --repeats=7
    python -m comparenets.analysis.bench --tiny               # seconds: checks the code runs

Cases:

* ``matmul``: a square fp32 matrix product, the device's measured peak (GFLOP/s).
* ``recurrent``: one RNN/LSTM/GRU layer, forward and forward+backward, ours (``fused`` and
  ``scan``) against Flax's ``nn.RNN`` with its own cells and, when PyTorch is installed, against
  ``torch.nn.RNN/LSTM/GRU`` (same shapes, same threads, parameters copied from ours; the line of
  each reference holds its largest output difference from ours).
* ``cnn``: the Flax MNIST example's network (two 3x3 conv + avg-pool blocks, dense 256, dense 10)
  as our backbone + head trained by our own compiled train step, against the same network and
  optimizer in PyTorch; achieved FLOP/s as a fraction of the measured matmul peak.
* ``tcn``: the TCN's train step in each form of its convolution (``conv_impl``) against the
  LSTM's at equal backbone parameters (the TCN's width chosen to match the structure defaults'
  LSTM), time steps per second at ``--tcn_lengths``; achieved FLOP/s as a fraction of the
  measured matmul peak (with ``matmul`` in the same job), and the form ``conv_impl='auto'``
  picks on this backend.
* ``loop``: `train_and_evaluate` with logging and checkpoints (and ``--steps_per_dispatch``)
  against the bare compiled step on the same batches.
* ``compile``: compile time of a recurrent train step for T = 16 and 1024.
* ``reads``: TFDS records read through `tfds.data_source` (ArrayRecord), in batches
  (`pipeline.read_records`: one ``__getitems__`` per chunk, what the tasks do) against one record
  at a time (``source[i]``, the reference): MNIST training batches of 128 at random indices and
  the whole IMDB training split, examples/s. Needs ``--data_dir`` with ``mnist`` and
  ``imdb_reviews`` prepared (``scripts/bench/prepare_tfds_reads.py`` writes datasets of their
  shapes, with TensorFlow); ``--tiny`` runs it on `tfds.testing.mock_data` instead. With
  ``--data_dir``, also MNIST training batches in step order read in this process against grain
  worker processes reading ahead (`pipeline.StreamedSampler`, ``task.read_workers``).
* ``members``: the train step of a sweep's members in one program (`comparenets.sweep`), 3 and 8
  members of the digits CNN and LSTM, batched (``vmap``) and in turn (``map``), against one
  member's own step: members trained per second relative to as many separate runs, and the
  form ``sweep.form='auto'`` picks on this backend.

Speed is a ratio within one job (``speedup``: our examples/s over the reference's), the median of
``--repeats`` interleaved repeats, each at least ``--min_time`` seconds. PyTorch is an optional
benchmark dependency (``pip install torch==2.13.0``), never a runtime one.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax

from comparenets import console
from comparenets import experiment as experiment_lib
from comparenets import models
from comparenets import runtime
from comparenets import sweep as sweep_lib
from comparenets import train as train_lib
from comparenets.analysis import structure
from comparenets.data import pipeline
from comparenets.data import tfds_source
from comparenets.metric_writers import read_metrics
from comparenets.models import conv as conv_lib
from comparenets.models import recurrent
from comparenets.models.heads import ClassificationHead, TaskModel
from comparenets.tasks import tfds_images

CASES = ('matmul', 'recurrent', 'cnn', 'tcn', 'loop', 'compile', 'members', 'reads')


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count() or 1)
  return torch


def _torch_device(torch) -> str:
  """'cuda' when JAX runs on a GPU and PyTorch sees one, else 'cpu'."""
  return 'cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available() else 'cpu'


def _torch_sync(torch, device: str) -> None:
  if device == 'cuda':
    torch.cuda.synchronize()


def _block(x):
  jax.block_until_ready(x)
  return x


def measure(fns: Mapping[str, Callable[[], Any]], repeats: int, min_time: float
            ) -> dict[str, list[float]]:
  """Seconds per call of each function: warm-up (compile), then ``repeats`` rounds in which
  every function runs in turn for at least ``min_time`` seconds, so drift hits all alike."""
  calls = {}
  for name, fn in fns.items():
    fn()  # compile / warm up
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    calls[name] = max(1, int(min_time / once))
  samples = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      for _ in range(calls[name]):
        fn()
      samples[name].append((time.perf_counter() - start) / calls[name])
  return samples


def _summary(samples: Sequence[float]) -> dict[str, float]:
  return {'median_s': statistics.median(samples), 'min_s': min(samples), 'max_s': max(samples)}


def emit(record: Mapping[str, Any], out=None) -> None:
  line = json.dumps(record)
  print(line, flush=True)
  if out is not None:
    out.write(line + '\n')
    out.flush()


def device_info() -> dict[str, Any]:
  d = jax.devices()[0]
  return {'platform': d.platform, 'device': d.device_kind, 'devices': jax.device_count(),
          'cpus': os.cpu_count(), 'jax': jax.__version__}


# -- matmul peak ------------------------------------------------------------------------------


def matmul_peak(n: int, repeats: int, min_time: float) -> dict[str, Any]:
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  samples = measure({'jax': lambda: _block(f(a))}, repeats, min_time)['jax']
  t = statistics.median(samples)
  return {'case': 'matmul', 'n': n, 'dtype': 'float32', 'gflops': 2 * n**3 / t / 1e9,
          **_summary(samples)}


# -- recurrent layers ---------------------------------------------------------------------------

FLAX_CELLS = {'rnn': nn.SimpleCell, 'lstm': nn.OptimizedLSTMCell, 'gru': nn.GRUCell}


def flax_params(cell: str, layer_params: Mapping[str, Any]) -> dict[str, Any]:
  """Our ``RecurrentLayer`` parameters as ``nn.RNN(FLAX_CELLS[cell])`` parameters."""
  w_x, b = layer_params['input']['kernel'], layer_params['input']['bias']
  w_h = layer_params['cell']['hidden']
  h = w_h.shape[0]
  cols = lambda k: slice(k * h, (k + 1) * h)
  if cell == 'rnn':
    p = {'i': {'kernel': w_x, 'bias': b}, 'h': {'kernel': w_h}}
  elif cell == 'lstm':
    p = {}
    for k, g in enumerate('ifgo'):
      p['i' + g] = {'kernel': w_x[:, cols(k)]}
      p['h' + g] = {'kernel': w_h[:, cols(k)], 'bias': b[cols(k)]}
  else:
    p = {'i' + g: {'kernel': w_x[:, cols(k)], 'bias': b[cols(k)]} for k, g in enumerate('rzn')}
    p.update({'hr': {'kernel': w_h[:, cols(0)]}, 'hz': {'kernel': w_h[:, cols(1)]},
              'hn': {'kernel': w_h[:, cols(2)], 'bias': layer_params['cell']['hidden_bias']}})
  return {'params': {'cell': p}}


def torch_layer(torch, cell: str, layer_params: Mapping[str, Any]):
  """``torch.nn.RNN/LSTM/GRU`` (batch first) holding our layer's parameters.

  Same gate order as ours (LSTM i, f, g, o; GRU r, z, n); our single input bias goes to
  ``bias_ih`` and ``bias_hh`` is zero except the GRU's ``b_hn``, which sits inside the reset
  product in both."""
  w_x = np.asarray(layer_params['input']['kernel'])
  b = np.asarray(layer_params['input']['bias'])
  w_h = np.asarray(layer_params['cell']['hidden'])
  features, hidden = w_x.shape[0], w_h.shape[0]
  cls = {'rnn': torch.nn.RNN, 'lstm': torch.nn.LSTM, 'gru': torch.nn.GRU}[cell]
  layer = cls(features, hidden, batch_first=True)
  b_hh = np.zeros_like(b)
  if cell == 'gru':
    b_hh[2 * hidden:] = np.asarray(layer_params['cell']['hidden_bias'])
  with torch.no_grad():
    for name, value in (('weight_ih_l0', w_x.T), ('weight_hh_l0', w_h.T), ('bias_ih_l0', b),
                        ('bias_hh_l0', b_hh)):
      getattr(layer, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
  return layer


def _jax_layer_fns(apply, variables, x, out_of):
  def loss(variables, x):
    return jnp.sum(out_of(apply(variables, x)) ** 2)

  fwd = jax.jit(lambda v, x: out_of(apply(v, x)))
  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  return (lambda: _block(fwd(variables, x))), (lambda: _block(grad(variables, x)))


def recurrent_cases(cell: str, batch: int, length: int, features: int, hidden: int,
                    repeats: int, min_time: float) -> Iterator[dict[str, Any]]:
  """Lines for one cell: each implementation's tokens/s, forward and forward+backward."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, length, features)), jnp.float32)
  ours = recurrent.RecurrentLayer(cell, hidden)
  variables = runtime.run_once(ours.init, jax.random.PRNGKey(0), x)
  impls = {}
  for impl in recurrent.IMPLS:
    layer = recurrent.RecurrentLayer(cell, hidden, impl=impl)
    impls[f'comparenets_{impl}'] = _jax_layer_fns(layer.apply, variables, x, lambda o: o[0])
  reference, _ = impls['comparenets_fused']
  want = np.asarray(reference())
  diffs = {}
  # the train step's bfloat16 policy: bf16 parameters, inputs, activations and products
  bf16 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.bfloat16), tree)
  impls['comparenets_fused_bf16'] = _jax_layer_fns(ours.apply, bf16(variables), bf16(x),
                                                   lambda o: o[0])
  diffs['comparenets_fused_bf16'] = float(np.max(np.abs(
      np.asarray(impls['comparenets_fused_bf16'][0](), np.float32) - want)))
  flax_cells = {'flax': FLAX_CELLS[cell]}
  if cell == 'lstm':
    flax_cells['flax_LSTMCell'] = nn.LSTMCell
  for name, cell_cls in flax_cells.items():
    module = nn.RNN(cell_cls(hidden))
    fp = flax_params(cell, variables['params'])
    impls[name] = _jax_layer_fns(module.apply, fp, x, lambda o: o)
    diffs[name] = float(np.max(np.abs(np.asarray(impls[name][0]()) - want)))
  torch = _torch()
  if torch is not None:
    device = _torch_device(torch)
    layer = torch_layer(torch, cell, variables['params']).to(device)
    xt = torch.from_numpy(np.asarray(x)).to(device)
    xg = xt.clone().requires_grad_(True)

    def torch_fwd():
      with torch.no_grad():
        out = layer(xt)[0]
      _torch_sync(torch, device)
      return out

    def torch_fwd_bwd():
      layer.zero_grad(set_to_none=True)
      out = layer(xg)[0]
      (out ** 2).sum().backward()
      _torch_sync(torch, device)

    impls['torch'] = (torch_fwd, torch_fwd_bwd)
    diffs['torch'] = float(np.max(np.abs(torch_fwd().cpu().numpy() - want)))
  for mode, index in (('forward', 0), ('forward_backward', 1)):
    samples = measure({name: fns[index] for name, fns in impls.items()}, repeats, min_time)
    ours_t = statistics.median(samples['comparenets_fused'])
    for name, s in samples.items():
      t = statistics.median(s)
      yield {'case': 'recurrent', 'cell': cell, 'mode': mode, 'impl': name,
             'shape': {'B': batch, 'T': length, 'D': features, 'H': hidden},
             'tokens_per_s': batch * length / t, 'speedup': t / ours_t,
             'max_abs_diff': diffs.get(name, 0.0), **_summary(s)}


# -- the MNIST-size CNN -------------------------------------------------------------------------


def cnn_model() -> TaskModel:
  """The Flax MNIST example's CNN as our backbone and head."""
  backbone = models.build('cnn', widths=(32, 64), pool='avg', global_pool='flatten')
  return TaskModel(backbone=backbone, head=ClassificationHead(10, hidden=(256,)))


def _cnn_loss(apply):
  def loss_fn(params, x, y):
    logits = apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return loss_fn


def cnn_step(model: TaskModel, compute_dtype: str = 'float32'):
  """A train step on this model, compiled with the state donated and under the precision
  policy (``compute_dtype``) as `comparenets.train` compiles its steps."""
  loss_fn = _cnn_loss(train_lib.mixed_precision_apply(model, compute_dtype))

  def step(state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(state.params, x, y)
    return state.apply_gradients(grads=grads), loss

  return jax.jit(step, donate_argnums=0)


def torch_cnn(torch):
  nn_t = torch.nn
  return nn_t.Sequential(
      nn_t.Conv2d(1, 32, 3, padding=1), nn_t.ReLU(), nn_t.AvgPool2d(2),
      nn_t.Conv2d(32, 64, 3, padding=1), nn_t.ReLU(), nn_t.AvgPool2d(2),
      nn_t.Flatten(), nn_t.Linear(7 * 7 * 64, 256), nn_t.ReLU(), nn_t.Linear(256, 10))


def cnn_cases(batch: int, size: int, repeats: int, min_time: float, peak_gflops: float | None
              ) -> Iterator[dict[str, Any]]:
  rng = np.random.default_rng(0)
  x = rng.random((batch, size, size, 1), dtype=np.float32)
  y = rng.integers(0, 10, batch).astype(np.int32)
  model = cnn_model()
  tx = optax.sgd(0.01, momentum=0.9)
  params = runtime.run_once(model.init, jax.random.PRNGKey(0), jnp.asarray(x[:1]))['params']
  state = train_state.TrainState.create(apply_fn=model.apply,
                                        params=jax.tree.map(jnp.array, params), tx=tx)
  step = cnn_step(model)
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  holder = {'state': state}

  def ours():
    holder['state'], loss = step(holder['state'], xj, yj)
    return _block(loss)

  fns = {'comparenets': ours}
  step_bf16 = cnn_step(model, 'bfloat16')
  holder['bf16'] = train_state.TrainState.create(  # its own buffers: steps donate them
      apply_fn=model.apply, params=jax.tree.map(jnp.array, params), tx=tx)

  def ours_bf16():
    holder['bf16'], loss = step_bf16(holder['bf16'], xj, yj)
    return _block(loss)

  fns['comparenets_bf16'] = ours_bf16
  torch = _torch()
  if torch is not None:
    device = _torch_device(torch)
    net = torch_cnn(torch).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
    yt = torch.from_numpy(y.astype(np.int64)).to(device)

    def torch_step():
      opt.zero_grad(set_to_none=True)
      loss = torch.nn.functional.cross_entropy(net(xt), yt)
      loss.backward()
      opt.step()
      return loss.item()  # waits for the step, as our step's blocking on its loss does

    fns['torch'] = torch_step
  flops = _step_flops(model, params, xj, yj)
  samples = measure(fns, repeats, min_time)
  ours_t = statistics.median(samples['comparenets'])
  for name, s in samples.items():
    t = statistics.median(s)
    record = {'case': 'cnn', 'impl': name, 'batch': batch, 'image': [size, size, 1],
              'examples_per_s': batch / t, 'speedup': t / ours_t, **_summary(s)}
    if name == 'comparenets':
      record['step_gflop'] = flops / 1e9
      record['achieved_gflops'] = flops / t / 1e9
      if peak_gflops:
        record['fraction_of_matmul_peak'] = flops / t / 1e9 / peak_gflops
    yield record


def _step_flops(model, params, x, y) -> float:
  return structure.compiled_flops(jax.grad(_cnn_loss(model.apply)), params, x, y)[0]


# -- the TCN against the LSTM at equal parameters ----------------------------------------------


def equal_param_channels(target: int, kwargs: Mapping[str, Any], features: int = 1) -> int:
  """The TCN width (``channels``) whose backbone's parameter count is nearest ``target``
  (ties: the narrower); counted from shapes alone, nothing is initialised."""
  x = jnp.ones((1, 4, features))

  def count(channels):
    model = models.build('tcn', **dict(kwargs, channels=channels))
    return structure.count_params(jax.eval_shape(model.init, jax.random.PRNGKey(0), x))

  low, high = 1, 2
  while count(high) < target:
    low, high = high, 2 * high
  while high - low > 1:  # the count grows with the width: the last width below target
    middle = (low + high) // 2
    low, high = (middle, high) if count(middle) < target else (low, middle)
  return min((low, high), key=lambda c: (abs(count(c) - target), c))


def tcn_cases(length: int, batch: int, repeats: int, min_time: float,
              peak_gflops: float | None, impls: Sequence[str] = ('conv', 'im2col')
              ) -> Iterator[dict[str, Any]]:
  """Lines for one sequence length: the structure sweep's train step (`structure.analyze`'s
  program: a 10-way head, one input feature) of the LSTM at the structure defaults and of the
  TCN in each form at the LSTM's parameter count, run in turn (`measure`). Each TCN line holds
  its time steps per second over the LSTM's (``over_lstm``) and over the ``'conv'`` form's
  (``speedup``), and its gradient's largest difference from the first form's, relative to the
  gradient's largest value."""
  lstm_kwargs = dict(structure.DEFAULT_KWARGS['lstm'])
  xb = jnp.ones((batch,) + structure.example_input('lstm', length, 1).shape[1:])
  programs = {}

  def add(name, model_name, kwargs):
    model = structure.build(model_name, kwargs)
    variables = runtime.run_once(model.init, jax.random.PRNGKey(0), xb[:1])
    step = jax.jit(structure._programs(model, variables, xb)[1])  # pylint: disable=protected-access
    programs[name] = (step, variables, model_name, kwargs)

  add('lstm', 'lstm', lstm_kwargs)
  lstm_params = structure.count_params(programs['lstm'][1]['params']['backbone'])
  tcn_kwargs = dict(structure.DEFAULT_KWARGS['tcn'])
  tcn_kwargs['channels'] = equal_param_channels(lstm_params, tcn_kwargs)
  for impl in impls:
    add(impl, 'tcn', dict(tcn_kwargs, conv_impl=impl))
  grads = {name: jax.tree.leaves(step(variables, xb))
           for name, (step, variables, _, _) in programs.items() if name != 'lstm'}
  first = grads[impls[0]]
  scale = max(float(jnp.max(jnp.abs(g))) for g in first)
  fns = {name: (lambda step=step, variables=variables: _block(step(variables, xb)))
         for name, (step, variables, _, _) in programs.items()}
  samples = measure(fns, repeats, min_time)
  lstm_t = statistics.median(samples['lstm'])
  conv_t = statistics.median(samples[impls[0]])
  auto = conv_lib.conv_impl_for(jax.default_backend())
  # FLOPs of the model's math, one count for every form (XLA's counts of them differ by the
  # padding and elementwise work each lowering adds), so the fractions compare times alone
  flops = {family: structure.xla_flops(programs[name][2], programs[name][3], xb[:1])
           ['train_step'] * batch for family, name in (('lstm', 'lstm'), ('tcn', impls[0]))}
  for name, s in samples.items():
    _, variables, model_name, kwargs = programs[name]
    t = statistics.median(s)
    step_flops = flops[model_name]
    record = {'case': 'tcn', 'impl': name, 'length': length, 'batch': batch,
              'backbone_params': structure.count_params(variables['params']['backbone']),
              'time_steps_per_s': batch * length / t, 'over_lstm': lstm_t / t,
              'achieved_gflops': step_flops / t / 1e9, **_summary(s)}
    if name != 'lstm':
      record.update(channels=kwargs['channels'], speedup=conv_t / t, auto=name == auto,
                    max_rel_grad_diff=max(float(jnp.max(jnp.abs(a - b))) / scale
                                          for a, b in zip(grads[name], first)))
    else:
      record['hidden'] = kwargs['hidden']
    if peak_gflops:
      record['fraction_of_matmul_peak'] = step_flops / t / 1e9 / peak_gflops
    yield record


# -- the train loop against its bare step ------------------------------------------------------


def loop_cases(experiment: str, arg: str, steps: int, repeats: int, steps_per_dispatch: int = 1
               ) -> Iterator[dict[str, Any]]:
  """`train_and_evaluate` with the experiment's own logging and checkpoint settings (no
  validation passes) and ``train.steps_per_dispatch``, against the bare compiled single step
  of the same setup on the same batches (dispatched back to back, never waited for);
  throughput runs from the first logged step (compiled by then) to the last."""
  config = experiment_lib.load_config(experiment, arg, {
      'train.steps': steps, 'train.eval_every': 0, 'train.steps_per_dispatch': steps_per_dispatch})
  if steps < 4 * config.train.log_every:  # short (--tiny) runs: log and save more often
    config.train.log_every = max(1, steps // 6)
    config.train.checkpoint_every = max(1, steps // 3)
  setup = train_lib.build_setup(config)
  batch_size = setup.train['batch_size']
  sampler = setup.task.train_sampler(batch_size, config.seed)
  parallel = train_lib.make_parallel(setup)
  batches = [parallel.feed(sampler.batch(i)) for i in range(steps)]  # as the loop feeds them
  rng = jax.random.PRNGKey(0)
  loop_rates, bare_rates = [], []
  for _ in range(repeats):
    with tempfile.TemporaryDirectory() as workdir:
      train_lib.train_and_evaluate(config, workdir)
      logs = [r for r in read_metrics(workdir) if r['split'] == 'train']
    first, last = logs[0], logs[-1]
    loop_rates.append((last['step'] - first['step']) * batch_size /
                      (last['wall_time'] - first['wall_time']))
    state = parallel.place(train_lib.create_state(setup, rng, sampler.batch(0)))
    state, metrics = parallel.train_step(state, batches[0], rng)
    _block(metrics)
    start = time.perf_counter()
    for batch in batches[first['step']:last['step']]:
      state, metrics = parallel.train_step(state, batch, rng)
    _block(metrics)
    bare_rates.append((last['step'] - first['step']) * batch_size /
                      (time.perf_counter() - start))
  loop, bare = statistics.median(loop_rates), statistics.median(bare_rates)
  yield {'case': 'loop', 'experiment': f'{experiment}:{arg}', 'steps': steps,
         'steps_per_dispatch': steps_per_dispatch, 'batch': batch_size,
         'parallel': parallel.mode, 'devices': setup.num_devices,
         'loop_examples_per_s': loop, 'bare_step_examples_per_s': bare,
         'fraction_of_bare': loop / bare, 'loop_samples': loop_rates,
         'bare_samples': bare_rates}


# -- members in one program ----------------------------------------------------------------------


def _step_caller(config) -> Callable[[], Any]:
  """One compiled train step of ``config`` (a single run or a sweep) on a fixed batch, as a
  function that runs it once and waits; the state is carried from call to call."""
  setup = train_lib.build_setup(config)
  samplers, sampler, rng, _ = sweep_lib.run_inputs(setup, config.seed)
  parallel = train_lib.make_parallel(setup)
  state = [parallel.place(train_lib.create_state(setup, rng, samplers[0].batch(0)))]
  batch = parallel.feed(sampler.batch(0))

  def call():
    state[0], metrics = parallel.train_step(state[0], batch, rng)
    return _block(metrics)
  return call


def members_cases(model: str, counts: Sequence[int], repeats: int, min_time: float
                  ) -> Iterator[dict[str, Any]]:
  """The digits ``model``'s step with ``counts`` members, batched and in turn, against one
  member's (`measure`: interleaved repeats)."""
  over = {'train.parallel': 'none'}
  fns = {'separate': _step_caller(experiment_lib.load_config('digits.py', f'model={model}',
                                                             over))}
  for count in counts:
    for form in ('vmap', 'map'):
      fns[f'{count}:{form}'] = _step_caller(experiment_lib.load_config(
          'digits.py', f'model={model}', {**over, 'sweep.seeds': count, 'sweep.form': form}))
  samples = measure(fns, repeats, min_time)
  single = statistics.median(samples['separate'])
  for name, times in samples.items():
    if name == 'separate':
      continue
    count, form = name.split(':')
    yield {'case': 'members', 'model': model, 'members': int(count), 'form': form,
           'auto_form': sweep_lib.auto_form(model), 'separate_step_s': single,
           'members_per_s_vs_separate': int(count) * single / statistics.median(times),
           **_summary(times)}


# -- compile time --------------------------------------------------------------------------------


def compile_cases(cell: str, lengths: Sequence[int], hidden: int) -> Iterator[dict[str, Any]]:
  times = {}
  for length in lengths:
    x = jnp.ones((8, length, 16))
    layer = recurrent.RecurrentLayer(cell, hidden)
    variables = runtime.run_once(layer.init, jax.random.PRNGKey(0), x)
    grad = jax.grad(lambda v, x: jnp.sum(layer.apply(v, x)[0] ** 2))
    start = time.perf_counter()
    jax.jit(grad).lower(variables, x).compile()
    times[length] = time.perf_counter() - start
  shortest, longest = min(lengths), max(lengths)
  yield {'case': 'compile', 'cell': cell, 'hidden': hidden, 'compile_s': times,
         'ratio_longest_to_shortest': times[longest] / times[shortest]}


# -- TFDS reads ----------------------------------------------------------------------------------


class OneAtATime:
  """A random-access source read one record at a time (``source[i]``, no ``__getitems__``):
  the reads case's reference, how the tasks read before they asked for batches."""

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitem__(self, key):
    return self.source[key]


def reads_cases(data_dir: str, repeats: int, min_time: float, tiny: bool
                ) -> Iterator[dict[str, Any]]:
  """Examples/s of the MNIST and IMDB sources, batched against one at a time (module doc)."""
  if not data_dir and not tiny:
    yield {'case': 'reads', 'skipped': 'needs --data_dir=DIR with mnist and imdb_reviews '
                                       'prepared (scripts/bench/prepare_tfds_reads.py)'}
    return
  context = contextlib.nullcontext()
  if not data_dir:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # seconds to import
    context = tfds.testing.mock_data(num_examples=256)
  with context:
    mnist = tfds_source.open_split('mnist', 'train', data_dir or None)
    imdb = tfds_source.open_split('imdb_reviews', 'train', data_dir or None)
    batch = 8 if tiny else 128
    sampler = lambda source: pipeline.EpochSampler(
        pipeline.SourceSplit(source, tfds_images.convert_example, ('inputs', 'label')), batch, 0)
    step = iter(range(10**9))
    batched, single = sampler(mnist), sampler(OneAtATime(mnist))
    got = batched.batch(3)
    want = single.batch(3)
    same = all(np.array_equal(got[k], want[k]) for k in got)
    n_imdb = min(len(imdb), 64 if tiny else len(imdb))
    whole = lambda source: pipeline.read_records(source, range(n_imdb))
    same_imdb = [r['text'] for r in whole(imdb)[:50]] == [
        r['text'] for r in whole(OneAtATime(imdb))[:50]]
    for name, fns, examples, equal in (
        ('mnist_train_batches', {'batched': lambda: batched.batch(next(step)),
                                 'one_at_a_time': lambda: single.batch(next(step))}, batch, same),
        ('imdb_train_whole', {'batched': lambda: whole(imdb),
                              'one_at_a_time': lambda: whole(OneAtATime(imdb))}, n_imdb,
         same_imdb)):
      samples = measure(fns, repeats, min_time)
      rates = {k: examples / statistics.median(v) for k, v in samples.items()}
      for impl, v in samples.items():
        yield {'case': 'reads', 'source': name, 'impl': impl, 'data_dir': data_dir or 'mock_data',
               'examples_per_call': examples, **_summary(v),
               'examples_per_s': rates[impl], 'speedup': rates[impl] / rates['one_at_a_time'],
               'same_records': equal}
    if not data_dir:  # mock_data's stand-in cannot be pickled into worker processes
      return
    yield from streamed_reads(sampler(mnist), batch, repeats, 8 if tiny else 100)


def streamed_reads(plain: pipeline.EpochSampler, batch: int, repeats: int, run: int,
                   workers: Sequence[int] = (1, 2)) -> Iterator[dict[str, Any]]:
  """MNIST training batches in step order, read in this process (`EpochSampler.batch`, the
  reference) against grain worker processes reading ahead (`pipeline.StreamedSampler`): each
  repeat consumes ``run`` consecutive batches of each in turn, so the workers' buffer (2
  batches a worker, filled while the others run) is a small part of a repeat."""
  streams = {f'{w}_workers': pipeline.StreamedSampler(plain, w) for w in workers}
  try:
    for stream in streams.values():  # start the workers: their start-up is not timed
      stream.batch(0)
      stream.batch(1)
    first = {name: stream.batch(2) for name, stream in streams.items()}
    want = plain.batch(2)
    same = all(np.array_equal(first[n][k], want[k]) for n in first for k in want)
    position = {name: 3 for name in streams}
    samples = {name: [] for name in ('in_process', *streams)}
    for r in range(repeats):
      for name in samples:
        began = time.perf_counter()
        if name == 'in_process':
          for s in range(r * run, (r + 1) * run):
            plain.batch(s)
        else:
          for _ in range(run):
            streams[name].batch(position[name])
            position[name] += 1
        samples[name].append((time.perf_counter() - began) / run)
  finally:
    for stream in streams.values():
      stream.close()
  rates = {k: batch / statistics.median(v) for k, v in samples.items()}
  for impl, v in samples.items():
    yield {'case': 'reads', 'source': 'mnist_train_steps', 'impl': impl,
           'examples_per_call': batch, 'batches_per_repeat': run, **_summary(v),
           'examples_per_s': rates[impl], 'speedup': rates[impl] / rates['in_process'],
           'same_records': same, 'cpus': os.cpu_count()}


# -- command line ---------------------------------------------------------------------------------


def run(cases: Sequence[str], repeats: int, min_time: float, tiny: bool, out=None,
        recurrent_shapes: Sequence[Sequence[int]] = ((64, 128, 32, 256),),
        steps_per_dispatch: Sequence[int] = (1,), cpu_tuning: Mapping[str, Any] | None = None,
        tcn_lengths: Sequence[int] = (256,), tcn_batch: int = 32,
        data_dir: str = '') -> list[dict[str, Any]]:
  records = []

  def put(record):
    records.append(record)
    emit(record, out)

  put({'case': 'environment', **device_info(),
       'torch': getattr(_torch(), '__version__', None),
       'xla_flags': os.environ.get('XLA_FLAGS', ''), 'cpu_tuning': cpu_tuning})
  peak = None
  if 'matmul' in cases:
    rec = matmul_peak(256 if tiny else 2048, repeats, min_time)
    peak = rec['gflops']
    put(rec)
  if 'recurrent' in cases:
    for shape in ((4, 8, 3, 8),) if tiny else recurrent_shapes:
      for cell in ('lstm', 'gru', 'rnn'):
        for rec in recurrent_cases(cell, *shape, repeats, min_time):
          put(rec)
  if 'cnn' in cases:
    for rec in cnn_cases(8 if tiny else 128, 28, repeats, min_time, peak):
      put(rec)
  if 'tcn' in cases:
    for length in (16,) if tiny else tcn_lengths:
      for rec in tcn_cases(length, 2 if tiny else tcn_batch, repeats, min_time, peak):
        put(rec)
  if 'loop' in cases:
    for arg in ('model=cnn', 'model=lstm'):
      for k in steps_per_dispatch:
        for rec in loop_cases('digits.py', arg, 30 if tiny else 2000,
                              1 if tiny else repeats, k):
          put(rec)
  if 'members' in cases:
    for model in ('cnn', 'lstm'):
      for rec in members_cases(model, (2,) if tiny else (3, 8), repeats,
                               0.01 if tiny else min_time):
        put(rec)
  if 'compile' in cases:
    for rec in compile_cases('lstm', (16, 64) if tiny else (16, 1024), 8 if tiny else 128):
      put(rec)
  if 'reads' in cases:
    for rec in reads_cases(data_dir, repeats, min_time, tiny):
      put(rec)
  return records


def _cases(text: str) -> list[str]:
  cases = [c for c in text.split(',') if c]
  unknown = sorted(set(cases) - set(CASES))
  if unknown:
    raise flags.ValidationError(f'unknown case(s) {", ".join(unknown)}; choose from '
                                f'{", ".join(CASES)}')
  return cases


def _recurrent_shapes(text: str) -> list[tuple[int, ...]]:
  try:
    shapes = [tuple(int(v) for v in s.split(',')) for s in text.split(':')]
    assert all(len(s) == 4 and min(s) > 0 for s in shapes)
  except (ValueError, AssertionError):
    raise flags.ValidationError(f'--recurrent_shapes takes B,T,D,H[:B,T,D,H...] of positive '
                                f'integers, not {text!r}') from None
  return shapes


def _positive_ints(flag: str):
  def parse(text: str) -> list[int]:
    try:
      values = [int(v) for v in text.split(',')]
      assert min(values) > 0
    except (ValueError, AssertionError):
      raise flags.ValidationError(f'--{flag} takes positive integers separated by commas, not '
                                  f'{text!r}') from None
    return values
  return parse


_steps_per_dispatch = _positive_ints('steps_per_dispatch')
_tcn_lengths = _positive_ints('tcn_lengths')


def _define_flags() -> None:
  """The command line's flags, defined when it runs: on import they would collide with a
  notebook's or script's own flags (absl flags are process-wide). Each list flag is checked
  while the command line is parsed, so a bad value stops it before any case runs."""
  flags.DEFINE_string('cases', ','.join(CASES), f'comma-separated subset of {",".join(CASES)}')
  flags.DEFINE_integer('repeats', 5, 'Interleaved repeats of each case; the median is reported.')
  flags.DEFINE_float('min_time', 0.5, 'seconds each repeat runs a case at least')
  flags.DEFINE_boolean('tiny', False, 'tiny shapes: checks the code runs')
  flags.DEFINE_string('out', '', 'also append the JSON lines to this file')
  flags.DEFINE_string('recurrent_shapes', '64,128,32,256',
                      'B,T,D,H of the recurrent case; several separated by ":"')
  flags.DEFINE_string('steps_per_dispatch', '1',
                      'train.steps_per_dispatch values of the loop case, e.g. 1,10')
  flags.DEFINE_string('tcn_lengths', '256', 'sequence lengths T of the tcn case, e.g. 256,4096')
  flags.DEFINE_string('data_dir', '', 'TFDS data directory of the reads case (mnist and '
                      'imdb_reviews prepared as array_record)')
  flags.DEFINE_integer('tcn_batch', 32, 'batch of the tcn case (the structure sweep\'s)',
                       lower_bound=1)
  for name, parse in (('cases', _cases), ('recurrent_shapes', _recurrent_shapes),
                      ('steps_per_dispatch', _steps_per_dispatch),
                      ('tcn_lengths', _tcn_lengths)):
    flags.register_validator(name, lambda text, parse=parse: parse(text) is not None)


def main(argv: Sequence[str]) -> None:
  """Runs the cases the flags name (`python -m comparenets.analysis.bench`)."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  opts = flags.FLAGS
  console.setup_logging(logging.WARNING)  # stdout is the JSON lines; stderr warnings only
  try:  # what our command lines run with (PyTorch shares the malloc setting)
    tuning = runtime.configure_cpu()
  except RuntimeError:  # main() called where JAX already runs (a test): its settings stay
    tuning = None
  with (open(opts.out, 'a', encoding='utf-8') if opts.out
        else contextlib.nullcontext()) as out:
    run(_cases(opts.cases), opts.repeats, opts.min_time, opts.tiny, out,
        _recurrent_shapes(opts.recurrent_shapes), _steps_per_dispatch(opts.steps_per_dispatch),
        tuning, _tcn_lengths(opts.tcn_lengths), opts.tcn_batch, opts.data_dir)


if __name__ == '__main__':
  console.run(main, _define_flags)
