"""Long-memory probes from Bai, Kolter & Koltun (2018) and the RNN literature, generated on the
fly from a seed (training batch of step s from ``default_rng([seed, s])``; fixed validation and
test sets from their own seeds).

* Adding problem (``adding``): T steps of two features, a value in U(0, 1) and a marker that is 1
  at exactly two steps, one in each half; the target is the sum of the two marked values.
  Metric: MSE. Always predicting 1 gives E[(X + Y - 1)^2] = 1/6 ~ 0.167. With ``min_length``
  the lengths differ within a batch (padded and masked), and ``test_lengths`` adds test sets
  at other lengths, each its own test metric (`AddingProblem`).
* Copy memory (``copy_memory``): ten digits from 1..8, then T - 1 blanks (0), a delimiter (9)
  and ten more blanks, T + 20 steps in all; the model must output blanks until the delimiter
  and then the ten digits. Inputs are one-hot; loss: cross-entropy over every step (as in the
  TCN paper); metrics: that loss and the accuracy on the ten recalled digits. Always predicting
  blanks and then uniformly random digits gives a loss of 10 ln 8 / (T + 20).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from comparenets import figures
from comparenets.errors import ConfigError
from comparenets.models.heads import ClassificationHead, PerPositionHead
from comparenets.tasks.base import GeneratedTask


@dataclasses.dataclass
class _Generated(GeneratedTask):
  length: int = 200

  input_kinds = ('sequence',)
  config_rules = {'data_seed': {'min': 0}, 'length': {'min': 2}}



@dataclasses.dataclass
class AddingProblem(_Generated):
  """The adding problem, at one length or at lengths that differ within a batch.

  ``min_length`` 0 (the default): every sequence has ``length`` steps and there is no mask (the
  batches of every earlier run, bit for bit). ``min_length`` >= 2: each sequence's length is
  drawn uniformly from [min_length, length], the sequence padded on the right to ``length``
  with zeros, ``mask [N, T]`` True on its real steps; the two markers fall in the two halves of
  its real steps, and the model's answer is read at its last real step (`Features.summary`:
  a recurrent net's carry is frozen on masked steps, the TCN reads that step).

  ``test_lengths``: more test sets of ``test_size`` sequences of exactly each such length, from
  seeds of their own (keyed by the length), appended to the test split with the whole split
  padded to its longest length; each gives its own test metric ``mse_T<length>``, while
  ``mse`` and ``loss`` stay the training distribution's. So the one train loop measures how a
  model trained on some lengths does on others, through `per_example` and `finalize` alone.
  """
  min_length: int = 0
  test_lengths: tuple[int, ...] = ()

  name = 'adding'
  target_metric = 'mse'
  higher_is_better = False
  config_rules = {**_Generated.config_rules, 'min_length': {'min': 0},
                  'test_lengths': {'min': 2}}

  def __post_init__(self):
    if self.min_length and not 2 <= self.min_length <= self.length:
      raise ConfigError(f'task adding: min_length={self.min_length} must be 0 (every sequence '
                        f'{self.length} steps) or from 2 to length={self.length}')
    self.test_lengths = tuple(self.test_lengths)
    if len(set(self.test_lengths)) != len(self.test_lengths):
      raise ConfigError(f'task adding: test_lengths={self.test_lengths} repeats a length; '
                        'give each once')

  @staticmethod
  def sequences(rng, lengths: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """Sequences of ``lengths`` steps padded to ``width``: values U(0, 1), a marker at one
    step of each half of the real steps, zeros on the padded steps; ``mask`` True on real
    ones. At one length (``lengths == width``) the draws are those the task always made."""
    n = len(lengths)
    values = rng.uniform(0.0, 1.0, size=(n, width)).astype(np.float32)
    half = lengths // 2
    first = rng.integers(0, half)
    second = rng.integers(half, lengths)
    mask = np.arange(width)[None] < lengths[:, None]
    values *= mask
    markers = np.zeros((n, width), np.float32)
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    target = values[np.arange(n), first] + values[np.arange(n), second]
    return {'inputs': np.stack([values, markers], axis=-1), 'target': target.astype(np.float32),
            'mask': mask}

  def generate(self, rng, n):
    t = self.length
    if not self.min_length:
      out = self.sequences(rng, np.full(n, t), t)
      del out['mask']  # every step real: no mask, as before variable lengths existed
      return out
    return self.sequences(rng, rng.integers(self.min_length, t + 1, size=n), t)

  def splits(self):
    if not hasattr(self, '_splits'):
      splits = dict(super().splits())
      if self.test_lengths:
        splits['test'] = self._with_test_lengths(splits['test'])
      self._splits = splits  # pylint: disable=attribute-defined-outside-init
    return self._splits

  def _with_test_lengths(self, test: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The test set (unchanged, padded) followed by one set per test length, ``group`` 0 for
    the first and i + 1 for ``test_lengths[i]``, all padded to the longest length."""
    width = max(self.length, *self.test_lengths)
    n = len(test['target'])
    mask = test.get('mask', np.ones((n, self.length), bool))
    parts = [{'inputs': np.pad(test['inputs'], ((0, 0), (0, width - self.length), (0, 0))),
              'target': test['target'],
              'mask': np.pad(mask, ((0, 0), (0, width - self.length))),
              'group': np.zeros(n, np.int32)}]
    for i, length in enumerate(self.test_lengths):
      rng = np.random.default_rng(np.random.SeedSequence(self.data_seed, spawn_key=(2, length)))
      part = self.sequences(rng, np.full(self.test_size, length), width)
      part['group'] = np.full(self.test_size, i + 1, np.int32)
      parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  def adapt(self, batch, kind):
    return batch['inputs'], batch.get('mask')

  def head(self, hidden: tuple[int, ...] = ()):
    return ClassificationHead(1, tuple(hidden))

  def per_example(self, outputs, batch):
    err = (outputs[:, 0] - batch['target']) ** 2
    if 'group' not in batch:
      return {'loss': err, 'mse': err}
    # a test split with other lengths: each metric over its own group, with its own count
    weight = lambda g: (batch['group'] == g).astype(jnp.float32)
    per = {'loss': err * weight(0), 'mse': err * weight(0), 'n': weight(0)}
    for i, length in enumerate(self.test_lengths):
      per[f'mse_T{length}'] = err * weight(i + 1)
      per[f'n_T{length}'] = weight(i + 1)
    return per

  def finalize(self, sums):
    if 'n' not in sums:
      return super().finalize(sums)
    counts = lambda k: float(sums['n' + k[len('mse'):]] if k.startswith('mse_T') else sums['n'])
    return {k: float(v) / counts(k) for k, v in sums.items()
            if k not in ('count', 'n') and not k.startswith('n_T')}

  def figures(self, predict):
    """Predicted against true sums on the test set (its training-length sequences)."""
    test = self.splits()['test']
    rows = test['group'] == 0 if 'group' in test else slice(None)
    arrays = {k: test[k][rows] for k in ('inputs', 'mask') if k in test}
    predicted = predict(arrays)[:, 0]
    lengths = (f'T={self.min_length}..{self.length}' if self.min_length
               else f'T={self.length}')
    return {'predictions': figures.scatter_truth(test['target'][rows], predicted, 'sum',
                                               title=f'adding problem {lengths}, test')}


