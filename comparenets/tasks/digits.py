"""Image classification on scikit-learn's 8x8 digits, readable by every family.

How the image reaches a backbone (``reading``):

* 'image': ``[B, 8, 8, 1]``, for 2-D conv stacks;
* 'rows': 8 time steps of 8 features (one image row per step), for TCN/RNN/LSTM/GRU;
* 'pixels': 64 time steps of 1 feature (pixel by pixel, row-major): the sequential-digits
  variant of sequential MNIST; with ``order='permuted'`` the steps come in a fixed random order
  (seeded by ``permutation_seed``), which removes locality and makes memory matter;
* 'auto': 'image' for image backbones, 'rows' for sequence backbones.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np
import optax

from comparenets.data import digits as digits_data
from comparenets.errors import ConfigError
from comparenets.models.heads import ClassificationHead
from comparenets.tasks.base import Task

READINGS = ('auto', 'image', 'rows', 'pixels')
ORDERS = ('sequential', 'permuted')


@dataclasses.dataclass
class DigitsClassification(Task):
  reading: str = 'auto'
  order: str = 'sequential'
  permutation_seed: int = 0
  split_seed: int = 0
  validation_fraction: float = 0.15
  test_fraction: float = 0.15

  name = 'digits'
  input_kinds = ('image', 'sequence')
  target_metric = 'accuracy'
  higher_is_better = True
  num_classes = 10
  config_rules = {
      'reading': {'choices': READINGS},
      'order': {'choices': ORDERS},
      'permutation_seed': {'min': 0},
      'split_seed': {'min': 0},
      'validation_fraction': {'min': 0.01, 'max': 0.5},
      'test_fraction': {'min': 0.01, 'max': 0.5},
  }

  def __post_init__(self):
    if self.reading not in READINGS:
      raise ConfigError(f'digits: unknown reading {self.reading!r}; choose one of {READINGS}')
    if self.order not in ORDERS:
      raise ConfigError(f'digits: unknown order {self.order!r}; choose one of {ORDERS}')
    if self.order == 'permuted' and self.reading in ('image',):
      raise ConfigError("digits: order='permuted' permutes time steps, so it needs "
                        "reading='rows' or 'pixels'")

  def reading_for(self, kind: str) -> str:
    if self.reading == 'auto':
      return 'image' if kind == 'image' else 'rows'
    return self.reading

  def check_input_kind(self, kind: str, model: str) -> None:
    super().check_input_kind(kind, model)
    reading = self.reading_for(kind)
    if (kind == 'image') != (reading == 'image'):
      gives = 'images' if reading == 'image' else f'sequences ({reading})'
      fix = "reading='image' or 'auto'" if kind == 'image' else "reading='rows' or 'pixels'"
      raise ConfigError(f'model {model!r} reads {kind} input but task digits with '
                        f'reading={reading!r} gives {gives}; use {fix}')
    if kind == 'image' and self.order == 'permuted':
      raise ConfigError(f"model {model!r} reads images, which have no step order to permute; "
                        "order='permuted' needs a sequence model")

  def splits(self):
    return digits_data.load_splits(self.split_seed, self.validation_fraction,
                                   self.test_fraction)

  @functools.cached_property
  def permutation(self) -> np.ndarray:
    steps = 64 if self.reading == 'pixels' else 8
    return np.random.default_rng(self.permutation_seed).permutation(steps)

  def adapt(self, batch, kind):
    images = batch['inputs']
    reading = self.reading_for(kind)
    if reading == 'image':
      return images, None
    b = images.shape[0]
    x = images.reshape(b, 8, 8) if reading == 'rows' else images.reshape(b, 64, 1)
    if self.order == 'permuted':
      x = x[:, self.permutation]
    return x, None

  def head(self, hidden: tuple[int, ...] = (), dropout: float = 0.0):
    return ClassificationHead(self.num_classes, tuple(hidden), dropout)

  def per_example(self, outputs, batch):
    labels = batch['label']
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, labels)
    correct = (jnp.argmax(outputs, -1) == labels).astype(jnp.float32)
    return {'loss': loss, 'accuracy': correct}
