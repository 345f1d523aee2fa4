"""The article's claims about CNNs and RNNs, each turned into a measured check with a verdict.

Each check reads a suite's workdir (runs' results.json and metrics.jsonl, and structure.jsonl)
or the model code itself, and returns a `Verdict`: 'supported', 'refuted', 'depends' or 'not
measured' (the suite lacks the runs it needs), with the numbers behind it. The claims are
restated in our own words; the section numbers refer to ../shared/article-cnn-vs-rnn.txt.
"""

from __future__ import annotations

import dataclasses
import inspect
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


def _group(run: dict[str, Any]) -> str:
  return run['workdir'].split('/')[0]


def _groups(runs, prefix: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
  """{task setting: {model: its runs (one per seed)}} of the settings named ``prefix`` or
  ``prefix_...`` (e.g. 'adding' matches 'adding_T50' and 'adding_T200', not 'adding2')."""
  out = {}
  for r in runs:
    group = _group(r)
    if group == prefix or group.startswith(prefix + '_'):
      out.setdefault(group, {}).setdefault(r['model'], []).append(r)
  return dict(sorted(out.items()))


def _mean(members: list[dict[str, Any]], metric: str) -> float:
  return float(np.mean([r['test'][metric] for r in members]))


def _runs_text(members: list[dict[str, Any]]) -> str:
  return ', '.join(r['workdir'] for r in members)


def params_grow_with_steps(runs, structure, root) -> Verdict:
  claim = "An RNN's parameter count grows exponentially with the number of time steps."
  rows = [r for r in structure if r['model'] in ('rnn', 'lstm', 'gru')]
  if not rows:
    return Verdict('2.3.3', claim, NOT_MEASURED, 'no structure rows')
  by_model = {}
  for r in rows:
    by_model.setdefault(r['model'], {})[r['length']] = r['backbone_params']
  evidence = '; '.join(f'{m}: ' + ', '.join(f'T={t}: {p:,}' for t, p in sorted(v.items()))
                       for m, v in sorted(by_model.items()))
  if all(len(v) < 2 for v in by_model.values()):  # one length cannot show growth either way
    return Verdict('2.3.3', claim, NOT_MEASURED,
                   f'backbone parameters at one sequence length only: {evidence}; growth '
                   'needs structure rows at two lengths or more')
  grows = [m for m, v in by_model.items() if len(set(v.values())) > 1]
  if grows:
    return Verdict('2.3.3', claim, SUPPORTED,
                   f'backbone parameters by sequence length: {evidence}. They change with T '
                   f'for {", ".join(sorted(grows))}.')
  return Verdict('2.3.3', claim, REFUTED,
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
  tasks = (('adding', 'mse', lambda v: v < 0.05), ('copy_memory', 'recall_accuracy',
                                                    lambda v: v > 0.5))
  parts, remembers, measured = [], False, False
  for prefix, metric, solved in tasks:
    for group, members in _groups(runs, prefix).items():
      measured |= 'rnn' in members
      for model in ('rnn', 'lstm', 'gru', 'tcn'):
        if model in members:
          value = _mean(members[model], metric)
          seeds = f' (mean of {len(members[model])})' if len(members[model]) > 1 else ''
          parts.append(f'{group} ({_runs_text(members[model])}): {model} test {metric} '
                       f'{value:.4g}{seeds}')
          if model == 'rnn' and solved(value):
            remembers = True
  if not measured:
    return Verdict('2.2', claim, NOT_MEASURED, 'no adding-problem or copy-memory run of the rnn')
  return Verdict('2.2', claim, REFUTED if remembers else DEPENDS,
                 '; '.join(parts) + '. Predicting 1 on the adding problem gives MSE 0.167 and '
                 'guessing copy-memory digits 0.125; any result well past those (adding MSE '
                 'under 0.05, recall over 0.5) needs memory of steps far before the previous '
                 'one.' + ('' if remembers else ' The rnn got past neither here, which fits the '
                           'claim at these lengths without proving it.'))


CONV, RECURRENT = ('cnn', 'cnn3d', 'tcn'), ('rnn', 'lstm', 'gru')  # cnn_lstm etc. are both


def steps_to_converge(records: list[dict[str, Any]]) -> float:
  """The first logged step whose train loss is 90 % of the way from the first logged loss down
  to the last; inf when the loss did not go down at all (a diverged run converged never)."""
  losses = np.array([m['loss'] for m in records])
  if not losses[-1] < losses[0]:
    return float('inf')
  target = losses[-1] + 0.1 * (losses[0] - losses[-1])
  return float(next(m['step'] for m in records if m['loss'] <= target))


def rnns_converge_with_difficulty(runs, structure, root) -> Verdict:
  claim = 'RNNs converge with difficulty (compared with CNNs).'
  from comparenets.metric_writers import read_metrics  # pylint: disable=g-import-not-at-top
  lines, winners = [], []
  for group, members in _groups_all(runs).items():
    steps = {}
    for model, members_of in members.items():
      per_seed = []
      for r in members_of:
        records = [m for m in read_metrics(os.path.join(root, r['workdir']))
                   if m['split'] == 'train']
        if len(records) >= 2:
          per_seed.append(steps_to_converge(records))
      if per_seed:
        steps[model] = float(np.median(per_seed))
    if len(steps) < 2:
      continue
    show = lambda s: 'never' if s == float('inf') else f'{s:g}'
    lines.append(f'{group}: steps to 90 % of the loss drop ' +
                 ', '.join(f'{m} {show(s)}' for m, s in sorted(steps.items(),
                                                               key=lambda kv: kv[1])))
    conv = min((s for m, s in steps.items() if m in CONV), default=None)
    rec = min((s for m, s in steps.items() if m in RECURRENT), default=None)
    if conv is not None and rec is not None and conv != rec:
      winners.append('conv' if conv < rec else 'recurrent')
  if not lines:
    return Verdict('2.3.1', claim, NOT_MEASURED, 'no learning curves')
  evidence = '; '.join(lines)
  if not winners:
    return Verdict('2.3.1', claim, NOT_MEASURED,
                   evidence + '. No task has a convolutional and a recurrent run that differ.')
  tally = (f'. The fastest convolutional model converged first in {winners.count("conv")} of '
           f'{len(winners)} tasks')
  if all(w == 'conv' for w in winners):
    return Verdict('2.3.1', claim, SUPPORTED, evidence + tally + '.')
  if all(w == 'recurrent' for w in winners):
    return Verdict('2.3.1', claim, REFUTED, evidence + tally + '.')
  return Verdict('2.3.1', claim, DEPENDS, evidence + tally + ': which family converges first '
                 'changes with the task; see the learning curves per task.')


def _groups_all(runs) -> dict[str, dict[str, list[dict[str, Any]]]]:
  out = {}
  for r in runs:
    out.setdefault(_group(r), {}).setdefault(r['model'], []).append(r)
  return dict(sorted(out.items()))


def achieved_flops(row: dict[str, Any]) -> float:
  """A structure row's achieved training FLOP/s (older rows lack the field: from its parts)."""
  if 'achieved_flops_per_s' in row:
    return float(row['achieved_flops_per_s'])
  return row['flops_train_per_example'] * row['batch'] / row['train_step_s']


def rnns_train_slower(runs, structure, root, peak: dict[str, Any] | None = None) -> Verdict:
  """``peak``: a matmul peak measured when the report is built (`bench.matmul_peak`'s record,
  its 'gflops', 'n' and where it ran in 'device'); with it, each model's achieved FLOP/s at the
  longest T is stated as a fraction of that peak."""
  claim = 'RNNs train slower and cannot use GPUs/TPUs fully; CNNs train faster.'
  rows = {(r['model'], r['length']): r for r in structure}
  lengths = sorted({t for (m, t) in rows})
  lines, tcn_first = [], []
  for t in lengths:
    rates = {m: rows[(m, t)]['time_steps_per_s'] for m in ('tcn', 'rnn', 'lstm', 'gru')
             if (m, t) in rows}
    if rates:
      lines.append(f'T={t}: ' + ', '.join(f'{m} {v:.3g}' for m, v in rates.items()))
      recurrent = [v for m, v in rates.items() if m in RECURRENT]
      if 'tcn' in rates and recurrent:
        tcn_first.append(rates['tcn'] > max(recurrent))
  if not lines:
    return Verdict('2.3.2', claim, NOT_MEASURED, 'no structure rows')
  faster = (f' The TCN is faster than every recurrent model at {sum(tcn_first)} of '
            f'{len(tcn_first)} lengths.' if tcn_first else '')
  device = (peak or {}).get('device', 'cpu')
  use = ''
  if peak:
    longest = lengths[-1]
    fractions = {m: achieved_flops(rows[(m, longest)]) / (peak['gflops'] * 1e9)
                 for m in ('tcn', 'rnn', 'lstm', 'gru') if (m, longest) in rows}
    use = (f" Use of the hardware at the longest T={longest}: achieved training FLOP/s as a "
           f"fraction of a float32 {peak['n']}x{peak['n']} matmul peak of "
           f"{peak['gflops']:.4g} GFLOP/s measured on the same machine ({device}) when the "
           'report was built: ' + ', '.join(f'{m} {f:.1%}' for m, f in fractions.items()) + '.')
    recurrent = [f for m, f in fractions.items() if m in RECURRENT]
    if 'tcn' in fractions and recurrent:
      use += (' The TCN uses more of it than every recurrent model.'
              if fractions['tcn'] > max(recurrent) else
              ' The TCN does not use more of it than every recurrent model.')
  where = ('Measured on the CPU only: the GPU/TPU half of the claim needs the accelerator '
           'benchmarks, which this report does not have yet.' if device.lower().startswith('cpu')
           else f'Measured on {device}.')
  return Verdict('2.3.2', claim, DEPENDS,
                 f'training time steps per second on this machine ({device}), TCN vs '
                 'recurrent: ' + '; '.join(lines) + '.' + faster + use + ' ' + where)


def cnn_fewer_params(runs, structure, root) -> Verdict:
  claim = 'A CNN has fewer parameters than an RNN and so saves memory.'
  parts = []
  for group, members in _groups_all(runs).items():
    if 'cnn' not in members or not any(m in members for m in RECURRENT):
      continue
    parts.append(f'{group}: ' + ', '.join(
        f"{m} {rs[0]['params']['total']:,} (test {rs[0]['target_metric']} "
        f"{_mean(rs, rs[0]['target_metric']):.3f})" for m, rs in members.items()))
  if not parts:
    return Verdict('2.3.3', claim, NOT_MEASURED, 'no task with runs of the cnn and an rnn')
  return Verdict('2.3.3', claim, DEPENDS,
                 f'parameters as configured: {"; ".join(parts)}. Parameter counts follow the '
                 'chosen widths; neither family needs more parameters by nature.')


def applies_at(name: str, kwargs: dict[str, Any], built_for: int,
               sizes: tuple[int, ...]) -> dict[int, str]:
  """Builds ``name`` (with a 10-way dense head) for inputs of side/length ``built_for`` and
  applies those parameters to each of ``sizes``: {size: 'ok' or the error's type}. Shapes only
  (`jax.eval_shape`): nothing is compiled or run."""
  import jax  # pylint: disable=g-import-not-at-top
  from comparenets.analysis import structure  # pylint: disable=g-import-not-at-top
  model = structure.build(name, kwargs)
  shape = lambda n: jax.ShapeDtypeStruct(structure.example_input(name, n, 1).shape, 'float32')
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), shape(built_for))
  out = {}
  for size in sizes:
    try:
      logits = jax.eval_shape(model.apply, variables, shape(size))
      out[size] = 'ok' if logits.shape == (1, 10) else f'output {logits.shape}'
    except Exception as e:  # pylint: disable=broad-except  # any refusal is the measurement
      out[size] = type(e).__name__
  return out


