"""The comparison report of a suite's workdir: ``REPORT.md`` plus PNG plots beside it.

Every number in the report comes from a run directory's ``results.json`` or ``metrics.jsonl``
(the tables name the run directory), or from `comparenets.analysis.structure` measured when the
report is written (``structure.jsonl``).

A results row is one (task setting, model) at its chosen learning rate
(`comparenets.analysis.selection`: the best mean validation metric over seeds): the test
metric's mean, sample standard deviation and 95 % Student-t interval over its seeds
(`comparenets.metrics.intervals`), and for accuracies, each run's 95 % Wilson interval on its
test split's size. Learning curves are the mean over seeds with a min-to-max band.

The workdir may be a bucket (``gs://bucket/suite``): every file is read and written through
`etils.epath` (`comparenets.workdir`), the plots as PNG bytes.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
from typing import Any, Sequence

import jax
import numpy as np

from comparenets import models
from comparenets import figures
from comparenets import tasks
from comparenets import workdir as workdirs
from comparenets.analysis import bench
from comparenets.analysis import claims
from comparenets.analysis import published
from comparenets.analysis import selection
from comparenets.analysis import structure
from comparenets.errors import ConfigError
from comparenets.metric_writers import read_metrics, training_seconds
from comparenets.metrics import intervals
from comparenets.summary import load_results


def _save(fig, path: str) -> None:
  fig.tight_layout()
  # a detached Figure renders with Agg: no pyplot, no backend switch. Rendered to bytes, then
  # written whole (`workdirs.write_bytes`): matplotlib writes local files only, and two shards
  # writing the same report at once (`compare --report_when_all_done`) must not tear a PNG.
  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=110, format='png')
  workdirs.write_bytes(workdirs.join(path), buffer.getvalue())


def group_runs(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
  """Runs by task setting: the first component of the run's directory (e.g. 'adding_T50')."""
  groups = collections.defaultdict(list)
  for run in runs:
    groups[run['workdir'].split(os.sep)[0]].append(run)
  order = lambda r: (models.rank(r['model']), r['workdir'])  # the registry's display order
  return {k: sorted(v, key=order) for k, v in sorted(groups.items())}


SEED_SUFFIX = selection.SEED_PART  # a run directory's '/seedN' ending


def run_seed(run: dict[str, Any], root: str | None = None) -> int | None:
  """A run's seed: its config.json's, else a ``/seedN`` ending of its directory, else None."""
  if root is not None:
    text = workdirs.read_text(workdirs.join(root, run['workdir'], 'config.json'))
    if text is not None:
      seed = json.loads(text).get('seed')
      if seed is not None:
        return int(seed)
  match = SEED_SUFFIX.search(run['workdir'].replace(os.sep, '/'))
  return int(match.group(1)) if match else None


