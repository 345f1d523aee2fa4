"""Recurrent backbones: simple (Elman) RNN, LSTM and GRU on one `nn.scan` layer.

Every cell splits its work the same way:

* the input-to-hidden product ``x_t @ W_x + b`` for *all* time steps is one matrix product,
  computed by the layer before the scan (``RecurrentLayer``, parameter ``input``);
* only the hidden-to-hidden product ``h_{t-1} @ W_h`` and the gate math run inside the scan
  (the cell's parameter ``hidden``).

Gate equations (``xp`` is the precomputed input projection of one step):

* simple RNN: ``h = tanh(xp + h @ W_h)``
* LSTM (gate order i, f, g, o):
  ``i, f, g, o = split(xp + h @ W_h)``; ``c = sig(f) c + sig(i) tanh(g)``; ``h = sig(o) tanh(c)``
* GRU (gate order r, z, n; the reset gate acts on the hidden product, as in cuDNN, PyTorch and
  ``flax.linen.GRUCell``):
  ``r = sig(xp_r + h W_hr)``, ``z = sig(xp_z + h W_hz)``, ``n = tanh(xp_n + r (h W_hn + b_hn))``,
  ``h = (1 - z) n + z h``

Parameter counts with F input features and H hidden units:
simple RNN ``F H + H H + H``; LSTM ``4 (F H + H H + H)``; GRU ``3 (F H + H H + H) + H``.
None of them depends on the number of time steps.

Masking: where ``mask[b, t]`` is False the carry is left unchanged and the step's output is
zero, so padded steps change nothing, in either direction.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from comparenets.models.base import Features

Array = jax.Array


def _lstm_bias_init(key, shape, dtype=jnp.float32):
  """Zero bias except the forget gate's, which starts at 1 (Jozefowicz et al., 2015)."""
  del key
  hidden = shape[-1] // 4
  return jnp.zeros(shape, dtype).at[..., hidden:2 * hidden].set(1.0)


class _HiddenStateCell(nn.Module):
  """A cell whose carry is its hidden state alone (simple RNN, GRU)."""
  hidden: int
  bias_init = staticmethod(nn.initializers.zeros_init())

  @staticmethod
  def initial_carry(batch: int, hidden: int, dtype=jnp.float32):
    return jnp.zeros((batch, hidden), dtype)

  @staticmethod
  def output(carry):
    return carry


class SimpleRNNCell(_HiddenStateCell):
  """Elman cell: one tanh layer over the input projection and the previous hidden state."""
  gates = 1

  @nn.compact
  def __call__(self, carry, inputs):
    xp, mask = inputs
    w_h = self.param('hidden', nn.initializers.orthogonal(), (self.hidden, self.hidden))
    h = jnp.tanh(xp + carry @ w_h)
    return _masked(mask, h, carry)


class LSTMCell(nn.Module):
  """LSTM cell: input, forget and output gates plus the candidate; carry is ``(c, h)``."""
  hidden: int
  gates = 4
  bias_init = staticmethod(_lstm_bias_init)

  @staticmethod
  def initial_carry(batch: int, hidden: int, dtype=jnp.float32):
    zeros = jnp.zeros((batch, hidden), dtype)
    return (zeros, zeros)

  @staticmethod
  def output(carry):
    return carry[1]

  @nn.compact
  def __call__(self, carry, inputs):
    xp, mask = inputs
    c, h = carry
    w_h = self.param('hidden', nn.initializers.orthogonal(column_axis=-1),
                     (self.hidden, 4 * self.hidden))
    z = xp + h @ w_h
    i, f, g, o = jnp.split(z, 4, axis=-1)
    new_c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    new_h = jax.nn.sigmoid(o) * jnp.tanh(new_c)
    return _masked(mask, (new_c, new_h), carry)


class GRUCell(_HiddenStateCell):
  """GRU cell: reset and update gates plus the candidate; carry is ``h``."""
  gates = 3

  @nn.compact
  def __call__(self, carry, inputs):
    xp, mask = inputs
    h = carry
    w_h = self.param('hidden', nn.initializers.orthogonal(column_axis=-1),
                     (self.hidden, 3 * self.hidden))
    b_hn = self.param('hidden_bias', nn.initializers.zeros_init(), (self.hidden,))
    hp = h @ w_h
    xr, xz, xn = jnp.split(xp, 3, axis=-1)
    hr, hz, hn = jnp.split(hp, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * (hn + b_hn))
    new_h = (1.0 - z) * n + z * h
    return _masked(mask, new_h, carry)


