"""One train loop for every (model, task) pair.

* `build_setup(config)` checks the whole config and builds the task, the backbone, the head and
  the optimizer; every mistake is a `ConfigError` raised here, before anything is compiled.
* `make_step_fns` gives the pure step functions ``train_step(state, batch, rng) -> (state,
  metrics)`` and ``eval_step(state, batch) -> sums``.
* `Parallel` strategies wrap them: ``'none'`` (one device, `jax.jit`), ``'pmap'`` (`jax.pmap`,
  gradients averaged with `lax.pmean`) and ``'jit'`` (`jax.jit` with the batch sharded over a
  one-axis device mesh and the state replicated: what JAX recommends today).
* `train_and_evaluate(config, workdir)` runs training with automatic resume from the newest
  checkpoint in ``workdir``, periodic evaluation, metrics as JSON lines and TensorBoard events,
  and writes ``config.json`` and ``results.json``; it returns the results dict.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import errno
import itertools
import json
import os
import shutil
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from absl import logging
import flax
import flax.jax_utils
from flax.training import train_state
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from comparenets import models
from comparenets import plots
from comparenets import tasks
from comparenets.checkpointing import Checkpointer
from comparenets.config_utils import TRAIN_DEFAULTS, check_fields, check_values
from comparenets.data import pipeline
from comparenets.errors import ConfigError, NonFiniteError, UserError, WorkdirFullError
from comparenets.metric_writers import MetricWriter
from comparenets.stopping import StopRequest
from comparenets import workdir as workdirs

PARALLEL_MODES = ('none', 'pmap', 'jit')
SECTIONS = {'seed': 0, 'model': None, 'task': None, 'head': None, 'train': None}
TRAIN_FIELDS = TRAIN_DEFAULTS
TRAIN_RULES = {
    'optimizer': {'choices': ('adamw', 'adam', 'sgd')},
    'schedule': {'choices': ('cosine', 'constant')},
    'parallel': {'choices': PARALLEL_MODES},
    'on_nonfinite': {'choices': ('stop', 'skip')},
    'compute_dtype': {'choices': ('float32', 'bfloat16')},
    'warmup_steps': {'min': 0},
    'eval_every': {'min': 0},
    'checkpoint_every': {'min': 0},
    'steps_per_dispatch': {'min': 1},
}


@dataclasses.dataclass
class Setup:
  """Everything a run needs, built from a config without compiling anything."""
  config: ml_collections.ConfigDict
  task: tasks.Task
  model_name: str
  input_kind: str
  model: models.TaskModel
  tx: optax.GradientTransformation
  schedule: Callable[[int], Any]
  num_devices: int
  train: dict[str, Any]


def _section(config, name) -> dict[str, Any]:
  value = config.get(name)
  if value is None:
    raise ConfigError(f'the config has no {name!r} section')
  return dict(value)


def make_optimizer(train: Mapping[str, Any]):
  """The optimizer and learning-rate schedule a train config asks for."""
  lr, steps, warmup = train['learning_rate'], train['steps'], train['warmup_steps']
  if train['schedule'] == 'cosine':
    schedule = optax.warmup_cosine_decay_schedule(0.0 if warmup else lr, lr, warmup,
                                                  max(steps, warmup + 1), end_value=0.01 * lr)
  elif train['schedule'] == 'constant':
    schedule = optax.constant_schedule(lr)
  else:
    raise ConfigError(f"train.schedule must be 'cosine' or 'constant', not {train['schedule']!r}")
  if train['optimizer'] == 'adamw':
    opt = optax.adamw(schedule, weight_decay=train['weight_decay'])
  elif train['optimizer'] == 'adam':
    opt = optax.adam(schedule)
  elif train['optimizer'] == 'sgd':
    opt = optax.sgd(schedule, momentum=0.9)
  else:
    raise ConfigError(f"train.optimizer must be 'adamw', 'adam' or 'sgd', "
                      f"not {train['optimizer']!r}")
  if train['grad_clip'] > 0:
    opt = optax.chain(optax.clip_by_global_norm(train['grad_clip']), opt)
  return opt, schedule


def build_setup(config: ml_collections.ConfigDict) -> Setup:
  """Checks a config and builds its parts; raises `ConfigError` with one clear sentence."""
  check_fields('the config', dict(config), SECTIONS)
  check_values('the config', {'seed': config.get('seed', 0)}, SECTIONS, {'seed': {'min': 0}})
  model_cfg = _section(config, 'model')
  task_cfg = _section(config, 'task')
  train = _section(config, 'train')
  head_cfg = dict(config.get('head') or {})
  check_fields('the train section', train, TRAIN_FIELDS)
  train = {**TRAIN_FIELDS, **check_values('train', train, TRAIN_FIELDS, TRAIN_RULES)}
  if train['parallel'] == 'none' and jax.process_count() > 1:
    raise ConfigError(f"train.parallel='none' runs on one device, and this run has "
                      f"{jax.process_count()} processes; use 'jit' or 'pmap'")
  num_devices = 1 if train['parallel'] == 'none' else jax.device_count()
  where = (f'{num_devices} devices ({jax.process_count()} processes x '
           f'{jax.local_device_count()})' if jax.process_count() > 1 else
           f'{num_devices} devices')
  for key in ('batch_size', 'eval_batch_size'):
    if train[key] % num_devices:  # the global batch; each process feeds its devices' share
      raise ConfigError(f'train.{key}={train[key]} does not divide over the {where} of '
                        f'train.parallel={train["parallel"]!r}; use a multiple of {num_devices} '
                        '(it is the global batch, over all processes)')
  model_name = model_cfg.pop('name', None)
  task_name = task_cfg.pop('name', None)
  backbone = models.build(model_name, **model_cfg)
  task = tasks.build(task_name, **task_cfg)
  kind = models.input_kind(model_name)
  task.check_input_kind(kind, model_name)
  if task.requires_causal and not getattr(backbone, 'causal', False):
    raise ConfigError(f'task {task_name!r} predicts what comes next, which needs a causal '
                      f'model; this {model_name!r} sees later steps (bidirectional=True?)')
  head_fields = task.head_fields()
  check_fields(f'the head of task {task_name!r}', head_cfg, head_fields)
  head = task.head(**check_values('head', head_cfg, head_fields, task.head_rules))
  tx, schedule = make_optimizer(train)
  return Setup(config=config, task=task, model_name=model_name, input_kind=kind,
               model=models.TaskModel(backbone=backbone, head=head, stem=task.stem()),
               tx=tx, schedule=schedule,
               num_devices=num_devices, train=train)


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the model's non-parameter collections (e.g. ``batch_stats``)."""
  model_state: Any = flax.struct.field(default_factory=dict)


