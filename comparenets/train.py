"""One train loop for every (model, task) pair.

* `make_step_fns` gives the pure step functions ``train_step(state, batch, rng) -> (state,
  metrics)`` and ``eval_step(state, batch) -> sums``, under the precision policy of
  ``train.compute_dtype`` (`mixed_precision_apply`).
* `make_parallel` wraps them in the data-parallel strategy ``train.parallel`` names
  (`comparenets.parallel`: one device, pmap or jit-sharded), which also runs the steps between
  the loop's events in as few compiled calls as ``train.steps_per_dispatch`` allows.
* `train_and_evaluate(config, workdir)` runs training with automatic resume from the newest
  checkpoint in ``workdir``, periodic evaluation, metrics as JSON lines and TensorBoard events,
  and writes ``config.json`` and ``results.json``; it returns the results dict.

The config is checked and its parts built by `comparenets.setup.build_setup`; the workdir's
checks (free space, another experiment's run, a disk filling up) are in `comparenets.workdir`.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, Mapping

from absl import logging
import flax
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from comparenets import console
from comparenets import parallel as parallels
from comparenets import plots
from comparenets import runtime
from comparenets import sweep as sweeps
from comparenets import tasks
from comparenets import window as window_lib
from comparenets import workdir as workdirs
from comparenets.checkpointing import Checkpointer
from comparenets.data import pipeline
from comparenets.errors import ConfigError, NonFiniteError
from comparenets.metric_writers import MetricWriter
from comparenets.setup import Setup, build_setup, injected_optimizer, make_schedule
from comparenets.stopping import StopRequest


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the model's non-parameter collections (e.g. ``batch_stats``), and
  for a sweep's stacked members whether each was halted by a NaN (`comparenets.sweep`)."""
  model_state: Any = flax.struct.field(default_factory=dict)
  halted: Any = None  # None in a single run (no leaf); bool per member in a sweep


def _init_fn(setup: Setup):
  def init(rng, batch):
    x, mask = setup.task.adapt(batch, setup.input_kind)
    variables = setup.model.init({'params': rng, 'dropout': rng}, x, mask, train=False)
    # The task's loss on the model's output, traced (and then dropped by XLA) so that a head or
    # loss that does not fit this backbone's output fails here, before anything is written.
    setup.task.per_example(setup.model.apply(variables, x, mask, train=False), batch)
    params = variables.pop('params')
    return TrainState.create(apply_fn=setup.model.apply, params=params, tx=setup.tx,
                             model_state=dict(variables))
  return init


def create_state(setup: Setup, rng: jax.Array, example_batch: Mapping[str, np.ndarray]):
  """Initialises parameters on one device from a one-example batch.

  For a sweep (``setup.members``), ``rng`` holds one key per member and the state comes back
  stacked on a leading member axis: each member's parameters as its single run initialises
  them, its learning rate in its optimizer state (`setup.injected_optimizer`).
  """
  one = {k: v[:1] for k, v in example_batch.items()}
  init = _init_fn(setup)
  if setup.members:
    single = init

    def init(rng, batch, learning_rate):  # pylint: disable=function-redefined
      state = single(rng, batch)
      tx = injected_optimizer(setup.train, learning_rate)
      return state.replace(opt_state=tx.init(state.params), halted=jnp.zeros((), bool))

    rates = jnp.asarray([m.learning_rate for m in setup.members], jnp.float32)
    members = jax.vmap(init, in_axes=(0, None, 0))
    init = lambda rng, batch: members(rng, batch, rates)
  try:
    return runtime.run_once(init, rng, one)
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

  if setup.members:  # a sweep: the members' steps in one program
    return sweeps.member_steps(train_step, eval_step, setup.form,
                               halt=setup.train['on_nonfinite'] == 'stop')
  return train_step, eval_step


def make_parallel(setup: Setup) -> parallels.Parallel:
  """The data-parallel strategy ``train.parallel`` names, with this setup's steps compiled."""
  return parallels.make(setup.train, functools.partial(make_step_fns, setup))