def fixed_size_verdict(flatten: dict[int, str], pooled: dict[int, str],
                       rnn: dict[int, str], built_for: int) -> tuple[str, str]:
  """The verdict and evidence of `cnn_needs_fixed_size`, from `applies_at`'s answers."""
  show = lambda d: ', '.join(f'{n}: {v}' for n, v in sorted(d.items()))
  evidence = (f'parameters built for {built_for}, applied to other sizes (shapes only). '
              f"CNN, global_pool='flatten' + dense head: {show(flatten)}; CNN, global_pool="
              f"'avg': {show(pooled)}; rnn over T steps: {show(rnn)}.")
  ok = lambda d: all(v == 'ok' for v in d.values())
  refuses = lambda d: all(v != 'ok' for v in d.values())
  if ok(flatten) and ok(pooled):
    return REFUTED, evidence + ' Both CNN heads take every size.'
  if refuses(flatten) and refuses(pooled):
    return SUPPORTED, evidence + ' Neither CNN head takes another size.'
  if refuses(flatten) and ok(pooled):
    return DEPENDS, evidence + (' The fixed size comes from flattening the last feature map '
                                'into a dense layer, not from the convolutions: a global '
                                'average pool takes any size (above the pooling minimum). '
                                + ('The rnn reads any sequence length.' if ok(rnn) else ''))
  return DEPENDS, evidence