def create_state(setup: Setup, rng: jax.Array, example_batch: Mapping[str, np.ndarray]):
  """Initialises parameters on one device from a one-example batch."""
  def init(rng, batch):
    x, mask = setup.task.adapt(batch, setup.input_kind)
    variables = setup.model.init({'params': rng, 'dropout': rng}, x, mask, train=False)
    # The task's loss on the model's output, traced (and then dropped by XLA) so that a head or
    # loss that does not fit this backbone's output fails here, before anything is written.
    setup.task.per_example(setup.model.apply(variables, x, mask, train=False), batch)
    params = variables.pop('params')
    return TrainState.create(apply_fn=setup.model.apply, params=params, tx=setup.tx,
                             model_state=dict(variables))
  one = {k: v[:1] for k, v in example_batch.items()}
  try:
    return jax.jit(init)(rng, one)
  except ValueError as e:  # shape checks of the backbones, raised while tracing
    raise ConfigError(f'model {setup.model_name!r} cannot read this task\'s input: {e}') from None


def _cast_floats(tree, dtype):
  """Floating-point leaves of ``tree`` in ``dtype``; integer leaves (token ids) unchanged."""
  return jax.tree.map(
      lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def mixed_precision_apply(model, compute_dtype: str):
  """``model.apply`` under a precision policy: with 'bfloat16', parameters (kept in float32 by
  the optimizer) and inputs are cast to bfloat16, so every activation and matrix product is
  bf16, and the outputs come back as float32 for the loss. Gradients reach the float32
  parameters through the casts."""
  dtype = jnp.dtype(compute_dtype)

  def apply(variables, x, *args, **kwargs):
    if dtype != jnp.float32:
      variables, x = _cast_floats(variables, dtype), _cast_floats(x, dtype)
    out = model.apply(variables, x, *args, **kwargs)
    if dtype != jnp.float32:
      out = _cast_floats(out, jnp.float32)
    return out

  return apply


def make_step_fns(setup: Setup, axis_name: str | None = None):
  """Pure train and eval steps; ``axis_name`` names the pmap axis to average over."""
  model, task, kind = setup.model, setup.task, setup.input_kind
  compute_dtype = setup.train['compute_dtype']
  apply = mixed_precision_apply(model, compute_dtype)

  def train_step(state: TrainState, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    if axis_name is not None:
      rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    x, mask = task.adapt(batch, kind)
    mutable = list(state.model_state)

    def forward(params):
      return apply({'params': params, **state.model_state}, x, mask, train=True,
                   rngs={'dropout': rng}, mutable=mutable or False)

    def loss_fn(params):
      out = forward(params)
      out, new_model_state = out if mutable else (out, {})
      per = task.per_example(out, batch)
      return per['loss'].mean(), (per, new_model_state)

    (_, (per, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {k: v.mean() for k, v in per.items()}
    if axis_name is not None:
      grads, metrics, new_model_state = jax.lax.pmean((grads, metrics, new_model_state),
                                                      axis_name)
    metrics['grad_norm'] = optax.tree.norm(grads)
    # A NaN/Inf loss or gradient leaves parameters, optimizer and model state as they were
    # (the step counter still advances); the host stops or skips on the 'nonfinite' metric.
    finite = jnp.isfinite(metrics['loss']) & jnp.isfinite(metrics['grad_norm'])
    metrics['nonfinite'] = 1.0 - finite.astype(jnp.float32)
    new = state.apply_gradients(grads=grads, model_state=dict(new_model_state))
    keep = lambda n, o: jax.tree.map(lambda a, b: jnp.where(finite, a, b), n, o)
    state = new.replace(params=keep(new.params, state.params),
                        opt_state=keep(new.opt_state, state.opt_state),
                        model_state=keep(new.model_state, state.model_state))
    return state, metrics

  def eval_step(state: TrainState, batch):
    x, mask = task.adapt(batch, kind)
    out = apply({'params': state.params, **state.model_state}, x, mask, train=False)
    per = task.per_example(out, batch)
    weight = batch['weight']
    sums = {k: (v * weight).sum() for k, v in per.items()}
    sums['count'] = weight.sum()
    if axis_name is not None:
      sums = jax.lax.psum(sums, axis_name)
    return sums

  return train_step, eval_step


def scan_steps(train_step):
  """``steps(state, batches, rng)``: ``train_step`` over the leading axis of ``batches`` in
  one `lax.scan`, so k steps cost one dispatch; the metrics come back stacked ``[k]``. Each
  step folds its own step number into ``rng``, so k scanned steps are the k single steps."""
  def steps(state, batches, rng):
    return jax.lax.scan(lambda state, batch: train_step(state, batch, rng), state, batches)
  return steps


class Parallel:
  """How state and batches live on devices, and the compiled steps that go with it.

  ``train_step(state, batch, rng)`` runs one step; ``train_steps(state, batches, rng)`` runs
  as many as ``batches`` stacks (see `scan_steps`), fed by ``shard_steps``.
  """
  mode = 'none'

  def __init__(self, setup: Setup):
    train_step, eval_step = make_step_fns(setup)
    self.train_step = jax.jit(train_step, donate_argnums=0)
    self.train_steps = jax.jit(scan_steps(train_step), donate_argnums=0)
    self.eval_step = jax.jit(eval_step)

  def place(self, state):
    return jax.device_put(state, jax.devices()[0])

  def shard(self, batch):
    if jax.process_count() > 1:
      raise ConfigError("train.parallel='none' runs on one device; a multi-process run needs "
                        "'jit' or 'pmap'")
    return jax.device_put(batch, jax.devices()[0])

  def shard_steps(self, batches):
    """Batches of several steps stacked on a leading axis ``[k, B, ...]``."""
    return self.shard(batches)

  def feed(self, batch):
    """The batch as the compiled steps take it (train and eval): put on the devices (`shard`),
    except on a CPU with one process, where the devices share the host's memory and the host
    arrays go in as they are (the step's dispatch copies them, as cheaply as a prepared
    device array: BUILD_NOTES.md)."""
    return batch if host_is_device() else self.shard(batch)

  def feed_steps(self, batches):
    """`feed` for ``train_steps``: batches stacked ``[k, B, ...]``."""
    return batches if host_is_device() else self.shard_steps(batches)

  def checkpoint_target(self, state):
    """A tree with the shardings a restored checkpoint should have before `place`."""
    return state

  def savable(self, state):
    return state

  def host_state(self, state):
    """The state as one copy, for inspection and comparison across strategies."""
    return jax.device_get(self.savable(state))

  def host_metrics(self, metrics):
    if host_is_device():  # read in place: 400 scalars 0.3 ms, against 1.8 ms by device_get
      return jax.tree.map(np.asarray, metrics)
    return jax.device_get(metrics)


def _first_replica(x: jax.Array) -> jax.Array:
  """The copy of a pmap-replicated value on this process's first device."""
  # one process: the shard drops the device axis; several: it keeps it with size 1
  return x.addressable_data(0).reshape(x.shape[1:])


class PmapParallel(Parallel):
  """`jax.pmap` over all local devices; state replicated on the leading axis."""
  mode = 'pmap'

  def __init__(self, setup: Setup):  # pylint: disable=super-init-not-called
    train_step, eval_step = make_step_fns(setup, axis_name='batch')
    self.n = jax.local_device_count()
    self.train_step = jax.pmap(train_step, axis_name='batch', in_axes=(0, 0, None),
                               donate_argnums=0)
    self.train_steps = jax.pmap(scan_steps(train_step), axis_name='batch',
                                in_axes=(0, 0, None), donate_argnums=0)
    self.eval_step = jax.pmap(eval_step, axis_name='batch')

  def place(self, state):
    return flax.jax_utils.replicate(state)

  def shard(self, batch):  # this process's rows, split over its devices
    return jax.tree.map(lambda x: x.reshape((self.n, -1) + x.shape[1:]), batch)

  def feed(self, batch):  # host arrays split over the devices; pmap puts them there
    return self.shard(batch)

  def feed_steps(self, batches):
    return self.shard_steps(batches)

  def shard_steps(self, batches):  # [k, B, ...] -> [devices, k, B / devices, ...]
    return jax.tree.map(
        lambda x: np.swapaxes(x.reshape((x.shape[0], self.n, -1) + x.shape[2:]), 0, 1),
        batches)

  def savable(self, state):
    state = jax.tree.map(_first_replica, state)
    if jax.process_count() > 1:  # per-process copies: orbax writes host arrays from process 0
      state = jax.device_get(state)
    return state

  def checkpoint_target(self, state):
    return jax.device_get(state) if jax.process_count() > 1 else state

  def host_metrics(self, metrics):
    return jax.device_get(jax.tree.map(_first_replica, metrics))


class JitParallel(Parallel):
  """`jax.jit` over global arrays: the batch sharded over a 1-D mesh ``('data',)``, the state
  replicated.

  The step inside is a `jax.shard_map` of the same pure step that pmap runs: each device runs
  the whole model on its shard and the gradients are averaged once with `lax.pmean`. Left to
  itself, XLA's SPMD partitioner all-reduces the recurrent weight gradient inside the backward
  time loop (one collective per time step: seen in the compiled HLO of an LSTM step), which is
  slow and, on simulated CPU devices under load, stalled the collective's rendezvous until XLA
  aborted the process.
  """
  mode = 'jit'

  def __init__(self, setup: Setup):  # pylint: disable=super-init-not-called
    train_step, eval_step = make_step_fns(setup, axis_name='data')
    self.mesh = Mesh(np.array(jax.devices()), ('data',))
    self.replicated = NamedSharding(self.mesh, P())
    self.data = NamedSharding(self.mesh, P('data'))
    # check_vma=False gives pmap's semantics: gradients are per-device values that the step
    # averages itself. With it on, the gradient of a replicated weight used on sharded data is
    # summed by autodiff where the weight is used, i.e. again inside the time loop.
    shard = functools.partial(jax.shard_map, mesh=self.mesh, check_vma=False)
    sharded_train = shard(train_step, in_specs=(P(), P('data'), P()), out_specs=(P(), P()))
    sharded_eval = shard(eval_step, in_specs=(P(), P('data')), out_specs=P())
    self.data_steps = NamedSharding(self.mesh, P(None, 'data'))
    sharded_steps = shard(scan_steps(train_step), in_specs=(P(), P(None, 'data'), P()),
                          out_specs=(P(), P()))
    self.train_steps = jax.jit(sharded_steps, in_shardings=(self.replicated, self.data_steps,
                                                            self.replicated),
                               out_shardings=(self.replicated, self.replicated),
                               donate_argnums=0)
    self.train_step = jax.jit(sharded_train, in_shardings=(self.replicated, self.data,
                                                           self.replicated),
                              out_shardings=(self.replicated, self.replicated),
                              donate_argnums=0)
    self.eval_step = jax.jit(sharded_eval, in_shardings=(self.replicated, self.data),
                             out_shardings=self.replicated)

  def place(self, state):
    return jax.device_put(state, self.replicated)

  def shard(self, batch):  # this process's rows of the global batch
    if jax.process_count() == 1:
      return jax.device_put(batch, self.data)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.data, x), batch)

  def shard_steps(self, batches):  # [k, this process's rows, ...], rows over the devices
    if jax.process_count() == 1:
      return jax.device_put(batches, self.data_steps)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.data_steps, x), batches)

  def checkpoint_target(self, state):
    return self.place(state)


