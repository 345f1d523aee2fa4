"""Accuracy of finished image runs on shifted and rescaled test images (claim 2.1 of the audit).

A run's final parameters are restored from its checkpoints (rebuilt from its config.json with
`train.build_setup` / `train.create_state`, read by `checkpointing.Checkpointer`) and evaluated
on its task's test split three ways: as it is, shifted by ``shift`` pixels (up, down, left and
right, zero fill, the four accuracies averaged), and with the image shrunk to ``size`` x
``size`` by area averaging and placed centred on a zero canvas of the original size.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from comparenets import train
from comparenets import workdir as workdirs
from comparenets.checkpointing import Checkpointer
from comparenets.errors import CheckpointError, ConfigError

DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (rows, columns): up, down, left, right


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """``images`` [N, H, W, C] moved ``dy`` rows down and ``dx`` columns right (negative: up /
  left); what moves out is lost, what comes in is 0."""
  images = np.asarray(images)
  out = np.zeros_like(images)
  h, w = images.shape[1:3]
  src = lambda d, n: slice(max(0, -d), n - max(0, d))
  dst = lambda d, n: slice(max(0, d), n - max(0, -d))
  out[:, dst(dy, h), dst(dx, w)] = images[:, src(dy, h), src(dx, w)]
  return out


def area_matrix(n: int, m: int) -> np.ndarray:
  """[m, n]: row i averages the input cells [0, n) that output cell i covers, weighted by how
  much of each it covers (area resampling in one dimension)."""
  scale = n / m
  a = np.zeros((m, n))
  for i in range(m):
    lo, hi = i * scale, (i + 1) * scale
    for j in range(int(np.floor(lo)), min(n, int(np.ceil(hi)))):
      a[i, j] = (min(hi, j + 1) - max(lo, j)) / scale
  return a


def rescale_centred(images: np.ndarray, size: int) -> np.ndarray:
  """``images`` [N, H, W, C] resized to ``size`` x ``size`` by area averaging (the mean
  brightness kept) and placed centred on a zero canvas of H x W (offset (H - size) // 2)."""
  images = np.asarray(images)
  h, w = images.shape[1:3]
  rows, cols = area_matrix(h, size), area_matrix(w, size)
  small = np.einsum('ih,nhwc,jw->nijc', rows, images, cols).astype(images.dtype)
  out = np.zeros_like(images)
  top, left = (h - size) // 2, (w - size) // 2
  out[:, top:top + size, left:left + size] = small
  return out


def restore(run_dir: str):
  """(setup, state) of a finished run: its config.json rebuilt, its newest checkpoint read."""
  # a missing config.json is a FileNotFoundError here too: `measure` names the run as skipped
  config = ml_collections.ConfigDict(json.loads(workdirs.join(run_dir, 'config.json')
                                                .read_text()))
  setup = train.build_setup(config)
  test = setup.task.splits()['test']
  # the state's shapes only (traced, not compiled: a compile per run cost the report 1.5 s
  # each), on this process's first device, as the run's final checkpoint is read
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
      jax.eval_shape(lambda rng: train.create_state(setup, rng, test), jax.random.PRNGKey(0)))
  checkpointer = Checkpointer(os.path.join(run_dir, 'checkpoints'), every=0, async_save=False)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise CheckpointError(f'no checkpoint in {run_dir}')
    return setup, checkpointer.restore(step, target)
  finally:
    checkpointer.close()


def accuracies(run_dir: str, shift_by: int = 1, size: int = 6) -> dict[str, float]:
  """{'original', 'shifted', 'rescaled'}: test accuracy of the run in ``run_dir``."""
  setup, state = restore(run_dir)
  eval_step = jax.jit(train.make_step_fns(setup)[1])
  test = setup.task.splits()['test']
  images, labels = np.asarray(test['inputs']), np.asarray(test['label'])
  weight = np.ones(len(labels), np.float32)

  def accuracy(x):
    sums = eval_step(state, {'inputs': x, 'label': labels, 'weight': weight})
    return setup.task.finalize(jax.device_get(sums))['accuracy']

  return {'original': accuracy(images),
          'shifted': float(np.mean([accuracy(shift(images, dy * shift_by, dx * shift_by))
                                    for dy, dx in DIRECTIONS])),
          'rescaled': accuracy(rescale_centred(images, size))}


def measure(root: str, runs: list[dict[str, Any]], shift_by: int = 1, size: int = 6
            ) -> tuple[dict[str, dict[str, Any]], list[str]]:
  """({model: {'original', 'shifted', 'rescaled': each run's accuracy, 'runs': directories}},
  skipped): the given runs (below ``root``); a run whose checkpoint cannot be restored is left
  out and listed in ``skipped`` with the error's type. Per run, not a mean, so that the claims
  can weigh a difference against the spread over seeds."""
  per_model: dict[str, list[tuple[str, dict[str, float]]]] = {}
  skipped = []
  for r in runs:
    try:
      acc = accuracies(os.path.join(root, r['workdir']), shift_by, size)
    except (CheckpointError, ConfigError, OSError) as e:
      skipped.append(f"{r['workdir']} ({type(e).__name__})")
      continue
    per_model.setdefault(r['model'], []).append((r['workdir'], acc))
  out: dict[str, dict[str, Any]] = {
      m: {**{k: [a[k] for _, a in items] for k in ('original', 'shifted', 'rescaled')},
          'runs': [w for w, _ in items]}
      for m, items in per_model.items()}
  return out, skipped
