"""Recurrent backbones: simple (Elman) RNN, LSTM and GRU.

Every cell splits its work the same way: the input-to-hidden product ``x_t @ W_x + b`` (the
layer's parameter ``input``) and the hidden-to-hidden product ``h_{t-1} @ W_h`` with the gate
math (the cell's parameter ``hidden``). ``xp`` below is the input product of one step.

Gate equations:

* simple RNN: ``h = tanh(xp + h @ W_h)``
* LSTM (gate order i, f, g, o):
  ``i, f, g, o = split(xp + h @ W_h)``; ``c = sig(f) c + sig(i) tanh(g)``; ``h = sig(o) tanh(c)``
* GRU (gate order r, z, n; the reset gate acts on the hidden product, as in cuDNN, PyTorch and
  ``flax.linen.GRUCell``):
  ``r = sig(xp_r + h W_hr)``, ``z = sig(xp_z + h W_hz)``, ``n = tanh(xp_n + r (h W_hn + b_hn))``,
  ``h = (1 - z) n + z h``

Two implementations run the same cells over the same parameters (``RecurrentLayer.impl``):
``'scan'``, an `nn.scan` of the cell with the input product of all steps computed before the
loop, differentiated by JAX; and ``'fused'`` (the default), a `jax.lax.scan` of the same step
with a hand-written backward pass whose weight gradients are one matrix product over all steps
(`_fused_scan`; its LSTM makes both products of a step as one, ``[h, x_t] @ [W_h; W_x]``).
Tests hold the two equal to 1e-5 and to finite differences.

Parameter counts with F input features and H hidden units:
simple RNN ``F H + H H + H``; LSTM ``4 (F H + H H + H)``; GRU ``3 (F H + H H + H) + H``.
None of them depends on the number of time steps.

Masking: where ``mask[b, t]`` is False the carry is left unchanged and the step's output is
zero, so padded steps change nothing, in either direction.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

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


def _sigmoid_grad(y):
  """d sigmoid / dz written with the sigmoid's output ``y``."""
  return y * (1.0 - y)


def _tanh_grad(y):
  return 1.0 - y * y


class _Cell(nn.Module):
  """One recurrent cell, written twice over the same parameters.

  ``__call__`` is one time step for `nn.scan` (``carry, (xp, mask) -> carry, output``), which JAX
  differentiates by itself: the readable reference. ``step`` / ``step_grad`` are the same step
  and its hand-written backward for the fused layer (`_fused_scan`); ``step`` also returns
  what ``step_grad`` needs. Inside ``step`` the carry is always a tuple whose last element is
  the hidden state (the output), and what it saves is a tuple of ``[B, ...]`` arrays.
  """
  hidden: int
  gates = 1
  bias_init = staticmethod(nn.initializers.zeros_init())
  # True where the first value ``step`` saves is ``[B, gates H]`` (xp's shape) and nothing reads
  # it after ``step_grad`` has: the backward then writes each step's ``dxp`` over it in place
  # instead of into a fresh ``[T, B, gates H]`` buffer (`_fused_scan_bwd`)
  overwrite_saved = False
  # ``(carry, z) -> (new carry, saved)`` from the whole pre-activation ``z = xp + h @ W_h``:
  # the fused layer then makes z with one product ``[h, x_t] @ [W_h; W_x]`` per step instead
  # of two (LSTM; faster there, not for the simple RNN's narrower product). None: ``step``.
  from_preactivation = None

  def hidden_weights(self) -> tuple[Array, ...]:
    raise NotImplementedError

  @staticmethod
  def initial_carry(zeros: Array):
    return zeros

  @staticmethod
  def to_tuple(carry) -> tuple[Array, ...]:
    return (carry,)

  @staticmethod
  def from_tuple(carry: tuple[Array, ...]):
    return carry[0]

  @staticmethod
  def output(carry):
    return carry

  def __call__(self, carry, inputs):
    xp, mask = inputs
    new, _ = self.step(self.hidden_weights(), self.to_tuple(carry), xp)
    return _masked(mask, self.from_tuple(new), carry)

  @staticmethod
  def hidden_preactivation_grad(saved: tuple[Array, ...], dxp: Array) -> Array | None:
    """The gradient of the hidden-side pre-activation (``h @ W_h``) of every step from the
    input-side one (``dxp``, ``[T, B, gates H]``) and the saved values the backward loop leaves
    (stacked over steps; all but the first where ``overwrite_saved``), computed after the loop
    for all steps at once; None where the two are the same (RNN, LSTM)."""
    del saved, dxp
    return None

  @staticmethod
  def weight_grads(h_prev: Array, dpre: Array) -> tuple[Array, ...]:
    """Gradients of ``hidden_weights`` from every step's previous hidden state and the
    hidden-side pre-activation gradient (``[T B, H]``, ``[T B, gates H]``), for cells whose
    ``hidden_preactivation_grad`` returns one (GRU): one matrix product over all steps."""
    raise NotImplementedError


