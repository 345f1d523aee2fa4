"""The train loop's window of metrics between two host syncs: NaN checks and the summaries it
logs, for a single run and for the stacked members of a sweep (`comparenets.sweep`)."""

from __future__ import annotations

from typing import Any, Mapping

from absl import logging
import numpy as np

from comparenets import parallel as parallels
from comparenets.errors import NonFiniteError


class Window:
  """The device-side metrics of the steps since the last host sync: one entry per dispatch,
  scalars for a single step, ``[k]`` arrays for k scanned steps; for a sweep of members named
  ``members``, a trailing member axis (``[members]``, ``[k, members]``)."""

  def __init__(self, parallel: parallels.Parallel, on_nonfinite: str, first_step: int,
               members: list[str] | None = None):
    self.parallel, self.on_nonfinite, self.members = parallel, on_nonfinite, members
    self.tail = (len(members),) if members else ()
    self.metrics, self.first_step, self.checked = [], first_step, 0
    self.checked_steps = 0
    self.skipped = [0] * len(members or [None])
    self.halted: dict[int, int] = {}  # member -> the step that halted it
    self.last_good_checkpoint: int | None = None

  def add(self, metrics):
    self.metrics.append(metrics)

  def _steps(self, values) -> np.ndarray:
    """Per-entry host values as one array over the steps (``[steps]`` or ``[steps, members]``)."""
    return np.concatenate([np.asarray(v).reshape((-1,) + self.tail) for v in values])

  def check_finite(self):
    """Raises `NonFiniteError` ('stop') or counts the skipped updates ('skip'); in a sweep,
    names the members halted ('stop') or skipping, and raises only when every one is halted."""
    flags = self._steps(self.parallel.host_metrics(
        [m['nonfinite'] for m in self.metrics[self.checked:]]) or [np.zeros((0,) + self.tail)])
    first = self.first_step + self.checked_steps
    self.checked, self.checked_steps = len(self.metrics), self.checked_steps + len(flags)
    columns = flags.reshape((len(flags), len(self.skipped))).T  # [members or 1, steps]
    for j, column in enumerate(columns):
      bad = [first + int(i) + 1 for i in np.flatnonzero(column > 0)]
      if not bad or j in self.halted:
        continue
      who = f'member {self.members[j]}: ' if self.members else ''
      if self.on_nonfinite == 'stop' and self.members:
        self.halted[j] = bad[0]
        logging.warning('%sthe loss or the gradients became NaN or Inf at step %d; this member '
                        'is halted there (its state before that step is kept) and the others '
                        'train on', who, bad[0])
      elif self.on_nonfinite == 'stop':
        kept = (f'the last good checkpoint is step {self.last_good_checkpoint}'
                if self.last_good_checkpoint else 'no checkpoint had been written yet')
        raise NonFiniteError(
            f'the loss or the gradients became NaN or Inf at step {bad[0]}; the run stopped '
            f'without saving anything after it, and {kept}. Lower train.learning_rate, set '
            'train.grad_clip, or set train.on_nonfinite=skip to skip such updates', bad[0])
      else:
        self.skipped[j] += len(bad)
        logging.warning('%sskipped %d update(s) with a NaN/Inf loss or gradient, at steps %s',
                        who, len(bad), ', '.join(map(str, bad[:10])))
    if self.members and len(self.halted) == len(self.members):
      raise NonFiniteError(
          'the loss or the gradients became NaN or Inf in every member of the sweep (at steps '
          f'{", ".join(str(self.halted[j]) for j in range(len(self.members)))}); lower the '
          'learning rates, set train.grad_clip, or set train.on_nonfinite=skip')

  def summaries(self, train: Mapping[str, Any], elapsed: float) -> list[dict[str, float]]:
    """The window's mean metrics and speed, one dict per member (one for a single run).

    A sweep's members share one program, so each member's speed is its share of it: the
    program's steps per second times the number of members (``steps_per_s``: what the member
    costs, comparable with a single run's and with members trained one after another), and the
    program's own rate as ``program_steps_per_s``."""
    host = self.parallel.host_metrics(self.metrics)
    per_step = {k: self._steps([m[k] for m in host]) for k in host[0] if k != 'halted'}
    steps, count = len(per_step['loss']), len(self.skipped)
    out = []
    for j in range(count):
      summary = {k: float(v.reshape(steps, -1)[:, j].mean()) for k, v in per_step.items()}
      summary['steps_per_s'] = count * steps / elapsed
      summary['examples_per_s'] = count * steps * train['batch_size'] / elapsed
      if self.members:
        summary['program_steps_per_s'] = steps / elapsed
      out.append(summary)
    return out

  def reset(self, first_step: int):
    self.metrics, self.first_step, self.checked, self.checked_steps = [], first_step, 0, 0
