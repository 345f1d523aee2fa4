"""Metrics to JSON lines (``metrics.jsonl``) and TensorBoard event files, from process 0 only.

TensorBoard files come from tensorboardX, which needs no TensorFlow. Each JSON line is
``{"step": s, "split": "train" | "validation" | "test", "wall_time": t, <metric>: value, ...}``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

import jax


class MetricWriter:

  def __init__(self, workdir: str, *, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self._tb = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'), flush_secs=30)

  def write(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in metrics.items()}
    record = {'step': int(step), 'split': split, 'wall_time': time.time(), **values}
    with open(self.path, 'a', encoding='utf-8') as f:
      f.write(json.dumps(record) + '\n')
    for k, v in values.items():
      self._tb.add_scalar(f'{split}/{k}', v, int(step))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of ``metrics.jsonl`` in a workdir, in the order written."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path, encoding='utf-8') as f:
    return [json.loads(line) for line in f if line.strip()]
