"""Heads: what a task puts on top of any backbone's `Features`."""

from __future__ import annotations

import math
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


class CenterHead(nn.Module):
  """A dense detection head in the style of CenterNet (Zhou et al., 2019, "Objects as Points")
  on a 2-D ``Features.per_position [B, h, w, D]``: an optional kxk convolution of ``hidden``
  channels and ReLU, then per cell ``num_classes`` centre-heatmap logits followed by ``extra``
  regression outputs (e.g. box height and width, sub-cell offset), ``[B, h, w, num_classes +
  extra]``. The heatmap bias starts at the logit of ``prior`` (CenterNet's -2.19 for 0.1), so
  that the many background cells do not swamp the first steps of a focal loss."""
  num_classes: int
  extra: int = 4
  hidden: int = 64
  kernel_size: int = 3
  prior: float = 0.1

  @nn.compact
  def __call__(self, features: Features, *, train: bool = False) -> jax.Array:
    del train
    x = features.per_position
    if x.ndim != 4:
      raise ValueError(f'a detection head needs a 2-D feature map [B, h, w, D]; this backbone '
                       f'gives {x.ndim - 1}-D features {tuple(x.shape)}')
    if self.hidden:
      k = self.kernel_size
      x = nn.relu(nn.Conv(self.hidden, (k, k), padding='SAME', name='hidden')(x))
    bias = math.log(self.prior) - math.log1p(-self.prior)
    heat = nn.Conv(self.num_classes, (1, 1), bias_init=nn.initializers.constant(bias),
                   name='heatmap')(x)
    return jax.numpy.concatenate([heat, nn.Conv(self.extra, (1, 1), name='regression')(x)], -1)


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


def depth_to_space(x: jax.Array, scale: int) -> jax.Array:
  """Sub-pixel shuffle ``[B, h, w, s*s*C] -> [B, h*s, w*s, C]`` (as TensorFlow's NHWC
  ``depth_to_space``): ``out[b, i*s + dy, j*s + dx, c] = x[b, i, j, (dy*s + dx)*C + c]``."""
  b, h, w, d = x.shape
  c = d // (scale * scale)
  if c * scale * scale != d:
    raise ValueError(f'depth_to_space by {scale} needs channels divisible by {scale * scale}, '
                     f'not {d}')
  x = x.reshape(b, h, w, scale, scale, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * scale, w * scale, c)


def space_to_depth(x: jax.Array, scale: int) -> jax.Array:
  """The inverse of `depth_to_space`: ``[B, h*s, w*s, C] -> [B, h, w, s*s*C]``."""
  b, hs, ws, c = x.shape
  h, w = hs // scale, ws // scale
  x = x.reshape(b, h, scale, w, scale, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h, w, scale * scale * c)


class SubPixelHead(nn.Module):
  """ESPCN's output layer (Shi et al., 2016): a kxk convolution on every position of a
  full-resolution ``Features.per_position [B, h, w, D]`` to ``scale**2 * channels`` values, then
  the sub-pixel shuffle to ``[B, h*scale, w*scale, channels]``. Fully convolutional: it applies
  to images of any size. ``zero_init`` starts the output at 0 (for a head that predicts a
  residual over an upsampled input, training then starts from that upsampling)."""
  scale: int
  channels: int = 1
  kernel_size: int = 3
  zero_init: bool = True

  @nn.compact
  def __call__(self, features: Features, *, train: bool = False) -> jax.Array:
    del train
    k = self.kernel_size
    init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
    x = nn.Conv(self.scale * self.scale * self.channels, (k, k), padding='SAME',
                kernel_init=init, name='subpixel')(features.per_position)
    return depth_to_space(x, self.scale)