def host_is_device() -> bool:
  """Whether the devices are this process's CPU, in a one-process run: host arrays then need
  no putting on a device ahead of the step."""
  return jax.default_backend() == 'cpu' and jax.process_count() == 1


def make_parallel(setup: Setup) -> Parallel:
  mode = setup.train['parallel']
  return {'none': Parallel, 'pmap': PmapParallel, 'jit': JitParallel}[mode](setup)


def evaluate(parallel: Parallel, state, task: tasks.Task, split, batch_size: int,
             apply=None):
  """The task's metrics over every example of ``split``; with ``apply`` (`tasks.make_apply`),
  plus the task's `split_metrics` from the predictions of the whole split."""
  total = None
  for batch in pipeline.eval_batches(split, batch_size, *_this_process()):
    sums = parallel.eval_step(state, parallel.feed(batch))
    total = sums if total is None else jax.tree.map(lambda a, b: a + b, total, sums)
  metrics = task.finalize(parallel.host_metrics(total))
  if apply is not None:
    final = jax.device_get(parallel.savable(state))
    predict = tasks.make_predict(task, None, '', {'params': final.params, **final.model_state},
                                 batch_size, apply=apply)
    metrics.update(task.split_metrics(predict, split))
  return metrics


def _split_metrics_apply(setup: Setup):
  """`tasks.make_apply` for tasks that define `Task.split_metrics`, else None."""
  if type(setup.task).split_metrics is tasks.Task.split_metrics:
    return None
  return tasks.make_apply(setup.task, setup.model, setup.input_kind)


