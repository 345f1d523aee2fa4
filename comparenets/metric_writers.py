"""Metrics to JSON lines (``metrics.jsonl``) and TensorBoard event files, from process 0 only.

TensorBoard files come from tensorboardX, which needs no TensorFlow. Each JSON line is
``{"step": s, "split": "train" | "validation" | "test", "wall_time": t, <metric>: value, ...}``;
each metric is also the TensorBoard scalar ``<split>/<metric>``. At the end of a run the plots of
`comparenets.plots` go to TensorBoard as images (``plots/<name>``, `MetricWriter.write_image`).

A workdir on a bucket (``gs://...``) goes through `etils.epath`. Objects there cannot be
appended to, so ``metrics.jsonl`` is kept in memory and rewritten whole, and the event files are
written to a local temporary directory and copied to ``<workdir>/tensorboard`` (tensorboardX
writes to ``gs://`` only with google-cloud-storage installed; the copy needs nothing beyond
epath). Both reach the bucket at most every ``sync_secs``, at each `MetricWriter.flush` (the
train loop flushes after every checkpoint, so a resumed run finds every line up to its
checkpoint) and at the end: one blocking round trip to the bucket per log would stall the train
loop, and rewriting a growing file at every log writes a long run's metrics quadratically often.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from typing import Any, Mapping

from absl import logging
import jax

from comparenets import workdir as workdirs


class MetricWriter:

  def __init__(self, workdir: str, *, enabled: bool | None = None, sync_secs: float = 60.0):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.local = workdirs.is_local(workdir)
    self.path = workdirs.join(workdir, 'metrics.jsonl')
    self._tb = None
    self._tb_remote, self._lines, self._synced, self.sync_secs = None, '', 0.0, sync_secs
    self._unsynced_lines = False
    if not self.enabled:
      return
    # only the process that writes loads tensorboardX (and its protobuf modules)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    if self.local:
      self._tb = SummaryWriter(os.path.join(workdirs.resolve(workdir), 'tensorboard'),
                               flush_secs=30)
      return
    self._lines = workdirs.read_text(self.path) or ''  # a resumed run keeps the earlier lines
    self._tb_remote = workdirs.join(workdir, 'tensorboard')
    self._tb_local = tempfile.mkdtemp(prefix='comparenets-tensorboard-')
    # a unique name: a resumed run's events must not replace the earlier run's on the bucket
    self._tb = SummaryWriter(self._tb_local, flush_secs=30,
                             filename_suffix=f'.{uuid.uuid4().hex[:8]}')
    logging.info('TensorBoard events go to %s and are copied to %s every %.0f s and at the end',
                 self._tb_local, self._tb_remote, sync_secs)

  def write(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in metrics.items()}
    record = {'step': int(step), 'split': split, 'wall_time': time.time(), **values}
    if self.local:
      with open(self.path, 'a', encoding='utf-8') as f:
        f.write(json.dumps(record) + '\n')
    else:
      self._lines += json.dumps(record) + '\n'
      self._unsynced_lines = True
    for k, v in values.items():
      self._tb.add_scalar(f'{split}/{k}', v, int(step))
    if self._tb_remote is not None and time.time() - self._synced >= self.sync_secs:
      self.flush()

  def write_image(self, tag: str, image: Any, step: int) -> None:
    """An ``uint8 [H, W, 3]`` image, shown in TensorBoard's Images tab under ``tag``."""
    if not self.enabled:
      return
    self._tb.add_image(tag, image, int(step), dataformats='HWC')

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()
      self._sync()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._sync()
      self._tb = None
      if self._tb_remote is not None:
        shutil.rmtree(self._tb_local, ignore_errors=True)

  def _sync(self) -> None:
    """Writes the metrics of a bucket workdir there and copies its local event files."""
    if self._tb_remote is None:
      return
    if self._unsynced_lines:
      self.path.write_text(self._lines)
      self._unsynced_lines = False
    self._tb_remote.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(self._tb_local):
      with open(os.path.join(self._tb_local, name), 'rb') as f:
        (self._tb_remote / name).write_bytes(f.read())
    self._synced = time.time()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of ``metrics.jsonl`` in a workdir, in the order written."""
  text = workdirs.read_text(workdirs.join(workdir, 'metrics.jsonl'))
  if text is None:
    return []
  return [json.loads(line) for line in text.splitlines() if line.strip()]


def training_seconds(records: list[dict[str, Any]]) -> dict[int, tuple[dict[str, Any], float]]:
  """{step: (its train record, training seconds up to it)} of `read_metrics`' records, rebuilt
  from each train record's ``steps_per_s`` (evaluation and checkpoint time left out). A resumed
  run logs some steps twice: the last record of a step counts, and its window's time once."""
  latest = {m['step']: m for m in records if m['split'] == 'train'}
  out, t, previous = {}, 0.0, 0
  for step in sorted(latest):
    t += (step - previous) / latest[step]['steps_per_s']
    previous = step
    out[step] = (latest[step], t)
  return out
