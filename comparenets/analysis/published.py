"""Our numbers beside the published table: Bai, Kolter & Koltun (2018), "An Empirical Evaluation
of Generic Convolutional and Recurrent Networks for Sequence Modeling", Table 1.

`section(runs, root)` is the report's "Against the published table": for each task setting that
the paper suite (``experiments/suites/paper.py``) runs, each family at its chosen learning rate
(`selection.chosen_runs`) as the mean and 95 % Student-t interval over its seeds, its parameter
count, and the table's number for the same family. Where our data differ from the paper's (8x8
digits for MNIST, the standard library's source for Penn Treebank), the section says so; a
number next to the paper's is a comparison of the method, not of the same benchmark.
"""

from __future__ import annotations

import collections
import os
from typing import Any, Sequence

from comparenets import models
from comparenets.metrics import intervals

# run name -> (metric as results.json names it, factor to the table's unit, {family: number},
# what the paper ran / what differs here)
TABLE = {
    'adding_T600': ('mse', 1.0, {'tcn': 5.8e-5, 'rnn': 0.177, 'lstm': 0.164, 'gru': 5.3e-5},
                    'the adding problem at T=600, MSE: the same task, generated the same way'),
    'copy_memory_T1000': ('loss', 1.0,
                          {'tcn': 3.5e-5, 'rnn': 0.0202, 'lstm': 0.0204, 'gru': 0.0197},
                          'copy memory at T=1000, loss: the same task (models of about 16k '
                          'parameters, as the paper)'),
    'seq_digits': ('accuracy', 100.0, {'tcn': 99.0, 'rnn': 21.5, 'lstm': 87.2, 'gru': 96.2},
                   'sequential MNIST (784 steps) in the paper; here 8x8 digits read pixel by '
                   'pixel (64 steps), a much easier task'),
    'seq_digits_permuted': ('accuracy', 100.0,
                            {'tcn': 97.2, 'rnn': 25.3, 'lstm': 85.7, 'gru': 87.3},
                            'permuted MNIST in the paper; here permuted 8x8 digits (64 steps)'),
    'char_lm': ('bpc', 1.0, {'tcn': 1.31, 'rnn': 1.48, 'lstm': 1.36, 'gru': 1.37},
                "character-level Penn Treebank with models of about 3M parameters in the "
                "paper; here the Python standard library's source, so the bits per character "
                'measure another text'),
}
CITATION = 'Bai, Kolter & Koltun (2018), Table 1'


def _show(value: float, scale: float) -> str:
  value *= scale
  return f'{value:.3g}' if abs(value) >= 1e-3 or value == 0 else f'{value:.2e}'


def section(runs: Sequence[dict[str, Any]]) -> list[str]:
  """The report's lines for the published table ([] when no run is of a row the table has).
  ``runs``: each model's runs at its chosen learning rate, with their 'workdir'."""
  by_row: dict[str, dict[str, list[dict[str, Any]]]] = collections.defaultdict(
      lambda: collections.defaultdict(list))
  for r in runs:
    row = r['workdir'].replace(os.sep, '/').split('/')[0]
    if row in TABLE and r['model'] in TABLE[row][2]:
      by_row[row][r['model']].append(r)
  if not by_row:
    return []
  lines = ['## Against the published table', '',
           f'{CITATION}, beside our runs of the same rows (`experiments/suites/paper.py`): '
           'each family at its chosen learning rate, the test metric as the mean and 95 % '
           'Student-t interval over its seeds, in the table\'s unit. The data are not always '
           "the paper's: each row says what differs.", '',
           '| row | model | n | params | ours: mean [95 % interval] | paper |',
           '|---|---|---|---|---|---|']
  notes = []
  for row in (r for r in TABLE if r in by_row):
    metric, scale, paper, note = TABLE[row]
    notes.append(f'* `{row}`: {note}.')
    for model in sorted(by_row[row], key=models.rank):
      members = by_row[row][model]
      values = [m['test'][metric] for m in members if metric in m.get('test', {})]
      if not values:
        continue
      iv = intervals.mean_interval(values)
      interval = ('' if iv.low is None else
                  f' [{_show(iv.low, scale)}, {_show(iv.high, scale)}]')
      lines.append(f"| {row} | {model} | {iv.n} | {members[0]['params']['total']:,} | "
                   f'{_show(iv.mean, scale)}{interval} | {_show(paper[model], 1.0)} |')
  return lines + [''] + notes + ['']


__all__ = ['TABLE', 'CITATION', 'section']