def _this_process() -> tuple[int, int]:
  """(index, count): which rows of each global batch this process reads and feeds."""
  return jax.process_index(), jax.process_count()


def param_counts(params) -> dict[str, int]:
  count = lambda tree: int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
  return {'total': count(params), 'backbone': count(params.get('backbone', {})),
          'head': count(params.get('head', {}))}


def _identity(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The parts of a config that make a checkpoint meaningful: changing them needs a new run."""
  as_dict = json.loads(config.to_json_best_effort())
  return {k: as_dict.get(k) for k in ('seed', 'model', 'task', 'head')}


def check_free_space(workdir: str, state) -> None:
  """Refuses a workdir whose filesystem cannot hold two checkpoints of ``state``."""
  if not workdirs.is_local(workdir):
    return  # a bucket has no free space to ask for
  need = 2 * sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, 'nbytes'))
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  try:
    free = shutil.disk_usage(existing).free
  except OSError:
    return  # the write itself will say what is wrong
  if free < need:
    raise ConfigError(f'{os.path.abspath(workdir)} has {free / 1e6:.2f} MB free, and two '
                      f'checkpoints of this run need about {need / 1e6:.2f} MB; free some space '
                      'or choose another --workdir')


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict) -> str:
  """Creates ``workdir`` and saves the config there, refusing a workdir of another experiment."""
  workdir = workdirs.resolve(workdir)
  path = workdirs.join(workdir, 'config.json')
  text = workdirs.read_text(path)
  if text is not None:
    old = json.loads(text)
    new = _identity(config)
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
      raise ConfigError(f'{workdir} holds a run with a different {", ".join(changed)} section; '
                        'use a fresh --workdir (nothing was changed in this one)')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
      workdirs.write_text(path, config.to_json_best_effort(indent=2))
  except OSError as e:
    raise ConfigError(f'cannot write to workdir {workdir}: {e.strerror or e}') from None
  return workdir


class _Window:
  """The device-side metrics of the steps since the last host sync: one entry per dispatch,
  scalars for a single step, ``[k]`` arrays for k scanned steps."""

  def __init__(self, parallel: Parallel, on_nonfinite: str, first_step: int):
    self.parallel, self.on_nonfinite = parallel, on_nonfinite
    self.metrics, self.first_step, self.checked, self.skipped = [], first_step, 0, 0
    self.checked_steps = 0
    self.last_good_checkpoint: int | None = None

  def add(self, metrics):
    self.metrics.append(metrics)

  @staticmethod
  def _steps(values) -> np.ndarray:
    """Per-entry host values (scalars or ``[k]``) as one array over the steps."""
    return np.concatenate([np.atleast_1d(np.asarray(v)) for v in values])

  def check_finite(self):
    """Raises `NonFiniteError` ('stop') or counts the skipped updates ('skip')."""
    flags = self._steps(self.parallel.host_metrics(
        [m['nonfinite'] for m in self.metrics[self.checked:]]) or [np.zeros(0)])
    first = self.first_step + self.checked_steps
    bad = [first + i + 1 for i, f in enumerate(flags) if f > 0]
    self.checked, self.checked_steps = len(self.metrics), self.checked_steps + len(flags)
    if not bad:
      return
    if self.on_nonfinite == 'stop':
      kept = (f'the last good checkpoint is step {self.last_good_checkpoint}'
              if self.last_good_checkpoint else 'no checkpoint had been written yet')
      raise NonFiniteError(
          f'the loss or the gradients became NaN or Inf at step {bad[0]}; the run stopped '
          f'without saving anything after it, and {kept}. Lower train.learning_rate, set '
          'train.grad_clip, or set train.on_nonfinite=skip to skip such updates')
    self.skipped += len(bad)
    logging.warning('skipped %d update(s) with a NaN/Inf loss or gradient, at steps %s',
                    len(bad), ', '.join(map(str, bad[:10])))

  def summary(self, train: Mapping[str, Any], elapsed: float) -> dict[str, float]:
    host = self.parallel.host_metrics(self.metrics)
    per_step = {k: self._steps([m[k] for m in host]) for k in host[0]}
    steps = len(per_step['loss'])
    summary = {k: float(v.mean()) for k, v in per_step.items()}
    summary['steps_per_s'] = steps / elapsed
    summary['examples_per_s'] = steps * train['batch_size'] / elapsed
    return summary

  def reset(self, first_step: int):
    self.metrics, self.first_step, self.checked, self.checked_steps = [], first_step, 0, 0


def dispatches(start: int, total: int, per_dispatch: int,
               every: Iterable[int]) -> list[tuple[int, int]]:
  """The (first, last) steps (1-based, inclusive) of each compiled call from ``start + 1`` to
  ``total``: at most ``per_dispatch`` steps, and a call ends on every multiple of each nonzero
  interval in ``every`` (logging, validation, checkpoints), so those happen at their exact
  steps whatever ``per_dispatch`` is."""
  every = [e for e in every if e > 0]
  out, first = [], start + 1
  while first <= total:
    last = min([total, first + per_dispatch - 1] + [(first - 1) // e * e + e for e in every])
    out.append((first, last))
    first = last + 1
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains ``config``'s model on its task, resuming from ``workdir``; returns the results.

  On SIGTERM or SIGINT (or a multi-host preemption notice) it finishes the current step, saves
  a checkpoint, waits for it and returns ``{'preempted': True, 'step': ..., ...}``; the same
  call resumes from there. Raises a `UserError` subclass for anything a person must fix.
  """
  with StopRequest() as stop:
    try:
      return _train_and_evaluate(config, workdir, stop)
    except UserError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if not _out_of_space(e) or not workdirs.is_local(workdir):
        raise
      steps = sorted(int(p) for p in os.listdir(os.path.join(workdir, 'checkpoints'))
                     if p.isdigit()) if os.path.isdir(os.path.join(workdir, 'checkpoints')) else []
      kept = f'the newest complete checkpoint is step {steps[-1]}' if steps else (
          'no checkpoint was complete yet')
      raise WorkdirFullError(
          f'{os.path.abspath(workdir)} ran out of space (no space left on device); {kept}. '
          'Free some space and run the same command to resume') from None


def _out_of_space(error: BaseException) -> bool:
  """Whether an error (or one it came from) is ENOSPC; tensorstore reports it as text."""
  seen = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
      return True
    if 'No space left on device' in str(seen):
      return True
    seen = seen.__cause__ or seen.__context__
  return False


def prefetch(produce: Callable[[int], Any], steps: Iterable[int], depth: int = 2) -> Iterator:
  """``produce(step)`` for each step, made up to ``depth`` steps ahead on a background thread.

  Used for the next batches: reading them and putting them on the devices overlaps the steps
  running there instead of sitting between them. Close the generator to stop the thread.
  """
  steps = iter(steps)
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='prefetch') as pool:
    ahead = [pool.submit(produce, s) for s in itertools.islice(steps, depth)]
    try:
      while ahead:
        result = ahead.pop(0).result()
        ahead.extend(pool.submit(produce, s) for s in itertools.islice(steps, 1))
        yield result
    finally:
      for future in ahead:
        future.cancel()