def cnn_needs_fixed_size(runs, structure, root) -> Verdict:
  claim = 'A CNN takes input of one fixed size (height, width and channels).'
  built, sizes = 8, (12, 16)
  cnn = dict(widths=(8, 16))
  verdict, evidence = fixed_size_verdict(
      applies_at('cnn', dict(cnn, global_pool='flatten'), built, sizes),
      applies_at('cnn', dict(cnn, global_pool='avg'), built, sizes),
      applies_at('rnn', dict(hidden=16), built, sizes + (100,)), built)
  return Verdict('3.1', claim, verdict, evidence)


SHIFT_PIXELS, RESCALED_SIZE = 1, 6
TRANSFORMS = (('shifted', f'shifted {SHIFT_PIXELS} px'),
              ('rescaled', f'shrunk to {RESCALED_SIZE}x{RESCALED_SIZE}'))


def invariance_verdict(acc: dict[str, dict[str, float]]) -> tuple[str, str]:
  """The verdict and evidence of `cnn_size_position_invariant` from test accuracies
  ``{model: {'original', 'shifted', 'rescaled'}}``. Per transform, the CNN "keeps its accuracy
  better" when its drop (original - transformed) is smaller than every other model's;
  'supported' when it does under both transforms, 'refuted' under neither, else 'depends'."""
  others = sorted((m for m in acc if m != 'cnn'), key=lambda m: (
      (CONV + RECURRENT).index(m) if m in CONV + RECURRENT else 99, m))
  if 'cnn' not in acc or not others:
    return NOT_MEASURED, 'needs a digits run of the cnn and of another family'
  drop = {m: {t: a['original'] - a[t] for t, _ in TRANSFORMS} for m, a in acc.items()}
  show = lambda m: (f"{m} {acc[m]['original']:.3f}, " + ', '.join(
      f'{name} {acc[m][t]:.3f} (drop {drop[m][t]:+.3f})' for t, name in TRANSFORMS))
  lines, best = [], []
  for t, name in TRANSFORMS:
    rival = min(others, key=lambda m: drop[m][t])
    best.append(drop['cnn'][t] < drop[rival][t])
    lines.append(f"{name}: the cnn's drop {drop['cnn'][t]:.3f} is "
                 f"{'smaller' if best[-1] else 'not smaller'} than every other model's "
                 f'(smallest other: {rival} {drop[rival][t]:.3f})')
  evidence = ('test accuracy, original / transformed: ' + '; '.join(show(m) for m in
                                                                     ['cnn'] + others) +
              '. ' + '; '.join(lines) + '.')
  if max(drop['cnn'].values()) > 0.05:
    evidence += (" An invariant model would keep its accuracy; the cnn's drops up to "
                 f"{max(drop['cnn'].values()):.3f} (more than 0.05) say it is not invariant "
                 'here, whichever family loses least.')
  if all(best):
    return SUPPORTED, evidence
  if not any(best):
    return REFUTED, evidence
  return DEPENDS, evidence


