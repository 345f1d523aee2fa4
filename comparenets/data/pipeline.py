"""Batching of in-memory splits: a resumable training stream and padded evaluation batches.

The training batch of step s is a pure function of (seed, s): epoch e = s // steps_per_epoch
reads a permutation drawn from ``default_rng([seed, e])``. A run resumed from a checkpoint at
step s therefore sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

import numpy as np

from comparenets.errors import ConfigError

Split = Mapping[str, np.ndarray]


def split_size(split: Split) -> int:
  sizes = {len(v) for v in split.values()}
  if len(sizes) != 1:
    raise ValueError(f'arrays of one split differ in length: {sizes}')
  return sizes.pop()


class EpochSampler:
  """Shuffled, epoch-based, drop-remainder batches, addressable by step."""

  def __init__(self, split: Split, batch_size: int, seed: int):
    self.split = split
    self.size = split_size(split)
    if batch_size > self.size:
      raise ConfigError(f'train.batch_size={batch_size} is larger than the training split '
                        f'({self.size} examples); use a smaller batch')
    self.batch_size = batch_size
    self.seed = seed
    self.steps_per_epoch = self.size // batch_size
    self._epoch, self._perm = -1, None

  def indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch = epoch
      self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
    return self._perm[i * self.batch_size:(i + 1) * self.batch_size]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    idx = self.indices(step)
    return {k: v[idx] for k, v in self.split.items()}


class GeneratedSampler:
  """Training batches generated on the fly: batch(step) = generate(default_rng([seed, step]), B)."""

  def __init__(self, generate: Callable[[np.random.Generator, int], dict[str, np.ndarray]],
               batch_size: int, seed: int):
    self.generate, self.batch_size, self.seed = generate, batch_size, seed

  def batch(self, step: int) -> dict[str, np.ndarray]:
    return self.generate(np.random.default_rng([self.seed, step]), self.batch_size)


def eval_batches(split: Split, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Every example exactly once, in batches of exactly ``batch_size`` (so one compilation).

  The last batch is padded by repeating examples; ``weight`` is 1 for real examples and 0 for
  padding, so weighted sums count each example once.
  """
  n = split_size(split)
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    real = len(idx)
    if real < batch_size:
      idx = np.concatenate([idx, np.zeros(batch_size - real, idx.dtype)])
    batch = {k: v[idx] for k, v in split.items()}
    batch['weight'] = (np.arange(batch_size) < real).astype(np.float32)
    yield batch
