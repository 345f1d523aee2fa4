"""The helpers a notebook needs beyond the registries and the train loop.

Everything here is also reachable from the package top (``import comparenets as cn``;
``cn.load_config(...)``), which loads this module, and the heavy ones it needs, on first use.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from comparenets.errors import ConfigError

if TYPE_CHECKING:
  import ml_collections
  from comparenets.analysis.claims import Verdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, 'experiments')


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


def load_config(experiment: str, arg: str = '',
                overrides: Mapping[str, Any] | None = None) -> 'ml_collections.ConfigDict':
  """The config of an experiment file, as ``--config=experiments/<experiment>.py:<arg>`` gives.

  Args:
    experiment: a name under experiments/ (``'digits'``), a file name or a path.
    arg: the experiment's argument, e.g. ``'model=lstm,quick'``.
    overrides: ``{'section.field': value}``, like ``--config.train.steps=100``.

  Returns:
    The `ml_collections.ConfigDict` that `train_and_evaluate` takes.
  """
  path = experiment_path(experiment)
  spec = importlib.util.spec_from_file_location(
      f'comparenets_experiment_{os.path.basename(path)[:-3]}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  for dotted, value in (overrides or {}).items():
    section, _, field = dotted.partition('.')
    if section not in config or not field:
      raise ConfigError(f'override {dotted!r} names no field of the config; its sections are '
                        f'{", ".join(sorted(config.keys()))} (write section.field)')
    config[section][field] = value
  return config


def parameter_table(config: 'ml_collections.ConfigDict', depth: int | None = None) -> str:
  """`flax.linen.Module.tabulate` of a config's whole model (stem, backbone, head) on one
  example of its task: every module's input and output shapes and parameter counts."""
  import jax  # pylint: disable=g-import-not-at-top
  from comparenets import train  # pylint: disable=g-import-not-at-top
  setup = train.build_setup(config)
  example = {k: v[:1] for k, v in setup.task.train_sampler(1, 0).batch(0).items()}
  x, mask = setup.task.adapt(example, setup.input_kind)
  rng = jax.random.PRNGKey(0)
  return setup.model.tabulate({'params': rng, 'dropout': rng}, x, mask, train=False,
                              depth=depth,
                              console_kwargs={'width': 120, 'force_terminal': False})


def results_table(runs: str | Sequence[Mapping[str, Any]]) -> str:
  """A Markdown table of finished runs: a directory to search for results.json, or the runs
  `load_results` returned."""
  from comparenets import summary  # pylint: disable=g-import-not-at-top
  runs = summary.load_results(runs) if isinstance(runs, (str, os.PathLike)) else list(runs)
  if not runs:
    raise ConfigError('no finished runs (results.json) to tabulate')
  return summary.table(runs)


def audit_claims(root: str, structure_lengths: Sequence[int] = (),
                 peak: dict[str, Any] | None = None) -> list['Verdict']:
  """The claims audit of the finished runs below ``root`` (a suite's workdir).

  Structure rows come from ``root/structure.jsonl`` when the report wrote one; with
  ``structure_lengths`` and no such file they are measured now (and saved there). Without
  them, the claims that need them are 'not measured'. With structure rows the speed claim
  compares achieved FLOP/s with a matmul peak: ``peak`` (as `write_report` takes it), else
  the workdir's, as REPORT.md does (measured once, about a second, and kept).
  """
  from comparenets import summary  # pylint: disable=g-import-not-at-top
  from comparenets.analysis import claims, report  # pylint: disable=g-import-not-at-top
  runs = summary.load_results(root)
  if not runs:
    raise ConfigError(f'no finished runs (results.json) below {root}; run a suite first')
  rows = []
  if structure_lengths or os.path.exists(os.path.join(root, 'structure.jsonl')):
    rows = report.measure_structure(root, tuple(structure_lengths))
  if rows and peak is None:
    peak = report.cached_peak(root)
  return claims.audit(runs, rows, root, peak)


def claims_table(verdicts: Sequence['Verdict']) -> str:
  """The audit as the Markdown table of REPORT.md."""
  from comparenets.analysis import claims  # pylint: disable=g-import-not-at-top
  return claims.table(list(verdicts))


def read_report(root: str) -> str:
  """The text of ``root/REPORT.md`` (written by `write_report` or ``comparenets.compare``)."""
  path = os.path.join(root, 'REPORT.md')
  if not os.path.exists(path):
    raise ConfigError(f'no REPORT.md in {root}; write it with comparenets.write_report(root)')
  with open(path, encoding='utf-8') as f:
    return f.read()