def cnn_size_position_invariant(runs, structure, root) -> Verdict:
  claim = ('A CNN is invariant to the size (and position) of what it sees, more than '
           'sequence models.')
  digits = [r for r in runs if _group(r) == 'digits' and r['model'] in CONV + RECURRENT]
  how = (f'Finished digits runs (their final checkpoints restored) on their test split: '
         f'as they are, shifted {SHIFT_PIXELS} pixel up/down/left/right with zero fill (the '
         f'four averaged), and shrunk to {RESCALED_SIZE}x{RESCALED_SIZE} by area averaging, '
         'centred on the 8x8 canvas. ')
  if not any(r['model'] == 'cnn' for r in digits) or len({r['model'] for r in digits}) < 2:
    return Verdict('2.1', claim, NOT_MEASURED,
                   'needs finished digits runs of the cnn and of another family')
  from comparenets.analysis import invariance  # pylint: disable=g-import-not-at-top
  acc, skipped = invariance.measure(root, digits, SHIFT_PIXELS, RESCALED_SIZE)
  verdict, evidence = invariance_verdict(acc)
  runs_text = '; '.join(f"{m}: {', '.join(a['runs'])}" for m, a in acc.items())
  extra = f' Left out (no checkpoint restored): {", ".join(skipped)}.' if skipped else ''
  return Verdict('2.1', claim, verdict, how + evidence + f' Runs: {runs_text}.' + extra)