class SimpleRNNCell(_Cell):
  """Elman cell: one tanh layer over the input projection and the previous hidden state."""
  gates = 1

  def setup(self):
    self.w_h = self.param('hidden', nn.initializers.orthogonal(), (self.hidden, self.hidden))

  def hidden_weights(self):
    return (self.w_h,)

  @staticmethod
  def step(weights, carry, xp):
    (w_h,), (h,) = weights, carry
    return (jnp.tanh(xp + h @ w_h),), ()

  @staticmethod
  def step_grad(weights, saved, prev, new, dnew):
    del saved, prev
    (w_h,), (new_h,), (dh,) = weights, new, dnew
    dz = dh * _tanh_grad(new_h)
    return (dz @ w_h.T,), dz


class LSTMCell(_Cell):
  """LSTM cell: input, forget and output gates plus the candidate; carry is ``(c, h)``."""
  gates = 4
  bias_init = staticmethod(_lstm_bias_init)
  overwrite_saved = True  # the gates are read by step_grad only

  def setup(self):
    self.w_h = self.param('hidden', nn.initializers.orthogonal(column_axis=-1),
                          (self.hidden, 4 * self.hidden))

  def hidden_weights(self):
    return (self.w_h,)

  @staticmethod
  def initial_carry(zeros):
    return (zeros, zeros)

  @staticmethod
  def to_tuple(carry):
    return carry

  @staticmethod
  def from_tuple(carry):
    return carry

  @staticmethod
  def output(carry):
    return carry[1]

  @staticmethod
  def step(weights, carry, xp):
    (w_h,), (_, h) = weights, carry
    return LSTMCell.from_preactivation(carry, xp + h @ w_h)

  @staticmethod
  def from_preactivation(carry, z):
    c, _ = carry
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
    new_c = f * c + i * g
    return (new_c, o * jnp.tanh(new_c)), (jnp.concatenate([i, f, g, o], axis=-1),)

  @staticmethod
  def step_grad(weights, saved, prev, new, dnew):
    (w_h,), (c, _), (new_c, _), (dc, dh) = weights, prev, new, dnew
    i, f, g, o = jnp.split(saved[0], 4, axis=-1)
    tc = jnp.tanh(new_c)
    dc = dc + dh * o * _tanh_grad(tc)
    dz = jnp.concatenate([dc * g * _sigmoid_grad(i), dc * c * _sigmoid_grad(f),
                          dc * i * _tanh_grad(g), dh * tc * _sigmoid_grad(o)], axis=-1)
    return (dc * f, dz @ w_h.T), dz