def _train_and_evaluate(config, workdir, stop: StopRequest) -> dict[str, Any]:
  setup = build_setup(config)
  train = setup.train
  splits = setup.task.splits()
  sampler = setup.task.train_sampler(train['batch_size'], config.seed)
  init_rng, step_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  # shape errors surface here
  state = create_state(setup, init_rng, sampler.batch(0, *_this_process()))
  check_free_space(workdir, state)
  workdir = prepare_workdir(workdir, config)  # the first write, after every check
  parallel = make_parallel(setup)
  checkpointer = Checkpointer(str(workdirs.join(workdir, 'checkpoints')),
                              every=train['checkpoint_every'], keep=train['keep_checkpoints'],
                              async_save=train['async_checkpoints'])
  writer = batches = None
  try:
    start, state = checkpointer.restore_latest(parallel.checkpoint_target(state))
    start = start or 0
    if start:
      logging.info('resuming from the checkpoint at step %d in %s', start, workdir)
    state = parallel.place(state)
    writer = MetricWriter(workdir)
    total_steps = train['steps']
    params = param_counts(jax.device_get(parallel.savable(state).params))
    logging.info('%s on %s: %s parameters, %d devices (%s), steps %d..%d', setup.model_name,
                 setup.task.name, f'{params["total"]:,}', setup.num_devices, parallel.mode,
                 start, total_steps)

    eval_apply = _split_metrics_apply(setup)
    schedule = jax.jit(setup.schedule)  # one dispatch per log, not one per jnp op (0.7 ms)
    window = _Window(parallel, train['on_nonfinite'], start)
    window.last_good_checkpoint = start or None
    previous, window_start, train_time = None, time.perf_counter(), 0.0
    if stop.signal:  # asked to stop while starting up: the workdir is as it was
      return {'preempted': True, 'signal': stop.signal, 'step': start, 'saved': False,
              'workdir': workdir}
    progress = _progress(start, total_steps)
    calls = dispatches(start, total_steps, train['steps_per_dispatch'],
                       (train['log_every'], train['eval_every'], train['checkpoint_every']))

    def produce(call):  # only this process's rows, as the step takes them (`Parallel.feed`)
      first, last = call
      if first == last:
        return parallel.feed(sampler.batch(first - 1, *_this_process()))
      rows = [sampler.batch(s - 1, *_this_process()) for s in range(first, last + 1)]
      return parallel.feed_steps({k: np.stack([r[k] for r in rows]) for k in rows[0]})

    # The next batches are put on the devices ahead, on a thread, so that the transfer
    # overlaps the step. Where the host is the device there is no transfer to hide, and on a
    # few cores the thread only competes with the step (BUILD_NOTES.md): batches come inline.
    batches = ((produce(c) for c in calls) if host_is_device() else prefetch(produce, calls))
    for (first, step), batch in zip(calls, batches):
      if first == step:
        state, metrics = parallel.train_step(state, batch, step_rng)
      else:  # several steps in one call (train.steps_per_dispatch)
        state, metrics = parallel.train_steps(state, batch, step_rng)
      # At most two calls in flight: the device always has the next one queued and the
      # host never runs further ahead. Unbounded async dispatch of steps with collectives
      # deadlocked XLA's CPU runtime with 8 simulated devices.
      if previous is not None:
        jax.block_until_ready(previous)
      previous = metrics
      window.add(metrics)
      progress.update(step - first + 1)
      if step % train['log_every'] == 0 or step == total_steps:
        window.check_finite()
        elapsed = time.perf_counter() - window_start
        train_time += elapsed
        summary = window.summary(train, elapsed)
        summary['learning_rate'] = float(schedule(step - 1))
        writer.write(step, 'train', summary)
        progress.set_postfix(loss=f'{summary["loss"]:.4f}')
        logging.info('step %d/%d: %s', step, total_steps, _fmt(summary))
        window.reset(step)
        window_start = time.perf_counter()
      if train['eval_every'] and step % train['eval_every'] == 0 and step != total_steps:
        writer.write(step, 'validation', evaluate(parallel, state, setup.task,
                                                  splits['validation'],
                                                  train['eval_batch_size'], eval_apply))
        window_start = time.perf_counter()
      # every step of the call is shown to the multi-host preemption service, in order
      noticed = [checkpointer.reached_preemption(s) for s in range(first, step + 1)]
      preempted = stop.signal or (any(noticed) and 'preemption')
      if checkpointer.should_save(step) or step == total_steps or preempted:
        window.check_finite()  # never checkpoint a state that followed a NaN step
        checkpointer.save(step, parallel.savable(state), force=True)
        window.last_good_checkpoint = step
        writer.flush()  # a bucket's metrics.jsonl then holds every line up to the checkpoint
      if preempted and step != total_steps:
        checkpointer.wait()
        progress.close()
        logging.warning('stopped by %s after step %d; checkpoint saved in %s: run the same '
                        'command to resume', preempted, step, workdir)
        return {'preempted': True, 'signal': preempted, 'step': step, 'saved': True,
                'workdir': workdir}
    progress.close()

    results = {'model': setup.model_name, 'task': setup.task.describe(),
               'input_kind': setup.input_kind, 'steps': total_steps, 'resumed_from': start,
               'params': params, 'devices': setup.num_devices, 'parallel': parallel.mode,
               'train_time_s': train_time, 'skipped_updates': window.skipped,
               'receptive_field': getattr(setup.model.backbone, 'receptive_field',
                                          lambda: None)(),
               'target_metric': setup.task.target_metric}
    for split in ('validation', 'test'):
      results[split] = evaluate(parallel, state, setup.task, splits[split],
                                train['eval_batch_size'], eval_apply)
      writer.write(total_steps, split, results[split])
      logging.info('%s: %s', split, _fmt(results[split]))
    if jax.process_index() == 0:
      final = jax.device_get(parallel.savable(state))
      results.update(setup.task.write_artifacts(
          setup.model, {'params': final.params, **final.model_state}, workdir,
          jax.random.fold_in(step_rng, total_steps)))
      results['plots'] = plots.write_run_plots(  # plots/*.png, and images in TensorBoard
          workdir, setup.task, setup.model, setup.input_kind,
          {'params': final.params, **final.model_state}, writer=writer, step=total_steps,
          metric=setup.task.target_metric)
  finally:
    if batches is not None:
      batches.close()
    checkpointer.close()  # waits for an asynchronous save in flight
    if writer is not None:
      writer.close()
  if jax.process_index() == 0:
    workdirs.write_text(workdirs.join(workdir, 'results.json'), json.dumps(results, indent=2))
  return results


def _fmt(metrics: Mapping[str, float]) -> str:
  return ' '.join(f'{k}={v:.4g}' for k, v in metrics.items())


def _progress(start: int, total: int):
  import warnings  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():  # a notebook without ipywidgets: the text bar, no warning
    warnings.simplefilter('ignore')
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=start, unit='step', dynamic_ncols=True, disable=None,
              mininterval=1.0)


__all__ = ['TrainState', 'Setup', 'build_setup', 'create_state', 'make_step_fns', 'Parallel',
           'PmapParallel', 'JitParallel', 'host_is_device', 'make_parallel', 'evaluate',
           'train_and_evaluate', 'TRAIN_FIELDS']
