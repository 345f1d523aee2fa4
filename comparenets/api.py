"""The helpers a notebook needs beyond the registries, the experiment loader and the train loop.

Everything here is also reachable from the package top (``import comparenets as cn``;
``cn.parameter_table(...)``), which loads this module, and the heavy ones it needs, on first use.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import jax
import ml_collections

from comparenets import summary
from comparenets import train
from comparenets import workdir as workdirs
from comparenets.analysis import claims
from comparenets.analysis import report
from comparenets.errors import ConfigError



def parameter_table(config: ml_collections.ConfigDict, depth: int | None = None) -> str:
  """`flax.linen.Module.tabulate` of a config's whole model (stem, backbone, head) on one
  example of its task: every module's input and output shapes and parameter counts."""
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
  runs = summary.load_results(runs) if isinstance(runs, (str, os.PathLike)) else list(runs)
  if not runs:
    raise ConfigError('no finished runs (results.json) to tabulate')
  return summary.table(runs)


def audit_claims(root: str, structure_lengths: Sequence[int] = (),
                 peak: dict[str, Any] | None = None) -> list[claims.Verdict]:
  """The claims audit of the finished runs below ``root`` (a suite's workdir).

  Structure rows come from ``root/structure.jsonl`` when the report wrote one; with
  ``structure_lengths`` and no such file they are measured now (and saved there). Without
  them, the claims that need them are 'not measured'. With structure rows the speed claim
  compares achieved FLOP/s with a matmul peak: ``peak`` (as `write_report` takes it), else
  the workdir's, as REPORT.md does (measured once, about a second, and kept).
  """
  runs = summary.load_results(root)
  if not runs:
    raise ConfigError(f'no finished runs (results.json) below {root}; run a suite first')
  rows = []
  if structure_lengths or workdirs.join(root, 'structure.jsonl').exists():
    rows = report.measure_structure(root, tuple(structure_lengths))
  if rows and peak is None:
    peak = report.cached_peak(root)
  return claims.audit(runs, rows, root, peak)


def claims_table(verdicts: Sequence[claims.Verdict]) -> str:
  """The audit as the Markdown table of REPORT.md."""
  return claims.table(list(verdicts))


def read_report(root: str) -> str:
  """The text of ``root/REPORT.md`` (written by `write_report` or ``comparenets.compare``)."""
  workdirs.require_bucket_support(root, 'root')
  text = workdirs.read_text(workdirs.join(root, 'REPORT.md'))
  if text is None:
    raise ConfigError(f'no REPORT.md in {root}; write it with comparenets.write_report(root)')
  return text