@dataclasses.dataclass
class CopyMemory(_Generated):
  length: int = 100   # T: blanks between the digits and the delimiter, plus one
  digits: int = 10

  name = 'copy_memory'
  target_metric = 'recall_accuracy'
  higher_is_better = True

  def generate(self, rng, n):
    k, t = self.digits, self.length
    seq = rng.integers(1, 9, size=(n, k))
    inputs = np.zeros((n, t + 2 * k), np.int32)
    inputs[:, :k] = seq
    inputs[:, t + k - 1] = 9
    target = np.zeros_like(inputs)
    target[:, -k:] = seq
    return {'inputs': inputs, 'target': target}

  def adapt(self, batch, kind):
    return jax.nn.one_hot(batch['inputs'], 10), None

  def head(self):
    return PerPositionHead(10)

  def per_example(self, outputs, batch):
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs, batch['target'])
    recalled = jnp.argmax(outputs[:, -self.digits:], -1) == batch['target'][:, -self.digits:]
    return {'loss': ce.mean(-1), 'recall_accuracy': recalled.mean(-1).astype(jnp.float32)}

  def figures(self, predict):
    """The first test examples' ten digits against the ones the model recalled."""
    test = {k: v[:8] for k, v in self.splits()['test'].items()}
    recalled = predict(test)[:, -self.digits:].argmax(-1)
    return {'predictions': figures.token_recall(test['target'][:, -self.digits:], recalled,
                                              title=f'copy memory T={self.length}, test')}

  def blank_then_guess_loss(self) -> float:
    """The loss of predicting blanks, then a uniform guess over the 8 digits."""
    return self.digits * math.log(8) / (self.length + 2 * self.digits)