def _masked(mask, new_carry, old_carry):
  """Returns (carry, output) for one step, freezing the carry where ``mask`` is False."""
  if mask is not None:
    new_carry = jax.tree.map(lambda n, o: jnp.where(mask, n, o), new_carry, old_carry)
  out = new_carry[1] if isinstance(new_carry, tuple) else new_carry
  if mask is not None:
    out = jnp.where(mask, out, jnp.zeros_like(out))
  return new_carry, out


CELLS = {'rnn': SimpleRNNCell, 'lstm': LSTMCell, 'gru': GRUCell}


class RecurrentLayer(nn.Module):
  """One direction of one recurrent layer over a batch-major sequence ``[B, T, F]``.

  Returns ``(outputs [B, T, H], final_carry)``. The input projection of every step is one
  ``Dense`` applied to the whole sequence; `nn.scan` runs the cell over time, so the compiled
  program does not grow with T.
  """
  cell: str
  hidden: int
  reverse: bool = False
  unroll: int = 1

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None):
    cell_cls = CELLS[self.cell]
    xp = nn.Dense(cell_cls.gates * self.hidden, bias_init=cell_cls.bias_init,
                  name='input')(x)
    step_mask = None if mask is None else mask.astype(bool)[..., None]
    scan = nn.scan(cell_cls, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=1, out_axes=1, reverse=self.reverse, unroll=self.unroll)
    # zeros derived from the data, so the carry is typed like it (e.g. varying over the data
    # axis inside jax.shard_map)
    zeros = jnp.zeros_like(xp[:, 0, :self.hidden])
    carry = jax.tree.map(lambda z: zeros, cell_cls.initial_carry(1, 1))
    carry, outputs = scan(hidden=self.hidden, name='cell')(carry, (xp, step_mask))
    return outputs, carry


class Recurrent(nn.Module):
  """Stacked (optionally bidirectional) recurrent backbone: ``rnn``, ``lstm`` or ``gru``.

  Reads sequences ``[B, T, F]`` with an optional mask ``[B, T]`` (True = real step).
  ``Features.per_position`` holds every step's output of the top layer (``[B, T, H]``, or
  ``[B, T, 2H]`` when bidirectional); ``Features.summary`` is the top layer's final hidden state
  (both directions concatenated); ``Features.state`` holds every layer's final carry.
  """
  cell: str = 'lstm'
  hidden: int = 128
  layers: int = 1
  bidirectional: bool = False
  dropout: float = 0.0
  unroll: int = 1

  input_kind = 'sequence'

  @property
  def causal(self) -> bool:
    return not self.bidirectional

  config_rules = {'cell': {'choices': tuple(CELLS)}, 'dropout': {'max': 1.0}}

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, *, train: bool = False) -> Features:
    if self.cell not in CELLS:
      raise ValueError(f'unknown recurrent cell {self.cell!r}; choose one of {sorted(CELLS)}')
    output = CELLS[self.cell].output
    states = []
    h = x
    for layer in range(self.layers):
      if layer > 0 and self.dropout > 0:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
      fwd, fwd_carry = RecurrentLayer(self.cell, self.hidden, unroll=self.unroll,
                                      name=f'layer{layer}_fwd')(h, mask)
      if self.bidirectional:
        bwd, bwd_carry = RecurrentLayer(self.cell, self.hidden, reverse=True, unroll=self.unroll,
                                        name=f'layer{layer}_bwd')(h, mask)
        h = jnp.concatenate([fwd, bwd], axis=-1)
        states.append((fwd_carry, bwd_carry))
        summary = jnp.concatenate([output(fwd_carry), output(bwd_carry)], axis=-1)
      else:
        h = fwd
        states.append(fwd_carry)
        summary = output(fwd_carry)
    return Features(per_position=h, summary=summary, state=tuple(states))


def analytic_param_count(cell: str, features: int, hidden: int, layers: int = 1,
                         bidirectional: bool = False) -> int:
  """Parameter count of a `Recurrent` backbone from the formulas in the module docstring."""
  directions = 2 if bidirectional else 1
  total = 0
  f = features
  for _ in range(layers):
    gates = CELLS[cell].gates
    per_direction = gates * (f * hidden + hidden * hidden + hidden)
    if cell == 'gru':
      per_direction += hidden
    total += directions * per_direction
    f = directions * hidden
  return total


def gate_names(cell: str) -> Sequence[str]:
  """The gates (and candidate) each cell computes, in parameter order."""
  return {'rnn': ('tanh',), 'lstm': ('input', 'forget', 'candidate', 'output'),
          'gru': ('reset', 'update', 'candidate')}[cell]


__all__ = ['SimpleRNNCell', 'LSTMCell', 'GRUCell', 'RecurrentLayer', 'Recurrent', 'CELLS',
           'analytic_param_count', 'gate_names']