def by_setting(group: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
  """A task setting's runs by configuration: the run directory without a ``/seedN`` ending,
  so the seeds of one (task, model) fall together."""
  out = collections.OrderedDict()
  for r in group:
    out.setdefault(SEED_SUFFIX.sub('', r['workdir'].replace(os.sep, '/')), []).append(r)
  return out


def mean_std(values: Sequence[float]) -> str:
  """'mean' of one value; 'mean ± std' (sample standard deviation) of several."""
  values = np.asarray(values, dtype=float)
  if len(values) == 1:
    return f'{values[0]:.4f}'
  return f'{values.mean():.4f} ± {values.std(ddof=1):.4f}'


# Metrics that are the mean of a per-example 0/1 (correct or not) over the test split, so that
# a run's value is a binomial proportion with a Wilson interval. copy memory's recall_accuracy
# is a per-example fraction of digits, not one trial per example, and is left to the t interval.
PROPORTIONS = ('accuracy',)


def t_interval(values: Sequence[float]) -> str:
  """'[low, high]': the 95 % Student-t interval of the mean (`intervals.mean_interval`); one
  value has no spread to make one from: '- (one seed)'."""
  iv = intervals.mean_interval(values)
  return '- (one seed)' if iv.low is None else f'[{iv.low:.4f}, {iv.high:.4f}]'


def wilson_per_run(members: list[dict[str, Any]], metric: str) -> str:
  """Each run's 95 % Wilson interval of its test ``metric`` on its test split's size
  (results.json 'examples'; runs written before it was recorded say so)."""
  cells = []
  for r in members:
    n = (r.get('examples') or {}).get('test')
    if not n:
      cells.append('test size not recorded')
      continue
    low, high = intervals.wilson(round(r['test'][metric] * n), n)
    cells.append(f'[{low:.3f}, {high:.3f}]')
  if len(set(cells)) == 1 and cells[0] == 'test size not recorded':
    return cells[0]
  return '; '.join(cells)


def runs_cell(members: list[dict[str, Any]], root: str | None = None) -> str:
  """The run directories with their seeds: ``a/seed{0,1,2}`` (the directories a/seed0,
  a/seed1, a/seed2) when every run is ``a/seed<N>`` of seed N, else each directory with its
  seed in brackets."""
  seeds = [run_seed(r, root) for r in members]
  paths = [r['workdir'].replace(os.sep, '/') for r in members]
  common = SEED_SUFFIX.sub('', paths[0])
  if len(members) > 1 and all(p == f'{common}/seed{s}' for p, s in zip(paths, seeds)):
    return f"`{common}/seed{{{','.join(map(str, seeds))}}}`"
  return ', '.join(f'`{r["workdir"]}`' + ('' if s is None else f' ({s})')
                   for r, s in zip(members, seeds))


def selection_notes(choices: list[selection.Choice]) -> list[str]:
  """What was swept and what was chosen, one line per swept (task setting, model), and the
  learning rate of the others on one line."""
  lines, fixed = [], []
  for c in choices:
    if not c.was_swept:
      if c.chosen is not None:
        fixed.append(f'{c.model} {c.chosen:g}')
      continue
    show = lambda rate: 'unknown' if rate is None else f'{rate:g}'
    swept = ', '.join(f'{show(rate)} ({mean:.4f}, {n} seed{"s" * (n != 1)})'
                      for rate, (mean, n) in c.swept.items())
    lines.append(f"Learning rate of {c.model} (`{c.base}`), chosen on validation, never on test: "
                 f'swept {swept} (mean validation {c.metric}, '
                 f'{"higher" if c.higher_is_better else "lower"} is better); chosen '
                 f'{show(c.chosen)}, and the row shows the runs at that rate only.')
  if fixed:
    lines.append(f'Learning rate, one each (not swept): {", ".join(fixed)}.')
  return lines


def results_table(group: list[dict[str, Any]], root: str | None = None) -> str:
  """One row per (task setting, model) at its chosen learning rate (`selection.choose`): the
  mean ± standard deviation over its seeds, the test metric's 95 % t interval, for accuracies
  each run's Wilson interval, with n and every seed's run directory (its seed read from
  config.json under ``root``). Under the table: the swept learning rates and the chosen ones."""
  group, choices = selection.choose(group, root)
  metric = group[0]['target_metric']
  proportion = metric in PROPORTIONS
  head = ['model', 'runs (seed)', 'n', 'params', 'steps', 'train s', f'validation {metric}',
          f'test {metric}', 'test 95% t interval']
  if proportion:
    head.append('test Wilson 95% per run')
  extra = any('beats_baselines_everywhere' in r for r in group)
  if extra:
    # the task's own baselines (forecasting: persistence and linear AR at every horizon step;
    # edges: Sobel and Canny), scored by the same evaluation
    head.append('beats every baseline')
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for members in by_setting(group).values():
    first = members[0]
    params = sorted({r['params']['total'] for r in members})
    steps = sorted({r['steps'] for r in members})
    test = [r['test'][metric] for r in members]
    row = [first['model'], runs_cell(members, root), str(len(members)),
           ' / '.join(f'{p:,}' for p in params), ' / '.join(map(str, steps)),
           f"{np.mean([r['train_time_s'] for r in members]):.1f}",
           mean_std([r['validation'][metric] for r in members]), mean_std(test),
           t_interval(test)]
    if proportion:
      row.append(wilson_per_run(members, metric))
    if extra:
      beats = [r.get('beats_baselines_everywhere') for r in members]
      row.append(str(beats[0]) if len(beats) == 1 else f'{sum(bool(b) for b in beats)}/'
                 f'{len(beats)}')
    lines.append('| ' + ' | '.join(row) + ' |')
  for note in selection_notes(choices):  # each its own paragraph, below the table
    lines += ['', note]
  if extra:
    base = group[0]['baselines']
    for name, values in base.items():
      lines.append(f'\nBaseline {name}, test {metric}: {values[metric]:.4f}')
  return '\n'.join(lines)


def io_table() -> str:
  """Which family reads which task's input, and as what (from the registries, not prose)."""
  names = models.ordered()
  lines = ['| task | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
  for task_name in tasks.names():
    task = tasks.build(task_name)
    cells = []
    for m in names:
      kind = models.input_kind(m)
      try:
        task.check_input_kind(kind, m)
        if task.requires_causal and not getattr(models.build(m), 'causal', False):
          raise ConfigError('not causal')
        reading = getattr(task, 'reading_for', lambda k: k)(kind)
        cells.append(reading if reading != kind else kind)
      except ConfigError:
        cells.append('-')
    lines.append(f'| {task_name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


# The metric-vs-parameters grid: at most this many panels a row, each this many inches at the
# 110 dpi of `_save`: three columns are about 1,250 pixels, the width a Markdown viewer shows.
PANELS_PER_ROW, PANEL_INCHES = 3, (3.8, 3.0)


def plot_metric_vs_params(groups: dict[str, list[dict[str, Any]]], path: str) -> list[str]:
  """Test metric against parameters, one panel per task setting with runs of two models or
  more (one model's point says nothing its table row does not), in a grid of at most
  `PANELS_PER_ROW` columns. Returns the settings drawn; with none, nothing is written."""
  shown = {name: group for name, group in groups.items()
           if len({r['model'] for r in group}) > 1}
  if not shown:
    return []
  cols = min(PANELS_PER_ROW, len(shown))
  rows = math.ceil(len(shown) / cols)
  fig, axes = figures.new_figure(PANEL_INCHES[0] * cols, PANEL_INCHES[1] * rows, rows, cols)
  for ax in axes.flat[len(shown):]:  # the last row's empty places
    ax.set_visible(False)
  for ax, (name, group) in zip(axes.flat, shown.items()):
    metric = group[0]['target_metric']
    for r in group:
      ax.scatter(r['params']['total'], r['test'][metric])
      ax.annotate(r['model'], (r['params']['total'], r['test'][metric]), fontsize=8)
    ax.set_xscale('log')
    # within one decade the log axis labels its minor ticks too: slanted, they do not overlap
    ax.tick_params(axis='x', which='both', labelsize=8, labelrotation=30)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel('parameters')
    ax.set_ylabel(f'test {metric}')
  _save(fig, path)
  return list(shown)


def _train_curve(root: str, run: dict[str, Any]) -> dict[int, tuple[float, float]]:
  """{step: (train loss, training seconds so far)} of a run's metrics.jsonl. A resumed run logs
  some steps twice: the last record of a step counts, and its window's time once."""
  seconds = training_seconds(read_metrics(os.path.join(root, run['workdir'])))
  return {step: (record['loss'], t) for step, (record, t) in seconds.items()}


def plot_learning_curves(group, root: str, path: str):
  """Train loss by step and by training seconds, one line per (model, configuration): the mean
  over its seeds at the steps every seed logged, with a band from the lowest to the highest
  seed (min-max: with three seeds a standard deviation says little that the band does not).
  Returns the figure, written to ``path``."""
  fig, axes = figures.new_figure(9, 3.4, 1, 2)
  by_step, by_time = axes[0]
  for members in by_setting(group).values():
    curves = [c for c in (_train_curve(root, r) for r in members) if c]
    if not curves:
      continue
    steps = sorted(set(curves[0]).intersection(*curves[1:]))
    if not steps:
      continue
    loss = np.array([[c[s][0] for s in steps] for c in curves])  # [seeds, steps]
    seconds = np.array([[c[s][1] for s in steps] for c in curves]).mean(0)
    label = members[0]['model'] + (f' ({len(curves)} seeds)' if len(curves) > 1 else '')
    for ax, x in ((by_step, steps), (by_time, seconds)):
      line, = ax.plot(x, loss.mean(0), marker='.', label=label)
      if len(curves) > 1:
        ax.fill_between(x, loss.min(0), loss.max(0), color=line.get_color(), alpha=0.2,
                        linewidth=0)
  for ax, xlabel in ((by_step, 'step'), (by_time, 'training seconds (mean over seeds)')):
    ax.set_yscale('log')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('train loss')
    if ax.lines:  # runs without logged training (none to draw) leave the legend out
      ax.legend(fontsize=8)
  _save(fig, path)
  return fig


def plot_structure(rows: list[dict[str, Any]], path: str) -> None:
  fig, axes = figures.new_figure(12, 3.4, 1, 3, squeeze=True)
  keys = (('time_steps_per_s', 'time steps / s (train)'),
          ('train_step_temp_bytes', 'train step temporaries (bytes)'),
          ('backbone_params', 'backbone parameters'))
  by_model = collections.defaultdict(list)
  for row in rows:
    by_model[row['model']].append(row)
  for ax, (key, label) in zip(axes, keys):
    for model, items in by_model.items():
      items = sorted(items, key=lambda r: r['length'])
      ax.plot([r['length'] for r in items], [r[key] for r in items], marker='o', label=model)
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xlabel('sequence length T')
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
  _save(fig, path)


def measure_structure(root: str, lengths=(16, 64, 256), batch: int = 32) -> list[dict]:
  """Structure rows of the sequence backbones (`structure.sequence_models`, at their default
  sizes), cached in ``structure.jsonl``."""
  path = workdirs.join(root, 'structure.jsonl')
  text = workdirs.read_text(path)
  if text is not None:
    return [json.loads(l) for l in text.splitlines() if l.strip()]
  rows = [structure.analyze(m, structure.DEFAULT_KWARGS[m], t, batch=batch)
          for m in structure.sequence_models() for t in lengths]
  # the first writer's rows when several reports are written at once (shards that finished
  # together): every writer's report then shows the same timings
  text = workdirs.write_text_once(path, ''.join(json.dumps(r) + '\n' for r in rows))
  return [json.loads(l) for l in text.splitlines() if l.strip()]


def measure_peak(n: int = 1024, repeats: int = 3, min_time: float = 0.2) -> dict[str, Any]:
  """A float32 n x n matmul's FLOP/s on this machine's first device (`bench.matmul_peak`,
  about a second), with the device's name in 'device': the peak that the structure rows'
  achieved FLOP/s are compared with."""
  peak = bench.matmul_peak(n, repeats, min_time)
  backend = jax.default_backend()
  peak['device'] = 'cpu' if backend == 'cpu' else f'{backend} {jax.devices()[0].device_kind}'
  return peak


def cached_peak(root: str) -> dict[str, Any]:
  """`measure_peak` once per workdir, kept in ``root/matmul_peak.json`` beside
  ``structure.jsonl``, so a report rewritten later compares with the same peak as its rows."""
  path = workdirs.join(root, 'matmul_peak.json')
  text = workdirs.read_text(path)
  if text is not None:
    return json.loads(text)
  return json.loads(workdirs.write_text_once(path, json.dumps(measure_peak())))  # as above


def write_report(root: str, structure_lengths: Sequence[int] = (16, 64, 256),
                 peak: dict[str, Any] | None = None) -> str:
  """Writes ``root/REPORT.md`` and its plots for the finished runs below ``root``.

  Structure rows are measured at ``structure_lengths`` (sequence lengths) unless
  ``root/structure.jsonl`` has them already; ``()`` leaves structure out. With structure rows,
  a matmul peak is measured (about a second; once per workdir, `cached_peak`) unless ``peak``
  gives one (`measure_peak`'s 'gflops', 'n' and 'device'). Returns the path.
  """
  runs = load_results(root)
  if not runs:
    raise ConfigError(f'no finished runs (results.json) below {root}; run a suite first')
  chosen = selection.chosen_runs(runs, root)
  shown = group_runs(chosen)  # the figures: each model at its chosen learning rate
  drawn = plot_metric_vs_params(shown, os.path.join(root, 'metric_vs_params.png'))
  parts = ['# comparenets report', '',
           f'{len(runs)} runs below `{root}`. Every number below comes from the named run '
           "directory's results.json / metrics.jsonl, or from structure.jsonl. A results row "
           'is one (task, model) at its learning rate: the mean ± sample standard deviation '
           'over its n seeds, the 95 % Student-t interval of the test mean (none from one '
           "seed; not clipped to the metric's range), and for accuracies each run's 95 % "
           "Wilson interval on its test split's size; each seed's run directory is listed with "
           'its seed (`a/seed{0,1,2}`: a/seed0, '
           'a/seed1 and a/seed2). Where a model was trained at several learning rates, the '
           'one with the best mean validation metric is kept (the test split is never looked '
           'at to choose), and the tables, figures and claims read its runs only; the line '
           'under each table says what was swept and chosen. Learning curves: the mean over '
           'seeds, the band from the lowest to the highest seed.', '',
           '## Results per task', '']
  if drawn:
    alone = [name for name in shown if name not in drawn]
    parts += ['![metric vs parameters](metric_vs_params.png)', '']
    if alone:
      parts += [f'Not in the figure, having runs of one model only (see their tables): '
                f'{", ".join(alone)}.', '']
  for name, group in group_runs(runs).items():  # every run: the tables list the sweeps
    curve = f'learning_curves_{name}.png'
    plot_learning_curves(shown[name], root, os.path.join(root, curve))
    parts += [f'### {name}', '', results_table(group, root), '', f'![learning curves]({curve})', '']
  rows = measure_structure(root, structure_lengths) if structure_lengths else []
  if rows and peak is None:
    peak = cached_peak(root)
  if rows:
    plot_structure(rows, os.path.join(root, 'structure.png'))
    parts += ['## Structure vs sequence length', '',
              f"Matmul peak: {peak['gflops']:.4g} GFLOP/s (float32 {peak['n']}x{peak['n']} "
              f"matmul on {peak['device']}). The last column is each row's achieved training "
              'FLOP/s as a fraction of it. Both were measured when this workdir\'s report was '
              'first built and are kept (structure.jsonl, matmul_peak.json): delete them to '
              'measure again.', '',
              '| model | T | backbone params | forward FLOPs / example | train FLOPs / example '
              '| train-step temporaries (MB) | compile s | time steps / s | achieved GFLOP/s '
              '| of matmul peak |',
              '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
      achieved = claims.achieved_flops(r)
      parts.append(f"| {r['model']} | {r['length']} | {r['backbone_params']:,} | "
                   f"{r['flops_forward_per_example']:.3g} | {r['flops_train_per_example']:.3g} | "
                   f"{r['train_step_temp_bytes'] / 1e6:.2f} | {r['compile_s']:.2f} | "
                   f"{r['time_steps_per_s']:.3g} | {achieved / 1e9:.3g} | "
                   f"{achieved / (peak['gflops'] * 1e9):.1%} |")
    parts += ['', '![structure](structure.png)', '']
  parts += published.section(chosen)
  parts += ['## Claims audit', '',
            f"The claims of {claims.ARTICLE} (the section column is the article's), each "
            'restated in our own words and checked against the measurements above.', '',
            claims.table(claims.audit(runs, rows, root, peak)), '']
  parts += ['## Which family reads which input', '',
            'From the task and model registries: the reading each family gets, or - where the '
            'pair cannot work (the run would stop with a ConfigError).', '', io_table(), '']
  path = os.path.join(root, 'REPORT.md')  # as given: relative, absolute or gs://...
  workdirs.write_text(workdirs.join(path), '\n'.join(parts))
  return path
