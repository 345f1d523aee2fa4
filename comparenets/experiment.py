"""Experiment files: the helpers they build their configs with, and the one loader.

An experiment file (``experiments/<name>.py``) defines ``get_config(arg)``: it parses ``arg``
with `parse_arg` (big_vision's ``"model=lstm,quick"`` convention) and returns
`experiment_config`'s ConfigDict (seed, model, task, head and train sections). `load_config`
runs one with overrides; the command line (``--config=FILE:ARG --config.train.steps=...``), the
suite runner (`comparenets.compare`), the benchmarks and notebooks (``cn.load_config``) all
read experiments through it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping

import ml_collections

from comparenets import models as models_lib
from comparenets.config_utils import TRAIN_DEFAULTS
from comparenets.sweep import SWEEP_DEFAULTS
from comparenets.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, 'experiments')

# What ``quick`` does to the train section of every experiment: a seconds-long CPU run.
QUICK_TRAIN = dict(steps=40, warmup_steps=5, log_every=10, eval_every=20, checkpoint_every=20)


def experiment_config(arg: ml_collections.ConfigDict, models: Mapping[str, Mapping[str, Any]],
                      task: Mapping[str, Any], *, head: Mapping[str, Any] | None = None,
                      train: Mapping[str, Any] | None = None,
                      quick_task: Mapping[str, Any] | None = None,
                      quick_train: Mapping[str, Any] | None = None,
                      what: str = 'this experiment') -> ml_collections.ConfigDict:
  """The config of an experiment file: seed, model, task, head, train and sweep sections.

  ``models`` maps the model names the experiment supports to their fields; ``arg.model`` picks
  one (anything else is a `ConfigError`); the model section holds every field of that model,
  the experiment's values over the model's defaults. ``train`` overrides `TRAIN_DEFAULTS`. With
  ``arg.quick``, ``quick_task`` and `QUICK_TRAIN` plus ``quick_train`` shrink the run.
  """
  if arg.model not in models:
    raise ConfigError(f'{what} runs {", ".join(sorted(models))}; model must be one of '
                      f'those, not {arg.model!r}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  # every field of the model, so that any of them can be overridden from the command line
  config.model = ml_collections.ConfigDict({'name': arg.model, **models_lib.fields(arg.model),
                                            **models[arg.model]})
  config.task = ml_collections.ConfigDict(dict(task))
  config.head = ml_collections.ConfigDict(dict(head or {}))
  config.train = ml_collections.ConfigDict({**TRAIN_DEFAULTS, **(train or {})})
  # seeds and learning rates trained as one program (`comparenets.sweep`); one run by default
  config.sweep = ml_collections.ConfigDict(dict(SWEEP_DEFAULTS))
  if arg.get('quick'):
    config.task.update(dict(quick_task or {}))
    config.train.update({**QUICK_TRAIN, **(quick_train or {})})
  return config


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses an experiment argument such as ``"model=lstm,quick"`` (big_vision's convention).

  ``key=value`` sets a field, a bare ``key`` sets it to True. Values take the type of the
  default; a key without a default is a `ConfigError` that lists the valid keys.
  """
  result = dict(defaults)
  for token in filter(None, (t.strip() for t in (arg or '').split(','))):
    key, eq, value = token.partition('=')
    if key not in defaults:
      raise ConfigError(f'unknown experiment argument {key!r} in {arg!r}; '
                        f'valid arguments: {", ".join(sorted(defaults))}')
    default = defaults[key]
    if not eq:
      result[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ('true', 'false', '1', '0'):
        raise ConfigError(f'experiment argument {key}={value!r} must be true or false')
      result[key] = value.lower() in ('true', '1')
    elif isinstance(default, int):
      try:
        result[key] = int(value)
      except ValueError:
        raise ConfigError(f'experiment argument {key}={value!r} must be an integer') from None
    else:
      result[key] = value
  return ml_collections.ConfigDict(result)


def experiment_path(experiment: str) -> str:
  """``'digits'``, ``'digits.py'`` or a path -> the experiment file's path."""
  if os.sep in experiment or '/' in experiment:
    path = experiment
  else:
    path = os.path.join(EXPERIMENTS, experiment if experiment.endswith('.py') else
                        f'{experiment}.py')
  if not os.path.exists(path):
    known = sorted(f[:-3] for f in os.listdir(EXPERIMENTS) if f.endswith('.py')) \
        if os.path.isdir(EXPERIMENTS) else []
    raise ConfigError(f'no experiment file {path}; the experiments are '
                      f'{", ".join(known) or "(no experiments/ folder next to the package)"}')
  return path


def load_module(path: str, name: str):
  """Executes the Python file ``path`` as a module called ``name`` (experiment and suite files
  are files, not importable modules)."""
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or not os.path.exists(path):
    raise ConfigError(f'no such file: {path}')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(experiment: str, arg: str = '',
                overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The config of an experiment file, as ``--config=experiments/<experiment>.py:<arg>`` gives.

  Args:
    experiment: a name under experiments/ (``'digits'``), a file name (``'digits.py'``) or a
      path.
    arg: the experiment's argument, e.g. ``'model=lstm,quick'``.
    overrides: ``{'section.field': value}``, like ``--config.train.steps=100``, or a top-level
      field (``{'seed': 1}``).

  Returns:
    The `ml_collections.ConfigDict` that `comparenets.train.train_and_evaluate` takes.
  """
  path = experiment_path(experiment)
  config = load_module(path, f'comparenets_experiment_{os.path.basename(path)[:-3]}') \
      .get_config(arg)
  for dotted, value in (overrides or {}).items():
    section, _, field = dotted.partition('.')
    top_level = section in config and not hasattr(config[section], 'keys')
    if field and section in config and not top_level:
      config[section][field] = value
    elif not field and top_level:
      config[section] = value
    else:
      fields = sorted(k for k in config.keys() if not hasattr(config[k], 'keys'))
      sections = sorted(k for k in config.keys() if hasattr(config[k], 'keys'))
      raise ConfigError(f'override {dotted!r} names no field of the config of {experiment} '
                        f'(no top-level field {dotted!r}: those are {", ".join(fields)}); write '
                        f'section.field, with a section of {", ".join(sections)}')
  return config