def evaluate(parallel: parallels.Parallel, state, task: tasks.Task, split, batch_size: int,
             apply=None, members: int = 0):
  """The task's metrics over every example of ``split``; with ``apply`` (`tasks.make_apply`),
  plus the task's `split_metrics` from the predictions of the whole split. For the stacked
  state of a sweep of ``members`` members, a list with each member's metrics."""
  total = None
  for batch in pipeline.eval_batches(split, batch_size, *parallels.this_process()):
    sums = parallel.eval_step(state, parallel.feed(batch))
    total = sums if total is None else jax.tree.map(lambda a, b: a + b, total, sums)
  host = parallel.host_metrics(total)
  final = jax.device_get(parallel.savable(state)) if apply is not None else None
  out = []
  for i in range(members or 1):
    view = (lambda tree: sweeps.member_tree(tree, i)) if members else (lambda tree: tree)
    metrics = task.finalize(view(host))
    if apply is not None:
      one = view(final)
      predict = tasks.make_predict(task, None, '', {'params': one.params, **one.model_state},
                                   batch_size, apply=apply)
      metrics.update(task.split_metrics(predict, split))
    out.append(metrics)
  return out if members else out[0]


def _split_metrics_apply(setup: Setup):
  """`tasks.make_apply` for tasks that define `Task.split_metrics`, else None."""
  if type(setup.task).split_metrics is tasks.Task.split_metrics:
    return None
  return tasks.make_apply(setup.task, setup.model, setup.input_kind)


