"""Long-memory probes from Bai, Kolter & Koltun (2018) and the RNN literature, generated on the
fly from a seed (training batch of step s from ``default_rng([seed, s])``; fixed validation and
test sets from their own seeds).

* Adding problem (``adding``): T steps of two features, a value in U(0, 1) and a marker that is 1
  at exactly two steps, one in each half; the target is the sum of the two marked values.
  Metric: MSE. Always predicting 1 gives E[(X + Y - 1)^2] = 1/6 ~ 0.167.
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
from comparenets.models.heads import ClassificationHead, PerPositionHead
from comparenets.tasks.base import GeneratedTask


@dataclasses.dataclass
class _Generated(GeneratedTask):
  length: int = 200

  input_kinds = ('sequence',)
  config_rules = {'data_seed': {'min': 0}, 'length': {'min': 2}}



@dataclasses.dataclass
class AddingProblem(_Generated):
  name = 'adding'
  target_metric = 'mse'
  higher_is_better = False

  def generate(self, rng, n):
    t = self.length
    values = rng.uniform(0.0, 1.0, size=(n, t)).astype(np.float32)
    first = rng.integers(0, t // 2, size=n)
    second = rng.integers(t // 2, t, size=n)
    markers = np.zeros((n, t), np.float32)
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    target = values[np.arange(n), first] + values[np.arange(n), second]
    return {'inputs': np.stack([values, markers], axis=-1), 'target': target.astype(np.float32)}

  def adapt(self, batch, kind):
    return batch['inputs'], None

  def head(self, hidden: tuple[int, ...] = ()):
    return ClassificationHead(1, tuple(hidden))

  def per_example(self, outputs, batch):
    err = (outputs[:, 0] - batch['target']) ** 2
    return {'loss': err, 'mse': err}

  def figures(self, predict):
    """Predicted against true sums on the test set."""
    test = self.splits()['test']
    predicted = predict({'inputs': test['inputs']})[:, 0]
    return {'predictions': figures.scatter_truth(test['target'], predicted, 'sum',
                                               title=f'adding problem T={self.length}, test')}


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
