"""Heads: what a task puts on top of any backbone's `Features`."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from comparenets.models.base import Features


class ClassificationHead(nn.Module):
  """Dense layers on ``Features.summary`` ending in ``num_classes`` logits."""
  num_classes: int
  hidden: Sequence[int] = ()
  dropout: float = 0.0

  @nn.compact
  def __call__(self, features: Features, *, train: bool = False) -> jax.Array:
    x = features.summary
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, name=f'hidden{i}')(x))
      if self.dropout > 0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name='logits')(x)


class PerPositionHead(nn.Module):
  """A dense layer on every position of ``Features.per_position`` (per-step or per-pixel)."""
  outputs: int

  @nn.compact
  def __call__(self, features: Features, *, train: bool = False) -> jax.Array:
    del train
    return nn.Dense(self.outputs, name='out')(features.per_position)


class TaskModel(nn.Module):
  """A task's stem (e.g. a token embedding; optional), a backbone and the task's head.

  Parameters live under 'stem', 'backbone' and 'head'.
  """
  backbone: nn.Module
  head: nn.Module
  stem: nn.Module | None = None

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, train: bool = False):
    if self.stem is not None:
      x = self.stem(x)
    return self.head(self.backbone(x, mask, train=train), train=train)