# -- 3.1: what a CNN reads ------------------------------------------------------------------------

CNN_INPUT_KINDS = ('grayscale images', 'RGB images', 'single-channel multi-frame input',
                   'multi-channel multi-frame input')
SINGLE_FRAME = 'one frame of each clip (control)'


def _chance(task: dict[str, Any]) -> float:
  """Accuracy of guessing, for the classification tasks a CNN reads."""
  return 1.0 / task['directions'] if task.get('name') == 'moving_digits' else 0.1


def _learned(accuracy: float, chance: float) -> bool:
  """Read, not guessed: at least halfway from chance to perfect."""
  return accuracy >= chance + 0.5 * (1.0 - chance)


def cnn_input_kind(task: dict[str, Any]) -> str | None:
  """Which of the article's input kinds a CNN run of this task (``results['task']``) read."""
  name, reading = task.get('name'), task.get('reading', 'auto')
  if name == 'digits' and reading in ('auto', 'image'):
    return CNN_INPUT_KINDS[0]
  if name == 'tfds_images' and reading in ('auto', 'image'):
    return CNN_INPUT_KINDS[1] if task.get('dataset') == 'cifar10' else CNN_INPUT_KINDS[0]
  if name == 'moving_digits':
    if reading in ('auto', 'channels'):  # the frames stacked as the channels of one image
      return CNN_INPUT_KINDS[2] if task.get('channels', 1) == 1 else CNN_INPUT_KINDS[3]
    if reading == 'frame':
      return SINGLE_FRAME
  return None


def cnn_reads_input_kinds(runs, structure, root) -> Verdict:
  claim = ('A CNN reads grayscale images, RGB images, and single- and multi-channel '
           'multi-frame input.')
  found: dict[str, list[tuple[dict[str, Any], float, float]]] = {}
  for r in runs:
    if r['model'] != 'cnn' or r.get('target_metric') != 'accuracy':
      continue
    kind = cnn_input_kind(r.get('task', {}))
    if kind is not None:
      found.setdefault(kind, []).append((r, r['test']['accuracy'], _chance(r['task'])))
  measured = [k for k in CNN_INPUT_KINDS if k in found]
  if not measured:
    return Verdict('3.1', claim, NOT_MEASURED, 'no classification run of the cnn on digits, '
                   'TFDS images or moving digits')
  parts = []
  for kind in measured + ([SINGLE_FRAME] if SINGLE_FRAME in found else []):
    items = found[kind]
    parts.append(f'{kind}: ' + ', '.join(f"{r['workdir']} test accuracy {acc:.3f} (chance "
                                        f"{chance:.3f})" for r, acc, chance in items))
  read = {k: all(_learned(acc, chance) for _, acc, chance in found[k]) for k in measured}
  evidence = '; '.join(parts) + '.'
  if SINGLE_FRAME in found:
    evidence += (' The direction of motion is in no single frame, so the single-frame control '
                 'is the chance level the stacked frames must beat.')
  missing = [k for k in CNN_INPUT_KINDS if k not in found]
  if missing:
    evidence += f' Not in this suite: {", ".join(missing)}.'
  if all(read.values()):
    return Verdict('3.1', claim, SUPPORTED, 'Read = test accuracy at least halfway from chance '
                   'to 1. ' + evidence)
  failed = [k for k, ok in read.items() if not ok]
  return Verdict('3.1', claim, DEPENDS, f'Not read (below halfway from chance to 1): '
                 f'{", ".join(failed)}. ' + evidence)


