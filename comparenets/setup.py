"""A run's parts, built from its config without compiling anything.

`build_setup(config)` checks the whole config (its sections, the train fields and their values,
the model and task fields, whether the model can read the task's input and the batch divides
over the devices) and builds the task, the backbone, the head and the optimizer; every mistake
is a `ConfigError` raised here, before anything is compiled or written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import ml_collections
import optax

from comparenets import models
from comparenets import parallel as parallels
from comparenets import runtime
from comparenets import sweep as sweeps
from comparenets import tasks
from comparenets.config_utils import TRAIN_DEFAULTS, check_fields, check_values
from comparenets.errors import ConfigError

SECTIONS = {'seed': 0, 'model': None, 'task': None, 'head': None, 'train': None,
            'sweep': None}
TRAIN_FIELDS = TRAIN_DEFAULTS
TRAIN_RULES = {
    'optimizer': {'choices': ('adamw', 'adam', 'sgd')},
    'schedule': {'choices': ('cosine', 'constant')},
    'parallel': {'choices': parallels.MODES},
    'on_nonfinite': {'choices': ('stop', 'skip')},
    'compute_dtype': {'choices': ('float32', 'bfloat16')},
    'warmup_steps': {'min': 0},
    'eval_every': {'min': 0},
    'checkpoint_every': {'min': 0},
    'steps_per_dispatch': {'min': 0},  # 0: by backend
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
  # the checked sweep section (`comparenets.sweep`); ``members`` empty for a single run
  sweep: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(sweeps.SWEEP_DEFAULTS))
  members: list[sweeps.Member] = dataclasses.field(default_factory=list)
  form: str = 'single'  # how one program runs the members: 'vmap' or 'map'; 'single' for a run


def _section(config, name) -> dict[str, Any]:
  value = config.get(name)
  if value is None:
    raise ConfigError(f'the config has no {name!r} section')
  return dict(value)


def make_schedule(train: Mapping[str, Any], learning_rate):
  """The learning-rate schedule of a train config, peaking at ``learning_rate``.

  ``learning_rate`` may be a traced value (a sweep member's, from its optimizer state), so the
  warmup-cosine schedule is joined here from optax's parts with its end at a fixed 1 % of the
  peak: `optax.warmup_cosine_decay_schedule` divides by the peak in Python, which a traced
  value cannot take. The arithmetic is optax's, step for step.
  """
  lr, steps, warmup = learning_rate, train['steps'], train['warmup_steps']
  if train['schedule'] == 'cosine':
    return optax.join_schedules(
        [optax.linear_schedule(0.0 if warmup else lr, lr, warmup),
         optax.cosine_decay_schedule(lr, max(steps, warmup + 1) - warmup, alpha=0.01)],
        [warmup])
  if train['schedule'] == 'constant':
    return optax.constant_schedule(lr)
  raise ConfigError(f"train.schedule must be 'cosine' or 'constant', not {train['schedule']!r}")


def _optimizer(train: Mapping[str, Any], learning_rate):
  schedule = make_schedule(train, learning_rate)
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
  return opt


def make_optimizer(train: Mapping[str, Any], *, injected: bool = False):
  """The optimizer and learning-rate schedule a train config asks for.

  ``injected``: the peak learning rate lives in the optimizer state
  (`optax.inject_hyperparams`, ``opt_state.hyperparams['learning_rate']``), so the members of a
  sweep share one optimizer with a rate each (`injected_optimizer` sets a member's).
  """
  schedule = make_schedule(train, train['learning_rate'])
  if injected:
    return injected_optimizer(train, train['learning_rate']), schedule
  return _optimizer(train, train['learning_rate']), schedule


def injected_optimizer(train: Mapping[str, Any], learning_rate):
  """The optimizer with ``learning_rate`` (a number or a traced value) in its state."""
  return optax.inject_hyperparams(lambda learning_rate: _optimizer(train, learning_rate))(
      learning_rate=learning_rate)


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
  if not train['steps_per_dispatch']:
    train['steps_per_dispatch'] = runtime.default_steps_per_dispatch(jax.default_backend())
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
  sweep = sweeps.check_sweep(config)
  swept = sweep['seeds'] > 1 or bool(sweep['learning_rates'])  # `sweeps.is_sweep`
  tx, schedule = make_optimizer(train, injected=swept)
  form = 'single'
  if swept:
    form = (sweeps.auto_form(model_name) if sweep['form'] == 'auto' else sweep['form'])
  return Setup(config=config, task=task, model_name=model_name, input_kind=kind,
               model=models.TaskModel(backbone=backbone, head=head, stem=task.stem()),
               tx=tx, schedule=schedule,
               num_devices=num_devices, train=train, sweep=sweep,
               members=sweeps.members(config) if swept else [], form=form)