def param_counts(params) -> dict[str, int]:
  count = lambda tree: int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
  return {'total': count(params), 'backbone': count(params.get('backbone', {})),
          'head': count(params.get('head', {}))}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains ``config``'s model on its task, resuming from ``workdir``; returns the results.

  On SIGTERM or SIGINT (or a multi-host preemption notice) it finishes the current step, saves
  a checkpoint, waits for it and returns ``{'preempted': True, 'step': ..., ...}``; the same
  call resumes from there. Raises a `UserError` subclass for anything a person must fix.
  """
  with StopRequest() as stop, workdirs.full_disk_is_one_error(workdir):
    return _train_and_evaluate(config, workdir, stop)


def _train_and_evaluate(config, workdir, stop: StopRequest) -> dict[str, Any]:
  setup = build_setup(config)
  if setup.form == 'separate':
    return _one_after_another(config, setup, workdir, stop)
  train, members = setup.train, setup.members
  splits = setup.task.splits()
  samplers, sampler, init_rng, step_rng = sweeps.run_inputs(setup, config.seed)
  # shape errors surface here
  state = create_state(setup, init_rng, samplers[0].batch(0, *parallels.this_process()))
  workdirs.check_free_space(workdir, state)
  parallel = make_parallel(setup)
  if members:  # every member in one program: does it fit? (compiled here, nothing run)
    need = parallel.memory_need(parallel.place(state), step_rng, sampler, 0, train['steps'],
                                (train['log_every'], train['eval_every'],
                                 train['checkpoint_every']))
    sweeps.check_fits(need, runtime.device_memory_limit(), len(members), setup.form)
  workdir = workdirs.prepare_workdir(workdir, config)  # the first write, after every check
  # each member an ordinary run directory, with the config of the single run it equals
  run_dirs = [workdirs.prepare_workdir(str(workdirs.join(workdir, m.subdir)), m.config)
              for m in members] or [workdir]
  view = ((lambda tree, i: sweeps.member_tree(tree, i)) if members else
          (lambda tree, i: tree))
  checkpointer = Checkpointer(str(workdirs.join(workdir, 'checkpoints')),
                              every=train['checkpoint_every'], keep=train['keep_checkpoints'],
                              async_save=train['async_checkpoints'])
  writers, calls = [], None
  try:
    start, state = checkpointer.restore_latest(parallel.checkpoint_target(state))
    start = start or 0
    if start:
      logging.info('resuming from the checkpoint at step %d in %s', start, workdir)
    state = parallel.place(state)
    writers = [MetricWriter(d) for d in run_dirs]
    total_steps = train['steps']
    host = jax.device_get(parallel.savable(state))
    params = param_counts(view(host.params, 0))
    logging.info('%s on %s: %s parameters%s, %d devices (%s), steps %d..%d', setup.model_name,
                 setup.task.name, f'{params["total"]:,}',
                 f' x {len(members)} members ({setup.form})' if members else '',
                 setup.num_devices, parallel.mode, start, total_steps)

    eval_apply = _split_metrics_apply(setup)
    evaluate_split = lambda split: evaluate(parallel, state, setup.task, splits[split],
                                            train['eval_batch_size'], eval_apply, len(members))
    per_run = lambda metrics: metrics if members else [metrics]
    # one dispatch per log, not one per jnp op (0.7 ms)
    schedules = [jax.jit(setup.schedule)] if not members else [
        jax.jit(make_schedule(train, m.learning_rate)) for m in members]
    window = window_lib.Window(parallel, train['on_nonfinite'], start, [m.subdir for m in members] or None)
    window.last_good_checkpoint = start or None
    if members:  # halted before a resume: known from the restored state
      window.halted = {int(j): int(host.step[j]) + 1 for j in np.flatnonzero(host.halted)}
    if stop.signal:  # asked to stop while starting up: the workdir is as it was
      return {'preempted': True, 'signal': stop.signal, 'step': start, 'saved': False,
              'workdir': workdir}
    every = (train['log_every'], train['eval_every'], train['checkpoint_every'])
    # compiled before the clock starts: train_time_s and steps_per_s time training only
    compile_s = parallel.warm_up(state, step_rng, sampler, start, total_steps, every)
    previous, window_start, train_time = None, time.perf_counter(), 0.0
    progress = console.progress(total=total_steps, initial=start, unit='step',
                                dynamic_ncols=True, mininterval=1.0)
    # one compiled call per item, ending on every step where something below happens
    calls = parallel.run_steps(state, step_rng, sampler, start, total_steps, every)
    for first, step, state, metrics in calls:
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
        summaries = window.summaries(train, elapsed)
        for writer, summary, schedule in zip(writers, summaries, schedules):
          summary['learning_rate'] = float(schedule(step - 1))
          writer.write(step, 'train', summary)
        progress.set_postfix(loss=f'{summaries[0]["loss"]:.4f}')
        logging.info('step %d/%d: %s', step, total_steps, _fmt(summaries[0]) +
                     (f' (member {members[0].subdir} of {len(members)})' if members else ''))
        window.reset(step)
        window_start = time.perf_counter()
      if train['eval_every'] and step % train['eval_every'] == 0 and step != total_steps:
        for writer, metrics_ in zip(writers, per_run(evaluate_split('validation'))):
          writer.write(step, 'validation', metrics_)
        window_start = time.perf_counter()
      # every step of the call is shown to the multi-host preemption service, in order
      noticed = [checkpointer.reached_preemption(s) for s in range(first, step + 1)]
      preempted = stop.signal or (any(noticed) and 'preemption')
      if checkpointer.should_save(step) or step == total_steps or preempted:
        window.check_finite()  # never checkpoint a state that followed a NaN step
        checkpointer.save(step, parallel.savable(state), force=True)
        window.last_good_checkpoint = step
        for writer in writers:
          writer.flush()  # a bucket's metrics.jsonl then holds every line up to the checkpoint
      if preempted and step != total_steps:
        checkpointer.wait()
        progress.close()
        logging.warning('stopped by %s after step %d; checkpoint saved in %s: run the same '
                        'command to resume', preempted, step, workdir)
        return {'preempted': True, 'signal': preempted, 'step': step, 'saved': True,
                'workdir': workdir}
    progress.close()

    x, mask = setup.task.adapt({k: v[:1] for k, v in samplers[0].batch(0).items()},
                               setup.input_kind)
    out = jax.eval_shape(lambda r: setup.model.init_with_output(
        {'params': r, 'dropout': r}, x, mask, train=False)[0], view(init_rng, 0))  # shapes only
    common = {'model': setup.model_name, 'task': setup.task.describe(),
              'input_kind': setup.input_kind, 'steps': total_steps, 'resumed_from': start,
              'params': params, 'devices': setup.num_devices, 'parallel': parallel.mode,
              'train_time_s': train_time, 'compile_s': compile_s,
              'receptive_field': getattr(setup.model.backbone, 'receptive_field',
                                         lambda: None)(),
              'target_metric': setup.task.target_metric,
              # each split's size: the n of a test accuracy's binomial (Wilson) interval
              'examples': {s: pipeline.split_size(splits[s]) for s in ('validation', 'test')},
              'io_shapes': jax.tree.map(lambda a: list(a.shape[1:]),
                                        {'input': x, 'output': out})}
    if members:  # a member's train time is its share of the program's (as its steps_per_s)
      common.update(train_time_s=train_time / len(members), program_train_time_s=train_time,
                    sweep={'members': len(members), 'form': setup.form})
    runs = [dict(common, skipped_updates=n) for n in window.skipped]
    for split in ('validation', 'test'):
      for j, (results, metrics_) in enumerate(zip(runs, per_run(evaluate_split(split)))):
        results[split] = metrics_
        writers[j].write(total_steps, split, metrics_)
      logging.info('%s: %s', split, _fmt(runs[0][split]))
    final = (jax.device_get(parallel.savable(state))  # a sweep's members: every process
             if members or jax.process_index() == 0 else None)
    for j, run_dir in enumerate(run_dirs[:len(members)]):
      if j not in window.halted:  # each member's final state where its single run has it
        sweeps.save_member(view(final, j), str(workdirs.join(run_dir, 'checkpoints')),
                           total_steps)
    if jax.process_index() == 0:
      plot_apply = eval_apply or tasks.make_apply(setup.task, setup.model, setup.input_kind)
      for j, (results, run_dir, writer) in enumerate(zip(runs, run_dirs, writers)):
        if j in window.halted:
          continue
        one = view(final, j)
        variables = {'params': one.params, **one.model_state}
        results.update(setup.task.write_artifacts(
            setup.model, variables, run_dir,
            jax.random.fold_in(view(step_rng, j), total_steps)))
        results['plots'] = plots.write_run_plots(  # plots/*.png, and images in TensorBoard
            run_dir, setup.task, setup.model, setup.input_kind, variables, writer=writer,
            step=total_steps, metric=setup.task.target_metric, apply=plot_apply)
  finally:
    if calls is not None:
      calls.close()  # stops the batches made ahead
    for member_sampler in samplers:
      if hasattr(member_sampler, 'close'):
        member_sampler.close()  # grain's worker processes, where the task has them
    checkpointer.close()  # waits for an asynchronous save in flight
    for writer in writers:
      writer.close()
  if jax.process_index() == 0:
    for j, (results, run_dir) in enumerate(zip(runs, run_dirs)):
      if j not in window.halted:  # a halted member has no results: sweep.json says why
        workdirs.write_text(workdirs.join(run_dir, 'results.json'),
                            json.dumps(results, indent=2))
    if members:
      ended = [{'halted_at_step': window.halted[j]} if j in window.halted else
               {'finished': True, 'skipped_updates': runs[j]['skipped_updates']}
               for j in range(len(members))]
      sweeps.write_summary(workdirs.join(workdir, 'sweep.json'), members, ended, setup.form,
                           workdirs.write_text)
  if members:
    return {'members': [None if j in window.halted else dict(r, workdir=str(d))
                        for j, (r, d) in enumerate(zip(runs, run_dirs))],
            'target_metric': setup.task.target_metric, 'train_time_s': train_time,
            'form': setup.form, 'workdir': workdir}
  return runs[0]


def _one_after_another(config, setup: Setup, workdir, stop: StopRequest) -> dict[str, Any]:
  """A sweep whose members train one after another, each as its own single run in its
  directory (``sweep.form='separate'``); a member finished (or halted by a NaN) before is read
  from its results.json (or sweep.json), not trained again."""
  workdir = workdirs.prepare_workdir(workdir, config)
  summary = workdirs.read_text(workdirs.join(workdir, 'sweep.json'))  # halted before: stays so
  before = {m['workdir']: m for m in json.loads(summary)['members']} if summary else {}
  runs, ended = [], []
  for member in setup.members:
    run_dir = str(workdirs.join(workdir, member.subdir))
    text = workdirs.read_text(workdirs.join(run_dir, 'results.json'))
    if not text and 'halted_at_step' in before.get(member.subdir, {}):
      runs.append(None)
      ended.append({'halted_at_step': before[member.subdir]['halted_at_step']})
      continue
    try:
      results = json.loads(text) if text else _train_and_evaluate(member.config, run_dir, stop)
    except NonFiniteError as e:  # that member only: the others train on
      logging.warning('member %s: %s', member.subdir, e)
      runs.append(None)
      ended.append({'halted_at_step': e.step})
      continue
    if results.get('preempted'):
      return results
    runs.append(dict(results, workdir=run_dir))
    ended.append({'finished': True, 'skipped_updates': results['skipped_updates']})
  if not any(runs):
    raise NonFiniteError('the loss or the gradients became NaN or Inf in every member of the '
                         'sweep; lower the learning rates, set train.grad_clip, or set '
                         'train.on_nonfinite=skip')
  if jax.process_index() == 0:
    sweeps.write_summary(workdirs.join(workdir, 'sweep.json'), setup.members, ended, 'separate',
                         workdirs.write_text)
  return {'members': runs, 'target_metric': setup.task.target_metric, 'form': 'separate',
          'train_time_s': sum(r['train_time_s'] for r in runs if r), 'workdir': workdir}


def _fmt(metrics: Mapping[str, float]) -> str:
  return ' '.join(f'{k}={v:.4g}' for k, v in metrics.items())


__all__ = ['TrainState', 'Setup', 'build_setup', 'create_state', 'mixed_precision_apply',
           'make_step_fns', 'make_parallel', 'evaluate', 'param_counts', 'train_and_evaluate']
