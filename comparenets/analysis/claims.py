"""The article's claims about CNNs and RNNs, each turned into a measured check with a verdict.

Each check reads a suite's workdir (runs' results.json and metrics.jsonl, and structure.jsonl)
or the model code itself, and returns a `Verdict`: 'supported', 'refuted', 'depends' or 'not
measured' (the suite lacks the runs it needs), with the numbers behind it. The claims are
restated in our own words; the section numbers refer to ../shared/article-cnn-vs-rnn.txt.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

from comparenets.models import recurrent

SUPPORTED, REFUTED, DEPENDS, NOT_MEASURED = 'supported', 'refuted', 'depends', 'not measured'


@dataclasses.dataclass
class Verdict:
  section: str
  claim: str
  verdict: str
  evidence: str


def _by(runs, group_prefix: str) -> dict[str, dict[str, Any]]:
  return {r['model']: r for r in runs if r['workdir'].split('/')[0].startswith(group_prefix)}


def params_grow_with_steps(runs, structure, root) -> Verdict:
  claim = "An RNN's parameter count grows exponentially with the number of time steps."
  rows = [r for r in structure if r['model'] in ('rnn', 'lstm', 'gru')]
  if not rows:
    return Verdict('2.3.3', claim, NOT_MEASURED, 'no structure rows')
  by_model = {}
  for r in rows:
    by_model.setdefault(r['model'], {})[r['length']] = r['backbone_params']
  constant = all(len(set(v.values())) == 1 for v in by_model.values())
  evidence = '; '.join(f'{m}: ' + ', '.join(f'T={t}: {p:,}' for t, p in sorted(v.items()))
                       for m, v in sorted(by_model.items()))
  return Verdict('2.3.3', claim, REFUTED if constant else SUPPORTED,
                 f'backbone parameters by sequence length: {evidence}. The weights are shared '
                 'across time steps; only compute and activation memory grow, linearly in T.')


def gru_only_update_gate(runs, structure, root) -> Verdict:
  claim = 'A GRU keeps only an update gate, and so computes less than an LSTM.'
  gates = recurrent.gate_names('gru')
  rows = {(r['model'], r['length']): r for r in structure}
  lengths = sorted({t for (m, t) in rows if m == 'gru' and ('lstm', t) in rows})
  numbers = []
  for t in lengths:
    g, l = rows[('gru', t)], rows[('lstm', t)]
    numbers.append(f"T={t}: params {g['backbone_params']:,} vs {l['backbone_params']:,}, "
                   f"train FLOPs/example {g['flops_train_per_example']:.3g} vs "
                   f"{l['flops_train_per_example']:.3g}, train step {g['train_step_s'] * 1e3:.1f} "
                   f"vs {l['train_step_s'] * 1e3:.1f} ms")
  return Verdict('2.2', claim, REFUTED,
                 f'the GRU computes {", ".join(gates[:-1])} gates and a {gates[-1]} (two gates, '
                 'not one); it does compute less than an LSTM (3 blocks of weights against 4), '
                 'GRU vs LSTM: ' + ('; '.join(numbers) if numbers else 'no structure rows'))


def lstm_gates(runs, structure, root) -> Verdict:
  claim = 'An LSTM has a forget gate, an input gate, an "update" gate and an output gate.'
  gates = recurrent.gate_names('lstm')
  return Verdict('2.2', claim, DEPENDS,
                 f'the LSTM here (the standard one) computes {", ".join(gates)}: three gates '
                 'plus a candidate. The "update" is the candidate that the input gate scales '
                 'into the cell state, not a fourth gate.')


def simple_rnn_previous_step_only(runs, structure, root) -> Verdict:
  claim = 'A simple RNN effectively sees only the previous time step.'
  adding, copy = _by(runs, 'adding'), _by(runs, 'copy_memory')
  if 'rnn' not in adding and 'rnn' not in copy:
    return Verdict('2.2', claim, NOT_MEASURED, 'no adding-problem or copy-memory run of the rnn')
  parts, remembers = [], False
  for name, group, metric, solved in (('adding', adding, 'mse', lambda v: v < 0.05),
                                      ('copy memory', copy, 'recall_accuracy',
                                       lambda v: v > 0.5)):
    for model in ('rnn', 'lstm', 'gru', 'tcn'):
      if model in group:
        value = group[model]['test'][metric]
        parts.append(f"{name} ({group[model]['workdir']}): {model} test {metric} {value:.4g}")
        if model == 'rnn' and solved(value):
          remembers = True
  return Verdict('2.2', claim, REFUTED if remembers else DEPENDS,
                 '; '.join(parts) + '. Predicting 1 on the adding problem gives MSE 0.167 and '
                 'guessing copy-memory digits 0.125; any result well past those needs memory '
                 'of steps far before the previous one.')


def rnns_converge_with_difficulty(runs, structure, root) -> Verdict:
  claim = 'RNNs converge with difficulty (compared with CNNs).'
  from comparenets.metric_writers import read_metrics  # pylint: disable=g-import-not-at-top
  lines = []
  for group in sorted({r['workdir'].split('/')[0] for r in runs}):
    members = _by(runs, group)
    if len(members) < 2:
      continue
    steps = {}
    for model, r in members.items():
      records = [m for m in read_metrics(os.path.join(root, r['workdir']))
                 if m['split'] == 'train']
      if len(records) < 2:
        continue
      losses = np.array([m['loss'] for m in records])
      target = losses[-1] + 0.1 * (losses[0] - losses[-1])  # 90 % of the way down
      steps[model] = next(m['step'] for m in records if m['loss'] <= target)
    if steps:
      lines.append(f'{group}: steps to 90 % of the loss drop ' +
                   ', '.join(f'{m} {s}' for m, s in sorted(steps.items(), key=lambda kv: kv[1])))
  if not lines:
    return Verdict('2.3.1', claim, NOT_MEASURED, 'no learning curves')
  return Verdict('2.3.1', claim, DEPENDS, '; '.join(lines) + '. Which family converges first '
                 'changes with the task; see the learning curves per task.')


def rnns_train_slower(runs, structure, root) -> Verdict:
  claim = 'RNNs train slower and cannot use GPUs/TPUs fully; CNNs train faster.'
  rows = {(r['model'], r['length']): r for r in structure}
  lengths = sorted({t for (m, t) in rows})
  lines = []
  for t in lengths:
    rates = {m: rows[(m, t)]['time_steps_per_s'] for m in ('tcn', 'rnn', 'lstm', 'gru')
             if (m, t) in rows}
    if rates:
      lines.append(f'T={t}: ' + ', '.join(f'{m} {v:.3g}' for m, v in rates.items()))
  if not lines:
    return Verdict('2.3.2', claim, NOT_MEASURED, 'no structure rows')
  return Verdict('2.3.2', claim, DEPENDS,
                 'training time steps per second on this machine (CPU), TCN vs recurrent: ' +
                 '; '.join(lines) + '. Measured on the CPU only: the GPU/TPU half of the claim '
                 'needs the accelerator benchmarks, which this report does not have yet.')


def cnn_fewer_params(runs, structure, root) -> Verdict:
  claim = 'A CNN has fewer parameters than an RNN and so saves memory.'
  digits = _by(runs, 'digits')
  if 'cnn' not in digits or not any(m in digits for m in ('rnn', 'lstm', 'gru')):
    return Verdict('2.3.3', claim, NOT_MEASURED, 'no digits runs of the cnn and an rnn')
  parts = ', '.join(f"{m} {r['params']['total']:,} (test accuracy {r['test']['accuracy']:.3f})"
                    for m, r in digits.items())
  return Verdict('2.3.3', claim, DEPENDS,
                 f'digits, parameters as configured: {parts}. Parameter counts follow the '
                 'chosen widths; neither family needs more parameters by nature.')


CHECKS: tuple[Callable[..., Verdict], ...] = (
    params_grow_with_steps, gru_only_update_gate, lstm_gates, simple_rnn_previous_step_only,
    rnns_converge_with_difficulty, rnns_train_slower, cnn_fewer_params)


def audit(runs: list[dict[str, Any]], structure: list[dict[str, Any]], root: str) -> list[Verdict]:
  return [check(runs, structure, root) for check in CHECKS]


def table(verdicts: list[Verdict]) -> str:
  lines = ['| section | claim (restated) | verdict | evidence |', '|---|---|---|---|']
  lines += [f'| {v.section} | {v.claim} | **{v.verdict}** | {v.evidence} |' for v in verdicts]
  return '\n'.join(lines)