# -- 4.1: what a CNN is used for ------------------------------------------------------------------

MIN_MAP50 = 0.5  # a detector "works" when at least half of its mean AP at IoU 0.5 is there


def _scenario(r: dict[str, Any]) -> tuple[str, bool, str] | None:
  """(scenario, works, how it was judged) of one CNN run, or None for other tasks."""
  task, test = r.get('task', {}), r['test']
  name = task.get('name')
  kind = cnn_input_kind(task)
  if kind in CNN_INPUT_KINDS[:2]:
    chance = _chance(task)
    return ('image classification', _learned(test['accuracy'], chance),
            f"test accuracy {test['accuracy']:.3f} (chance {chance:.3f})")
  if name == 'detection':
    return ('object detection', test['mAP50'] >= MIN_MAP50,
            f"test mAP@0.5 {test['mAP50']:.3f} (works: >= {MIN_MAP50})")
  if name == 'super_resolution':
    return ('image super-resolution', test['psnr_gain'] > 0,
            f"x{task.get('scale')} test PSNR {test['psnr']:.2f} dB vs bicubic "
            f"{test['bicubic_psnr']:.2f} dB ({test['psnr_gain']:+.2f} dB)")
  if name == 'edges':
    base = r.get('baselines', {})
    vs = ', '.join(f"{k} {v['ods_f']:.3f}" for k, v in base.items())
    sobel = base.get('sobel', {}).get('ods_f', float('inf'))
    return ('edge detection', test['ods_f'] > sobel,
            f"test ODS F {test['ods_f']:.3f} (works: above Sobel; baselines by the same "
            f"evaluation: {vs or 'none recorded'})")
  return None


def cnn_vision_scenarios(runs, structure, root) -> Verdict:
  claim = ('CNNs are used for image classification, object detection, image super-resolution '
           'and edge detection.')
  scenarios = ('image classification', 'object detection', 'image super-resolution',
               'edge detection')
  found: dict[str, list[tuple[str, bool, str]]] = {}
  for r in runs:
    if r['model'] == 'cnn':
      judged = _scenario(r)
      if judged is not None:
        found.setdefault(judged[0], []).append((r['workdir'], judged[1], judged[2]))
  if not found:
    return Verdict('4.1', claim, NOT_MEASURED, 'no cnn run of a classification, detection, '
                   'super-resolution or edge-detection task')
  evidence = '; '.join(f'{s}: ' + ', '.join(f'{w} {how}' for w, _, how in found[s])
                       for s in scenarios if s in found) + '.'
  missing = [s for s in scenarios if s not in found]
  if missing:
    evidence += f' Not in this suite: {", ".join(missing)}.'
  failed = [s for s in found if not all(ok for _, ok, _ in found[s])]
  if failed:
    return Verdict('4.1', claim, DEPENDS, f'Did not work here: {", ".join(failed)}. ' + evidence)
  return Verdict('4.1', claim, SUPPORTED, evidence)


CHECKS: tuple[Callable[..., Verdict], ...] = (
    params_grow_with_steps, gru_only_update_gate, lstm_gates, simple_rnn_previous_step_only,
    rnns_converge_with_difficulty, rnns_train_slower, cnn_fewer_params, cnn_needs_fixed_size,
    cnn_size_position_invariant, cnn_reads_input_kinds, cnn_vision_scenarios)


def audit(runs: list[dict[str, Any]], structure: list[dict[str, Any]], root: str,
          peak: dict[str, Any] | None = None) -> list[Verdict]:
  """Every check's verdict; ``peak`` (a measured matmul peak) goes to the checks that take it."""
  return [check(runs, structure, root, **({'peak': peak} if 'peak' in
                                          inspect.signature(check).parameters else {}))
          for check in CHECKS]


def table(verdicts: list[Verdict]) -> str:
  lines = ['| section | claim (restated) | verdict | evidence |', '|---|---|---|---|']
  lines += [f'| {v.section} | {v.claim} | **{v.verdict}** | {v.evidence} |' for v in verdicts]
  return '\n'.join(lines)
