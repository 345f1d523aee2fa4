"""Backbones that read video ``[B, T, H, W, C]``: a 3-D conv stack and CNN encoders + RNNs.

``ConvStack3D`` (``cnn3d``) is `ConvStack` with a time axis: blocks of ``t x k x k`` convolutions
(3x3x3 by default), so the first layer already compares neighbouring frames, then pooling in
space (``pool_size``) and, optionally, in time (``time_pool_size``). Each 3-D convolution
(`Conv3D`) runs either as XLA's own 3-D convolution (``impl='xla'``) or (``impl='stacked'``, the
default) as one 2-D convolution of every frame with its ``t`` time-neighbours stacked as
channels: the same sums over the same parameters, about 3x faster to train on CPU, where XLA's
3-D convolution is slow (0.30 s against 0.09 s for one gradient of a 64-clip 8x16x16 batch on
the shared 2-core development machine).

``CNNRecurrent`` (``cnn_rnn``, ``cnn_lstm``, ``cnn_gru``) is the other classic video model: one
2-D `ConvStack` applied to every frame on its own (all ``B * T`` frames as one batch, the same
parameters for every frame), each frame's summary vector then read in order by a `Recurrent`
network. Time is only seen by the recurrent part, so the model is causal in time unless
bidirectional.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from comparenets.models.base import Features
from comparenets.models.conv import (ConvStack, _activation, _norm, global_summary,
                                     pool)
from comparenets.models.recurrent import CELLS, Recurrent


CONV3D_IMPLS = ('stacked', 'xla')


class Conv3D(nn.Module):
  """A 'SAME'-padded, stride-1 3-D convolution of ``[B, T, H, W, C]``, with the parameters of
  ``nn.Conv(features, kernel)`` ('kernel' ``[t, k, k, C, features]`` and 'bias').

  ``impl='xla'``: `jax.lax.conv_general_dilated` in 3-D. ``impl='stacked'``: frames
  ``t - p .. t - p + kt - 1`` (zero beyond the clip, p = (kt - 1) // 2 as 'SAME' pads) stacked as
  channels, and one 2-D convolution of all ``B * T`` stacks with the kernel reshaped to
  ``[k, k, kt * C, features]``: the very same sum.
  """
  features: int
  kernel_size: tuple[int, int, int]
  use_bias: bool = True
  impl: str = 'stacked'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kt, kh, kw = self.kernel_size
    c = x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (kt, kh, kw, c, self.features))
    kernel = kernel.astype(x.dtype)
    if self.impl == 'xla':
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1, 1), 'SAME',
                                       dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'))
    elif self.impl == 'stacked':
      b, t, h, w, _ = x.shape
      before = (kt - 1) // 2
      padded = jnp.pad(x, ((0, 0), (before, kt - 1 - before), (0, 0), (0, 0), (0, 0)))
      stacked = jnp.concatenate([padded[:, i:i + t] for i in range(kt)], axis=-1)
      kernel2d = kernel.transpose(1, 2, 0, 3, 4).reshape(kh, kw, kt * c, self.features)
      y = jax.lax.conv_general_dilated(stacked.reshape(b * t, h, w, kt * c), kernel2d, (1, 1),
                                       'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      y = y.reshape(b, t, h, w, self.features)
    else:
      raise ValueError(f'unknown conv3d impl {self.impl!r}; choose one of {CONV3D_IMPLS}')
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (self.features,)).astype(y.dtype)
    return y


class ConvStack3D(nn.Module):
  """3-D conv stack over videos ``[B, T, H, W, C]``.

  Attributes:
    widths: output channels of each block; its length is the number of blocks.
    convs_per_block: convolutions per block before the pooling.
    kernel_size: k of the spatial k x k extent of each convolution.
    time_kernel_size: extent of each convolution in time (1: frames are never mixed).
    pool: 'max', 'avg' or 'none', applied at the end of each block.
    pool_size: spatial pooling window and stride.
    time_pool_size: temporal pooling window and stride (1: no pooling in time).
    norm: 'none', 'batch', 'layer' or 'group', after each convolution.
    activation: name of the nonlinearity.
    dropout: dropout rate after each block (training only).
    global_pool: how ``Features.summary`` is made from the last map ``[B, t, h, w, C]``:
      'flatten' (the dense head sees every position and time), 'avg' or 'max' (over t, h, w).
    impl: how each 3-D convolution is computed, 'stacked' or 'xla' (see `Conv3D`).

  ``Features.per_position`` is the last feature map ``[B, t, h, w, C]``.
  """
  widths: Sequence[int] = (16, 32)
  convs_per_block: int = 1
  kernel_size: int = 3
  time_kernel_size: int = 3
  pool: str = 'max'
  pool_size: int = 2
  time_pool_size: int = 1
  norm: str = 'none'
  activation: str = 'relu'
  dropout: float = 0.0
  global_pool: str = 'flatten'
  impl: str = 'stacked'

  input_kind = 'video'
  config_rules = {**ConvStack.config_rules, 'impl': {'choices': CONV3D_IMPLS}}

  def check_input(self, shape: Sequence[int]) -> None:
    """Raises ValueError when the pooling would shrink a video of this shape to nothing."""
    if len(shape) != 5:
      raise ValueError(f'cnn3d reads videos [B, T, H, W, C]; this input has shape {tuple(shape)}')
    if self.pool == 'none':
      return
    frames, height, width = shape[1], shape[2], shape[3]
    blocks = len(self.widths)
    side, length = self.pool_size ** blocks, self.time_pool_size ** blocks
    if min(height, width) < side or frames < length:
      raise ValueError(
          f'cnn3d pools by {self.time_pool_size} in time and {self.pool_size} in space in each '
          f'of {blocks} blocks, which needs at least {length} frames of {side}x{side}; this '
          f'input is {frames} frames of {height}x{width}. Use fewer widths, a smaller '
          'time_pool_size or pool=none.')

  def receptive_field(self) -> tuple[int, int]:
    """(frames, side of the square) of the input that one position of the last map sees."""
    time_rf, time_jump, rf, jump = 1, 1, 1, 1
    for _ in self.widths:
      time_rf += self.convs_per_block * (self.time_kernel_size - 1) * time_jump
      rf += self.convs_per_block * (self.kernel_size - 1) * jump
      if self.pool != 'none':
        time_rf += (self.time_pool_size - 1) * time_jump
        time_jump *= self.time_pool_size
        rf += (self.pool_size - 1) * jump
        jump *= self.pool_size
    return time_rf, rf

  @nn.compact
  def __call__(self, x: jax.Array, mask=None, *, train: bool = False) -> Features:
    del mask  # clips have no padding
    self.check_input(x.shape)
    act = _activation(self.activation)
    kernel = (self.time_kernel_size, self.kernel_size, self.kernel_size)
    window = (self.time_pool_size, self.pool_size, self.pool_size)
    for b, width in enumerate(self.widths):
      for c in range(self.convs_per_block):
        norm = _norm(self.norm, width, train, f'norm{b}_{c}')
        x = Conv3D(width, kernel, use_bias=norm is None, impl=self.impl, name=f'conv{b}_{c}')(x)
        if norm is not None:
          x = norm(x)
        x = act(x)
      x = pool(x, self.pool, window)
      if self.dropout > 0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return Features(per_position=x, summary=global_summary(x, self.global_pool))


class CNNRecurrent(nn.Module):
  """A 2-D `ConvStack` on every frame, then a `Recurrent` net over the frames' summaries.

  Reads videos ``[B, T, H, W, C]`` (optionally a mask ``[B, T]``, True = real frame, passed to
  the recurrent part). The encoder's fields are `ConvStack`'s (its ``global_pool`` makes each
  frame's vector), the recurrent part's are `Recurrent`'s; ``dropout`` applies to both (after
  each conv block, and between recurrent layers). Parameters live under 'encoder' and
  'recurrent'. ``Features.per_position`` is the top recurrent layer's output at every frame
  ``[B, T, H']``, ``summary`` its final hidden state, ``state`` every layer's final carry.
  """
  widths: Sequence[int] = (16, 32)
  convs_per_block: int = 1
  kernel_size: int = 3
  pool: str = 'max'
  pool_size: int = 2
  norm: str = 'none'
  activation: str = 'relu'
  global_pool: str = 'flatten'
  cell: str = 'lstm'
  hidden: int = 128
  layers: int = 1
  bidirectional: bool = False
  dropout: float = 0.0
  unroll: int = 1
  impl: str = 'fused'

  input_kind = 'video'
  config_rules = {**ConvStack.config_rules, **Recurrent.config_rules}

  @property
  def causal(self) -> bool:
    return not self.bidirectional

  def encoder(self, **kwargs) -> ConvStack:
    """The per-frame encoder; ``encoder(parent=None)`` is a standalone copy, e.g. to apply to
    ``params['encoder']``."""
    return ConvStack(**kwargs, widths=self.widths, convs_per_block=self.convs_per_block,
                     kernel_size=self.kernel_size, pool=self.pool, pool_size=self.pool_size,
                     norm=self.norm, activation=self.activation, dropout=self.dropout,
                     global_pool=self.global_pool)

  def recurrent(self, **kwargs) -> Recurrent:
    """The recurrent part; ``recurrent(parent=None)`` is a standalone copy, e.g. to apply to
    ``params['recurrent']``."""
    return Recurrent(**kwargs, cell=self.cell, hidden=self.hidden, layers=self.layers,
                     bidirectional=self.bidirectional, dropout=self.dropout,
                     unroll=self.unroll, impl=self.impl)

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *,
               train: bool = False) -> Features:
    if x.ndim != 5:
      raise ValueError(f'{self.cell}-over-CNN reads videos [B, T, H, W, C]; this input has '
                       f'shape {tuple(x.shape)}')
    if self.cell not in CELLS:
      raise ValueError(f'unknown recurrent cell {self.cell!r}; choose one of {sorted(CELLS)}')
    b, t = x.shape[:2]
    frames = x.reshape((b * t,) + x.shape[2:])
    per_frame = self.encoder(name='encoder')(frames, train=train).summary
    features = self.recurrent(name='recurrent')(per_frame.reshape(b, t, -1), mask, train=train)
    return Features(per_position=features.per_position, summary=features.summary,
                    state=features.state)


__all__ = ['Conv3D', 'ConvStack3D', 'CNNRecurrent']