class GRUCell(_Cell):
  """GRU cell: reset and update gates plus the candidate; carry is ``h``."""
  gates = 3
  # saves [q, z, n] (read by step_grad only, so overwritten by dxp) and r (needed after the
  # loop by hidden_preactivation_grad)
  overwrite_saved = True

  def setup(self):
    self.w_h = self.param('hidden', nn.initializers.orthogonal(column_axis=-1),
                          (self.hidden, 3 * self.hidden))
    self.b_hn = self.param('hidden_bias', nn.initializers.zeros_init(), (self.hidden,))

  def hidden_weights(self):
    return (self.w_h, self.b_hn)

  @staticmethod
  def step(weights, carry, xp):
    (w_h, b_hn), (h,) = weights, carry
    xr, xz, xn = jnp.split(xp, 3, axis=-1)
    hr, hz, hn = jnp.split(h @ w_h, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    q = hn + b_hn
    n = jnp.tanh(xn + r * q)
    return (n + z * (h - n),), (jnp.concatenate([q, z, n], axis=-1), r)

  @staticmethod
  def step_grad(weights, saved, prev, new, dnew):
    del new
    (w_h, _), (h,), (dh,) = weights, prev, dnew
    (qzn, r) = saved
    q, z, n = jnp.split(qzn, 3, axis=-1)
    dn = dh * (1.0 - z) * _tanh_grad(n)
    dr = dn * q * _sigmoid_grad(r)
    dz = dh * (h - n) * _sigmoid_grad(z)
    dhp = jnp.concatenate([dr, dz, dn * r], axis=-1)
    # only dxp leaves the loop: dhp differs from it by r in the candidate's third, which
    # hidden_preactivation_grad applies to every step at once after the loop
    return (dhp @ w_h.T + dh * z,), jnp.concatenate([dr, dz, dn], axis=-1)

  @staticmethod
  def hidden_preactivation_grad(saved, dxp):
    hidden = dxp.shape[-1] // 3
    r = saved[-1]
    return jnp.concatenate([dxp[..., :2 * hidden], dxp[..., 2 * hidden:] * r], axis=-1)

  @staticmethod
  def weight_grads(h_prev, dpre):
    hidden = h_prev.shape[-1]
    return (h_prev.T @ dpre, dpre[:, 2 * hidden:].sum(0))


def _masked(mask, new_carry, old_carry):
  """Returns (carry, output) for one step, freezing the carry where ``mask`` is False."""
  if mask is not None:
    new_carry = jax.tree.map(lambda n, o: jnp.where(mask, n, o), new_carry, old_carry)
  out = new_carry[1] if isinstance(new_carry, tuple) else new_carry
  if mask is not None:
    out = jnp.where(mask, out, jnp.zeros_like(out))
  return new_carry, out


CELLS = {'rnn': SimpleRNNCell, 'lstm': LSTMCell, 'gru': GRUCell}


def _fused_forward(cell, unroll, w_x, b, weights, xs, m, carry0, save):
  """The time loop of `_fused_scan`: ``(final carry, outputs)``; with ``save`` the outputs are
  every step's carry and the cell's saved values, which the backward pass needs."""

  if cell.from_preactivation is not None:  # one product per step: [h, x_t] [W_h; W_x]
    # h first: its small terms summed before the input's larger ones, the output's float32
    # error stays that of the two products (x_t first doubled it against a float64 reference)
    w = jnp.concatenate([weights[0], w_x])
    cell_step = lambda carry, x_t: cell.from_preactivation(
        carry, jnp.concatenate([carry[-1], x_t], axis=-1) @ w + b)
  else:
    cell_step = lambda carry, x_t: cell.step(weights, carry, x_t @ w_x + b)

  def step(carry, inputs):
    x_t, m_t = inputs
    new, saved = cell_step(carry, x_t)
    if m_t is not None:  # frozen where m_t == 0
      new = tuple(o + m_t * (n - o) for n, o in zip(new, carry))
    if save:
      return new, (new, saved)
    return new, (new[-1] if m_t is None else m_t * new[-1])

  return jax.lax.scan(step, carry0, (xs, m), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused_scan(cell, unroll, w_x, b, weights, xs, m, carry0):
  """One direction of one layer, time-major: ``xs [T, B, F]``, ``m [T, B, 1]`` (1 = real step)
  or None (every step real).

  Returns ``(outputs [T, B, H], final carry)`` exactly as `nn.scan` over ``cell`` would, with a
  backward pass written out: the loop back in time carries only the gradient of the carry and
  does one ``[B, gH] x [gH, H]`` product per step; the weight gradients, the input gradient and
  the bias gradient are single matrix products over all ``T B`` steps after the loop, instead of
  ``T`` small products accumulated inside it as autodiff of the scan does. The forward keeps
  every step's carry and the cell's gate activations for the backward, nothing more; the
  backward writes every step's ``dxp`` over the gate activations where the cell allows
  (``overwrite_saved``), so training holds one ``[T, B, gH]`` array, not two.

  Measured on the CPU against the forms this replaced (BUILD_NOTES.md, issue 19): computing the
  input product of all steps before the loop as one ``[T B, F] x [F, gH]`` product (as the
  ``'scan'`` form does) made the forward slower, not faster, and so did unroll > 1.
  """
  carry, outs = _fused_forward(cell, unroll, w_x, b, weights, xs, m, carry0, save=False)
  return outs, carry


def _fused_scan_fwd(cell, unroll, w_x, b, weights, xs, m, carry0):
  carry, (carries, saved) = _fused_forward(cell, unroll, w_x, b, weights, xs, m, carry0,
                                           save=True)
  # where a step is masked its carry is the previous one and its output zero
  outs = carries[-1] if m is None else m * carries[-1]
  return (outs, carry), (w_x, weights, xs, m, carry0, carries, saved)


def _fused_scan_bwd(cell, unroll, residuals, cotangents):
  w_x, weights, xs, m, carry0, carries, saved = residuals
  douts, dcarry = cotangents
  steps = xs.shape[0]
  at = lambda a, t: jax.lax.dynamic_index_in_dim(a, t, keepdims=False)
  # every step's dxp goes into one [T, B, gates H] buffer carried through the loop: the saved
  # gates themselves where the cell allows (each step's are read before its dxp is written),
  # else a fresh one. In place, a step reads its saved gates from the loop's carry, put there
  # by the step before from the buffer as updated: the buffer's only reader is then the update
  # itself and XLA copies nothing (a read beside the update, e.g. fused into the carry's
  # gradient, makes it copy the whole buffer every step). XLA loses this with unroll > 1.
  in_place = cell.overwrite_saved and unroll == 1

  def grad(dcarry, saved_t, t):
    """One step back: (the previous carry's gradient, dxp)."""
    # the previous carry indexed here rather than a shifted copy of every carry
    prev_t = tuple(jnp.where(t == 0, c0, at(c, jnp.maximum(t - 1, 0)))
                   for c0, c in zip(carry0, carries))
    new_t = tuple(at(c, t) for c in carries)
    dnew = dcarry[:-1] + (dcarry[-1] + at(douts, t),)
    if m is not None:  # a masked step passes the carry's gradient through untouched
      m_t = at(m, t)
      dnew = tuple(m_t * d for d in dnew)
    dprev, dxp = cell.step_grad(weights, saved_t, prev_t, new_t, dnew)
    if m is not None:
      dprev = tuple(p + (1.0 - m_t) * d for p, d in zip(dprev, dcarry))
    return dprev, dxp

  if in_place:
    buf, kept = saved[0], saved[1:]
    first = at(buf, steps - 1)
  else:
    dxp_type = jax.eval_shape(lambda: grad(tuple(dcarry), tuple(s[0] for s in saved), 0))[1]
    buf, kept = jnp.zeros((steps,) + dxp_type.shape, dxp_type.dtype), saved
    first = ()

  def step(state, t):
    dcarry, buf, first = state
    saved_t = ((first,) if in_place else ()) + tuple(at(s, t) for s in kept)
    dprev, dxp = grad(dcarry, saved_t, t)
    buf = jax.lax.dynamic_update_index_in_dim(buf, dxp, t, 0)
    if in_place:
      first = at(buf, jnp.maximum(t - 1, 0))
    return (dprev, buf, first), None

  (dcarry0, dxp, _), _ = jax.lax.scan(step, (tuple(dcarry), buf, first), jnp.arange(steps),
                                      reverse=True, unroll=unroll)
  dhp = cell.hidden_preactivation_grad(kept, dxp)
  features = xs.shape[-1]
  flat = lambda a: a.reshape(-1, a.shape[-1])
  h_prev = jnp.concatenate([carry0[-1][None], carries[-1][:-1]])
  if dhp is None:  # one pre-activation gradient for both products: one [F+H] x [T B] x [gH] GEMM
    dw = flat(jnp.concatenate([xs, h_prev], axis=-1)).T @ flat(dxp)
    dw_x, dweights = dw[:features], (dw[features:],)
  else:
    dw_x = flat(xs).T @ flat(dxp)
    dweights = cell.weight_grads(flat(h_prev), flat(dhp))
  db = dxp.sum((0, 1))
  dxs = dxp @ w_x.T
  dm = None if m is None else jnp.zeros_like(m)
  return dw_x, db, dweights, dxs, dm, dcarry0


_fused_scan.defvjp(_fused_scan_fwd, _fused_scan_bwd)


class _InputWeights(nn.Module):
  """The input projection's kernel and bias (named and initialised as ``nn.Dense``'s)."""
  features: int
  bias_init: Callable

  @nn.compact
  def __call__(self, in_features: int):
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (in_features, self.features))
    bias = self.param('bias', self.bias_init, (self.features,))
    return kernel, bias


IMPLS = ('fused', 'scan')


class RecurrentLayer(nn.Module):
  """One direction of one recurrent layer over a batch-major sequence ``[B, T, F]``.

  Returns ``(outputs [B, T, H], final_carry)``. Two implementations over the same parameters
  (``input`` = the input projection, ``cell`` = the hidden-side weights):

  * ``impl='scan'``: `nn.scan` of the cell, the input projection of all steps computed before
    the loop as one product, differentiated by JAX;
  * ``impl='fused'`` (default): the same step in a `jax.lax.scan` with a hand-written backward
    (`_fused_scan`), faster to train (see BUILD_NOTES.md for the measurements).

  Either way the compiled program does not grow with T.
  """
  cell: str
  hidden: int
  reverse: bool = False
  unroll: int = 1
  impl: str = 'fused'

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None):
    cell_cls = CELLS[self.cell]
    w_x, b = _InputWeights(cell_cls.gates * self.hidden, cell_cls.bias_init,
                           name='input')(x.shape[-1])
    # zeros derived from the data, so the carry is typed like it (e.g. varying over the data
    # axis inside jax.shard_map)
    zeros = jnp.zeros_like(x[:, 0, :1]) * jnp.zeros((self.hidden,), x.dtype)
    if self.impl == 'scan':
      xp = x @ w_x + b
      step_mask = None if mask is None else mask.astype(bool)[..., None]
      scan = nn.scan(cell_cls, variable_broadcast='params', split_rngs={'params': False},
                     in_axes=1, out_axes=1, reverse=self.reverse, unroll=self.unroll)
      carry, outputs = scan(hidden=self.hidden, name='cell')(cell_cls.initial_carry(zeros),
                                                             (xp, step_mask))
      return outputs, carry
    if self.impl != 'fused':
      raise ValueError(f'unknown recurrent impl {self.impl!r}; choose one of {IMPLS}')
    weights = cell_cls(self.hidden, name='cell').hidden_weights()
    xs = jnp.swapaxes(x, 0, 1)
    m = None if mask is None else jnp.swapaxes(mask, 0, 1).astype(x.dtype)[..., None]
    if self.reverse:
      xs = xs[::-1]
      m = None if m is None else m[::-1]
    carry0 = cell_cls.to_tuple(cell_cls.initial_carry(zeros))
    outs, carry = _fused_scan(cell_cls, self.unroll, w_x, b, weights, xs, m, carry0)
    if self.reverse:
      outs = outs[::-1]
    return jnp.swapaxes(outs, 0, 1), cell_cls.from_tuple(carry)


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
  impl: str = 'fused'

  input_kind = 'sequence'

  @property
  def causal(self) -> bool:
    return not self.bidirectional

  config_rules = {'cell': {'choices': tuple(CELLS)}, 'dropout': {'max': 1.0},
                  'impl': {'choices': IMPLS}}

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
      fwd, fwd_carry = RecurrentLayer(self.cell, self.hidden, unroll=self.unroll, impl=self.impl,
                                      name=f'layer{layer}_fwd')(h, mask)
      if self.bidirectional:
        bwd, bwd_carry = RecurrentLayer(self.cell, self.hidden, reverse=True, unroll=self.unroll,
                                        impl=self.impl,
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
