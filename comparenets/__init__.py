"""comparenets: convolutional and recurrent networks side by side on the same tasks, measured.

The public API, for notebooks and scripts::

    import comparenets as cn

    cn.models.build('lstm', hidden=64)          # a backbone by name (cn.models.names())
    cn.tasks.build('digits', reading='rows')    # a task by name (cn.tasks.names())
    config = cn.load_config('digits', 'model=lstm,quick', {'train.steps': 100})
    print(cn.parameter_table(config))           # nn.tabulate of the whole model
    results = cn.train_and_evaluate(config, '/tmp/digits_lstm')
    cn.plots.learning_curves('/tmp/digits_lstm')
    cn.analyze_structure('lstm', {'hidden': 64}, length=32)   # params, FLOPs, memory, speed
    cn.run_suite('quick', 'runs/quick'); cn.write_report('runs/quick')
    cn.load_results('runs/quick'); cn.claims_table(cn.audit_claims('runs/quick'))

Importing the package is cheap and has no side effects: no flag parsing, no device
initialisation, no TensorFlow. Each name above loads its module (and JAX, Flax, matplotlib as
that module needs them) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = '0.1.0'

# name -> (module, attribute or None for the module itself)
_API = {
    'models': ('comparenets.models', None),
    'tasks': ('comparenets.tasks', None),
    'plots': ('comparenets.plots', None),
    'load_config': ('comparenets.experiment', 'load_config'),
    'build_setup': ('comparenets.setup', 'build_setup'),
    'parameter_table': ('comparenets.api', 'parameter_table'),
    'train_and_evaluate': ('comparenets.train', 'train_and_evaluate'),
    'read_metrics': ('comparenets.metric_writers', 'read_metrics'),
    'analyze_structure': ('comparenets.analysis.structure', 'analyze'),
    'run_suite': ('comparenets.compare', 'run_suite'),
    'load_results': ('comparenets.summary', 'load_results'),
    'results_table': ('comparenets.api', 'results_table'),
    'audit_claims': ('comparenets.api', 'audit_claims'),
    'claims_table': ('comparenets.api', 'claims_table'),
    'write_report': ('comparenets.analysis.report', 'write_report'),
    'read_report': ('comparenets.api', 'read_report'),
}

__all__ = sorted(_API) + ['__version__']

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ loads these on use
  from comparenets import models, plots, tasks
  from comparenets.analysis.report import write_report
  from comparenets.analysis.structure import analyze as analyze_structure
  from comparenets.api import (audit_claims, claims_table, parameter_table, read_report,
                               results_table)
  from comparenets.compare import run_suite
  from comparenets.experiment import load_config
  from comparenets.metric_writers import read_metrics
  from comparenets.setup import build_setup
  from comparenets.summary import load_results
  from comparenets.train import train_and_evaluate


def __getattr__(name: str) -> Any:
  if name not in _API:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  module_name, attribute = _API[name]
  module = importlib.import_module(module_name)
  value = module if attribute is None else getattr(module, attribute)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_API))
