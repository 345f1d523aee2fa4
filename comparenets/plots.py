"""Plots of a run: learning curves and the task's own figures of the trained model's predictions.

At the end of training, process 0 calls `write_run_plots`, which writes into the run directory

* ``plots/learning_curves.png``: training loss and the task's target metric on validation (and
  test) against the step, from ``metrics.jsonl``;
* one ``plots/<name>.png`` per figure that the task's ``figures(predict)`` hook returns
  (`comparenets.tasks.base.Task.figures`): a confusion matrix and test images with their
  predicted and true labels for image classification, a confusion matrix for sentiment,
  forecasts against the truth and the linear-AR baseline for forecasting, predicted against
  true sums for the adding problem, recalled digits against the truth for copy memory;

and puts the task's figures into the run's TensorBoard event files as images (tag
``plots/<name>``), so ``tensorboard --logdir WORKDIR`` shows them in its Images tab.

A new task plugs in with one method: ``figures(self, predict) -> {name: Figure}``, where
``predict(arrays)`` (`comparenets.tasks.make_predict`) returns the model's outputs for a dict of
input arrays (any number of examples; batching, padding and the input adapter are done for it).
The drawing helpers that build the usual figures are in `comparenets.figures`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from absl import logging

from comparenets import tasks
from comparenets import workdir as workdirs
from comparenets.figures import new_figure, png_bytes, render
from comparenets.metric_writers import read_metrics

if TYPE_CHECKING:
  from matplotlib.figure import Figure

PLOTS_DIR = 'plots'


# ---------------------------------------------------------------------------------------------
# Learning curves


def _records(workdir: str) -> list[dict[str, Any]]:
  latest = {}
  for record in read_metrics(workdir):  # a resumed run repeats steps: the last record counts
    latest[(record['split'], record['step'])] = record
  return sorted(latest.values(), key=lambda r: r['step'])


def _target_metric(workdir: str) -> str | None:
  path = os.path.join(workdir, 'results.json')
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      return json.load(f).get('target_metric')
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      name = (json.load(f).get('task') or {}).get('name')
    if name in tasks.REGISTRY:
      return tasks.REGISTRY[name].target_metric
  return None


def learning_curves(runs: str | Sequence[str] | Mapping[str, str],
                    metric: str | None = None) -> 'Figure':
  """Training loss (left) and the target metric on validation and test (right) by step.

  ``runs``: one run directory, several, or ``{label: run directory}``. ``metric`` defaults to
  the task's target metric (from results.json, or the task named in config.json).
  """
  if isinstance(runs, str):
    runs = {os.path.basename(os.path.normpath(runs)): runs}
  elif not isinstance(runs, Mapping):
    runs = {os.path.basename(os.path.normpath(r)): r for r in runs}
  fig, axes = new_figure(9.5, 3.4, 1, 2)
  loss_ax, metric_ax = axes[0]
  metric_names, positive = set(), True
  for i, (label, workdir) in enumerate(runs.items()):
    records = _records(workdir)
    name = metric or _target_metric(workdir) or 'loss'
    metric_names.add(name)
    color = f'C{i % 10}'
    train = [r for r in records if r['split'] == 'train' and 'loss' in r]
    if train:
      loss = [r['loss'] for r in train]
      positive &= min(loss) > 0
      loss_ax.plot([r['step'] for r in train], loss, color=color, marker='.', label=label)
    for split, style in (('validation', dict(marker='o', linestyle='-')),
                         ('test', dict(marker='*', markersize=11, linestyle='none'))):
      points = [r for r in records if r['split'] == split and name in r]
      if points:
        metric_ax.plot([r['step'] for r in points], [r[name] for r in points], color=color,
                       label=f'{label} {split}', **style)
  if positive:
    loss_ax.set_yscale('log')
  loss_ax.set_xlabel('step')
  loss_ax.set_ylabel('train loss')
  loss_ax.set_title('training loss', fontsize=10)
  metric_ax.set_xlabel('step')
  metric_ax.set_ylabel(', '.join(sorted(metric_names)))
  metric_ax.set_title('validation (line) and test (star)', fontsize=10)
  for ax in (loss_ax, metric_ax):
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return fig





def write_figures(workdir: str, figures: Mapping[str, 'Figure'], *, writer=None,
                  step: int = 0) -> list[str]:
  """Saves each figure as ``workdir/plots/<name>.png`` and, given a `MetricWriter`, as the
  TensorBoard image ``plots/<name>``; returns the paths relative to ``workdir``."""
  written = []
  for name, fig in figures.items():
    rgba = render(fig)
    path = f'{PLOTS_DIR}/{name}.png'
    target = workdirs.join(workdir, PLOTS_DIR, f'{name}.png')
    target.parent.mkdir(parents=True, exist_ok=True)
    workdirs.write_bytes(target, png_bytes(rgba))  # whole, locally and on a bucket
    if writer is not None:
      writer.write_image(f'{PLOTS_DIR}/{name}', rgba[..., :3], step)
    written.append(path)
  return written


def write_run_plots(workdir: str, task=None, model=None, input_kind: str | None = None,
                    variables=None, *, writer=None, step: int = 0,
                    metric: str | None = None, apply=None) -> list[str]:
  """A finished run's plots: learning curves, plus the task's figures of the trained model
  (when ``task``, ``model``, ``input_kind`` and ``variables`` are given; also sent to
  TensorBoard through ``writer``). ``apply``: a `tasks.make_apply` to reuse (a sweep's
  members share one compilation). A figure that fails is logged and skipped, so that a
  plotting bug never costs a finished run its results. Returns the written paths."""
  written = []
  try:
    written += write_figures(workdir, {'learning_curves': learning_curves(workdir, metric)})
  except Exception as e:  # pylint: disable=broad-except
    logging.exception('the learning-curve plot failed: %s', e)
  if task is None or not hasattr(task, 'figures'):
    return written
  try:
    figures = task.figures(tasks.make_predict(task, model, input_kind, variables,
                                              apply=apply))
    written += write_figures(workdir, figures, writer=writer, step=step)
  except Exception as e:  # pylint: disable=broad-except
    logging.exception('the figures of task %r failed: %s', getattr(task, 'name', task), e)
  if writer is not None:
    writer.flush()
  logging.info('plots in %s: %s', workdir, ', '.join(written) or 'none')
  return written
