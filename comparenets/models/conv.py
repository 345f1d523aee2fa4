"""Convolutional backbones: a 2-D conv stack for images and a causal temporal conv net (TCN).

``ConvStack`` is the article's CNN: blocks of kxk convolutions (3x3 by default), an activation,
an optional norm and max or average pooling. Its dense layers belong to the task's head, which is
where every family's output is turned into the task's answer.

``TCN`` follows Bai, Kolter & Koltun (2018): residual blocks of two causal, dilated 1-D
convolutions, dilation ``base**level``, so the receptive field grows exponentially with depth:
``1 + 2 (k - 1) sum_i base**i``. Causal means the output at step t depends on steps <= t only.
Its convolutions take the form each backend runs fastest (`conv_impl_for`).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from comparenets.models.base import Features

ACTIVATIONS = {'relu': nn.relu, 'gelu': nn.gelu, 'tanh': jnp.tanh, 'silu': nn.silu,
               'elu': nn.elu}


def _activation(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f'unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}')
  return ACTIVATIONS[name]


def _norm(kind: str, features: int, train: bool, name: str):
  """A normalisation layer by name, or None for 'none'."""
  if kind == 'none':
    return None
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
  if kind == 'layer':
    return nn.LayerNorm(name=name)
  if kind == 'group':
    return nn.GroupNorm(num_groups=math.gcd(8, features), name=name)
  raise ValueError(f"unknown norm {kind!r}; choose one of 'none', 'batch', 'layer', 'group'")


def pool(x: jax.Array, kind: str, window: Sequence[int]) -> jax.Array:
  """'max' or 'avg' pooling with stride = window, or ``x`` itself for 'none'."""
  window = tuple(window)
  if kind == 'max':
    return nn.max_pool(x, window, strides=window)
  if kind == 'avg':
    return nn.avg_pool(x, window, strides=window)
  if kind != 'none':
    raise ValueError(f"unknown pool {kind!r}; choose 'max', 'avg' or 'none'")
  return x


def global_summary(x: jax.Array, kind: str) -> jax.Array:
  """One vector per example from a feature map ``[B, ..., C]``: 'flatten' it, or its 'avg' or
  'max' over every position."""
  positions = tuple(range(1, x.ndim - 1))
  if kind == 'flatten':
    return x.reshape(x.shape[0], -1)
  if kind == 'avg':
    return x.mean(axis=positions)
  if kind == 'max':
    return x.max(axis=positions)
  raise ValueError(f"unknown global_pool {kind!r}; choose 'flatten', 'avg', 'max'")


class ConvStack(nn.Module):
  """2-D conv stack over images ``[B, H, W, C]``.

  Attributes:
    widths: output channels of each block; its length is the number of blocks.
    convs_per_block: convolutions per block before the pooling.
    kernel_size: k of the kxk convolutions.
    pool: 'max', 'avg' or 'none', applied at the end of each block.
    pool_size: pooling window and stride.
    norm: 'none', 'batch', 'layer' or 'group', after each convolution.
    activation: name of the nonlinearity.
    dropout: dropout rate after each block (training only).
    global_pool: how ``Features.summary`` is made from the last map: 'flatten' (classic CNN:
      the dense head sees every position), 'avg' or 'max'.
  """
  widths: Sequence[int] = (32, 64)
  convs_per_block: int = 1
  kernel_size: int = 3
  pool: str = 'max'
  pool_size: int = 2
  norm: str = 'none'
  activation: str = 'relu'
  dropout: float = 0.0
  global_pool: str = 'flatten'

  input_kind = 'image'
  config_rules = {
      'pool': {'choices': ('max', 'avg', 'none')},
      'norm': {'choices': ('none', 'batch', 'layer', 'group')},
      'activation': {'choices': tuple(sorted(ACTIVATIONS))},
      'global_pool': {'choices': ('flatten', 'avg', 'max')},
      'dropout': {'max': 1.0},
  }

  def check_input(self, shape: Sequence[int]) -> None:
    """Raises ValueError when the pooling would shrink an image of this shape to nothing."""
    if self.pool == 'none':
      return
    height, width = shape[-3], shape[-2]
    blocks = len(self.widths)
    if min(height, width) < self.pool_size ** blocks:
      raise ValueError(
          f'cnn pools by {self.pool_size} in each of {blocks} blocks, which needs images of at '
          f'least {self.pool_size ** blocks}x{self.pool_size ** blocks}; this input is '
          f'{height}x{width}. Use fewer widths or pool=none.')

  def receptive_field(self) -> int:
    """Side of the input square that one position of the last feature map sees."""
    rf, jump = 1, 1
    for _ in self.widths:
      rf += self.convs_per_block * (self.kernel_size - 1) * jump
      if self.pool != 'none':
        rf += (self.pool_size - 1) * jump
        jump *= self.pool_size
    return rf

  @nn.compact
  def __call__(self, x: jax.Array, mask=None, *, train: bool = False) -> Features:
    del mask  # images have no padding
    self.check_input(x.shape)
    act = _activation(self.activation)
    k = self.kernel_size
    for b, width in enumerate(self.widths):
      for c in range(self.convs_per_block):
        norm = _norm(self.norm, width, train, f'norm{b}_{c}')
        x = nn.Conv(width, (k, k), padding='SAME', use_bias=norm is None, name=f'conv{b}_{c}')(x)
        if norm is not None:
          x = norm(x)
        x = act(x)
      x = pool(x, self.pool, (self.pool_size, self.pool_size))
      if self.dropout > 0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return Features(per_position=x, summary=global_summary(x, self.global_pool))


CONV_IMPLS = ('auto', 'conv', 'im2col', 'taps')


def conv_impl_for(backend: str) -> str:
  """The form of the causal convolution (`CausalConv1D.impl`) for ``backend``
  (``jax.default_backend()``), what ``TCN(conv_impl='auto')`` runs.

  * CPU: ``'conv'``. XLA:CPU's (Eigen) convolution packs the k taps itself in cache-sized
    tiles; ``'im2col'`` writes and reads a ``[B, T, k C]`` buffer per layer. Measured on 2 cores
    (`comparenets.analysis.bench --cases=tcn`, the structure sweep's train step at the LSTM's
    66.6k parameters, BUILD_NOTES.md issue 19): im2col 1.01x the convolution at T=256 and 0.92x
    at T=1024; ``'taps'`` 0.84x; channels-first convolutions 0.98x (so no such form).
  * GPU: ``'im2col'``. There the TCN in ``nn.Conv`` form ran at 0.02% of the H200's matmul peak
    (BUILD_NOTES.md, GPU). Its weight gradient is a convolution whose window spans the whole
    sequence (``window={size=T stride=d}`` in the compiled program), a shape convolution
    libraries are not tuned for; im2col makes the forward pass and both gradients plain matrix
    products over all B T steps, which is what a GPU runs best. Not yet measured on a GPU:
    ``scripts/bench/gpu.sh`` times every form there.
  * TPU and anything else: ``'conv'``, today's layer (convolutions are XLA:TPU's own; not
    measured).
  """
  return 'im2col' if backend == 'gpu' else 'conv'


def causal_taps(x: jax.Array, kernel_size: int, dilation: int) -> list[jax.Array]:
  """The ``kernel_size`` views of ``x [B, T, C]`` that a causal dilated convolution weighs:
  view j holds ``x[t - (k - 1 - j) d]`` at step t (zero before the first step), the input that
  kernel tap j multiplies, as in ``nn.Conv`` with ``padding=[((k - 1) d, 0)]``."""
  pad = (kernel_size - 1) * dilation
  steps = x.shape[1]
  padded = jnp.pad(x, ((0, 0), (pad, 0), (0, 0)))
  return [jax.lax.slice_in_dim(padded, j * dilation, j * dilation + steps, axis=1)
          for j in range(kernel_size)]


class _ConvWeights(nn.Module):
  """``nn.Conv``'s kernel ``[k, C_in, C_out]`` and bias, named and initialised as it does, so
  every form of `CausalConv1D` has the same parameter tree (and the same initial values)."""
  features: int
  kernel_size: int

  @nn.compact
  def __call__(self, in_features: int):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (self.kernel_size, in_features, self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return kernel, bias


class CausalConv1D(nn.Module):
  """1-D convolution over ``[B, T, C]`` padded on the left only, so step t sees steps <= t.

  ``impl`` is the form the product takes, all over the same parameters (``conv/kernel
  [k, C_in, C_out]`` and ``conv/bias``) with the same outputs:

  * ``'conv'``: XLA's dilated convolution (``nn.Conv``);
  * ``'im2col'``: the k shifted views side by side, ``[B, T, k C_in]``, times the kernel as a
    ``[k C_in, C_out]`` matrix: one matrix product, whose weight gradient is one more;
  * ``'taps'``: the k views each times its own ``[C_in, C_out]`` slice, summed (no
    ``[B, T, k C_in]`` buffer, k smaller products).
  """
  features: int
  kernel_size: int
  dilation: int = 1
  impl: str = 'conv'

  @nn.compact
  def __call__(self, x):
    k, d = self.kernel_size, self.dilation
    if self.impl == 'conv':
      pad = (k - 1) * d
      return nn.Conv(self.features, (k,), kernel_dilation=(d,), padding=[(pad, 0)],
                     name='conv')(x)
    if self.impl not in ('im2col', 'taps'):
      raise ValueError(f'unknown conv impl {self.impl!r}; choose one of {CONV_IMPLS[1:]}')
    kernel, bias = _ConvWeights(self.features, k, name='conv')(x.shape[-1])
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    views = causal_taps(x, k, d)
    if self.impl == 'im2col':
      y = jnp.concatenate(views, axis=-1) @ kernel.reshape(-1, self.features)
    else:
      y = sum(view @ kernel[j] for j, view in enumerate(views))
    return y + bias


class TemporalBlock(nn.Module):
  """Two causal dilated convolutions with activation, optional norm and dropout, plus residual."""
  features: int
  kernel_size: int
  dilation: int
  dropout: float = 0.0
  norm: str = 'none'
  activation: str = 'relu'
  conv_impl: str = 'conv'

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    act = _activation(self.activation)
    y = x
    for i in range(2):
      y = CausalConv1D(self.features, self.kernel_size, self.dilation, self.conv_impl,
                       name=f'causal{i}')(y)
      if self.norm == 'layer':
        y = nn.LayerNorm(name=f'norm{i}')(y)
      elif self.norm != 'none':
        raise ValueError(f"unknown tcn norm {self.norm!r}; choose 'none' or 'layer'")
      y = act(y)
      if self.dropout > 0:
        y = nn.Dropout(self.dropout, deterministic=not train)(y)
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1,), name='downsample')(x)
    return act(x + y)


def tcn_levels_for(length: int, kernel_size: int, dilation_base: int = 2) -> int:
  """The fewest TCN levels whose receptive field covers ``length`` steps."""
  levels = 1
  while 1 + 2 * (kernel_size - 1) * sum(dilation_base ** i for i in range(levels)) < length:
    levels += 1
  return levels


class TCN(nn.Module):
  """Temporal conv net over sequences ``[B, T, F]`` with an optional mask ``[B, T]``.

  Padding must be on the right (real steps first), which is what every task produces: being
  causal, no real step's output can see a padded step. ``Features.summary`` is the output at each
  sequence's last real step.

  ``conv_impl`` is the form of every causal convolution (`CausalConv1D`): ``'auto'`` (the
  default) picks the backend's fastest (`conv_impl_for`); ``'conv'``, ``'im2col'`` and
  ``'taps'`` force one. All forms share the parameter tree and compute the same function, so a
  checkpoint trained in one form restores in any other.
  """
  channels: int = 64
  levels: int = 4
  kernel_size: int = 3
  dilation_base: int = 2
  dropout: float = 0.0
  norm: str = 'none'
  activation: str = 'relu'
  conv_impl: str = 'auto'

  input_kind = 'sequence'
  causal = True
  config_rules = {
      'conv_impl': {'choices': CONV_IMPLS},
      'norm': {'choices': ('none', 'layer')},
      'activation': {'choices': tuple(sorted(ACTIVATIONS))},
      'dilation_base': {'min': 1},
      'dropout': {'max': 1.0},
  }

  def receptive_field(self) -> int:
    """Number of input steps that one output step depends on (itself included)."""
    dilations = sum(self.dilation_base ** i for i in range(self.levels))
    return 1 + 2 * (self.kernel_size - 1) * dilations

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *,
               train: bool = False) -> Features:
    if mask is not None:
      x = x * mask[..., None].astype(x.dtype)
    impl = (conv_impl_for(jax.default_backend()) if self.conv_impl == 'auto'
            else self.conv_impl)
    h = x
    for level in range(self.levels):
      h = TemporalBlock(self.channels, self.kernel_size, self.dilation_base ** level,
                        self.dropout, self.norm, self.activation, impl, name=f'block{level}')(
                            h, train=train)
    if mask is None:
      summary = h[:, -1]
    else:
      last = jnp.maximum(mask.astype(jnp.int32).sum(axis=1) - 1, 0)
      summary = jnp.take_along_axis(h, last[:, None, None], axis=1)[:, 0]
    return Features(per_position=h, summary=summary)
