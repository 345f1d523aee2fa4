"""The recurrent backbones against their formulas, a NumPy reference and Flax's own cells."""

import flax.linen as nn
import jax
import jax.extend
import jax.test_util
import jax.numpy as jnp
import numpy as np
import pytest

from comparenets import models
from comparenets.models import recurrent

CELLS = ('rnn', 'lstm', 'gru')


def _init(name, x, mask=None, **kw):
  model = models.build(name, **kw)
  variables = model.init(jax.random.PRNGKey(1), x, mask)
  return model, variables


def _count(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


@pytest.mark.parametrize('cell', CELLS)
@pytest.mark.parametrize('features,hidden,layers,bidirectional',
                         [(1, 8, 1, False), (8, 16, 2, False), (5, 7, 3, True)])
def test_param_count_equals_formula(cell, features, hidden, layers, bidirectional):
  x = jnp.ones((2, 4, features))
  _, variables = _init(cell, x, hidden=hidden, layers=layers, bidirectional=bidirectional)
  expected = recurrent.analytic_param_count(cell, features, hidden, layers, bidirectional)
  assert _count(variables['params']) == expected
  # hand-worked for one layer: LSTM 4(FH+HH+H), GRU 3(FH+HH+H)+H, RNN FH+HH+H
  if (features, hidden, layers) == (1, 8, 1):
    assert expected == {'rnn': 8 + 64 + 8, 'lstm': 4 * 80, 'gru': 3 * 80 + 8}[cell]


@pytest.mark.parametrize('cell', CELLS)
def test_param_count_does_not_depend_on_sequence_length(cell):
  counts = {t: _count(_init(cell, jnp.ones((1, t, 3)), hidden=8)[1]) for t in (4, 64, 1024)}
  assert len(set(counts.values())) == 1, counts


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _reference_layer(cell, p, x, mask, reverse=False):
  """Step-by-step NumPy evaluation of one direction of one layer (no scan, no hoisting)."""
  w_x, b = np.asarray(p['input']['kernel']), np.asarray(p['input']['bias'])
  w_h = np.asarray(p['cell']['hidden'])
  hidden = w_h.shape[0]
  batch, steps, _ = x.shape
  h = np.zeros((batch, hidden))
  c = np.zeros((batch, hidden))
  out = np.zeros((batch, steps, hidden))
  order = range(steps - 1, -1, -1) if reverse else range(steps)
  for t in order:
    xp = x[:, t] @ w_x + b
    if cell == 'rnn':
      new_h, new_c = np.tanh(xp + h @ w_h), c
    elif cell == 'lstm':
      i, f, g, o = np.split(xp + h @ w_h, 4, axis=-1)
      new_c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
      new_h = _sigmoid(o) * np.tanh(new_c)
    else:
      xr, xz, xn = np.split(xp, 3, axis=-1)
      hr, hz, hn = np.split(h @ w_h, 3, axis=-1)
      r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
      n = np.tanh(xn + r * (hn + np.asarray(p['cell']['hidden_bias'])))
      new_h, new_c = (1 - z) * n + z * h, c
    m = mask[:, t, None]
    h = np.where(m, new_h, h)
    c = np.where(m, new_c, c)
    out[:, t] = np.where(m, h, 0.0)
  return out, h


def _reference(cell, params, x, mask, layers, bidirectional):
  h = x
  for layer in range(layers):
    fwd, h_f = _reference_layer(cell, params[f'layer{layer}_fwd'], h, mask)
    if bidirectional:
      bwd, h_b = _reference_layer(cell, params[f'layer{layer}_bwd'], h, mask, reverse=True)
      h, summary = np.concatenate([fwd, bwd], -1), np.concatenate([h_f, h_b], -1)
    else:
      h, summary = fwd, h_f
  return h, summary


@pytest.mark.parametrize('cell', CELLS)
@pytest.mark.parametrize('layers,bidirectional', [(1, False), (2, True)])
def test_scan_layer_equals_step_by_step_reference(cell, layers, bidirectional):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 7, 5)).astype(np.float32)
  mask = np.ones((3, 7), bool)
  model, variables = _init(cell, x, hidden=6, layers=layers, bidirectional=bidirectional)
  # non-trivial biases so that every parameter matters
  variables = jax.tree.map(lambda a: a + 0.1 * rng.normal(size=a.shape).astype(np.float32),
                           variables)
  feats = model.apply(variables, x)
  ref_seq, ref_summary = _reference(cell, variables['params'], x.astype(np.float64), mask,
                                    layers, bidirectional)
  np.testing.assert_allclose(feats.per_position, ref_seq, atol=1e-5)
  np.testing.assert_allclose(feats.summary, ref_summary, atol=1e-5)


def test_lstm_equals_flax_lstm_cell():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 9, 4)).astype(np.float32)
  model, variables = _init('lstm', x, hidden=5)
  p = variables['params']['layer0_fwd']
  w_x, b, w_h = p['input']['kernel'], p['input']['bias'], p['cell']['hidden']
  gates = ('i', 'f', 'g', 'o')
  flax_params = {}
  for k, g in enumerate(gates):
    cols = slice(5 * k, 5 * (k + 1))
    flax_params['i' + g] = {'kernel': w_x[:, cols]}
    flax_params['h' + g] = {'kernel': w_h[:, cols], 'bias': b[cols]}
  rnn = nn.RNN(nn.LSTMCell(5), return_carry=True)
  (c, h), ys = rnn.apply({'params': {'cell': flax_params}}, x)
  feats = model.apply(variables, x)
  np.testing.assert_allclose(feats.per_position, ys, atol=1e-5)
  np.testing.assert_allclose(feats.state[0][0], c, atol=1e-5)
  np.testing.assert_allclose(feats.summary, h, atol=1e-5)


def test_gru_equals_flax_gru_cell():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 9, 4)).astype(np.float32)
  model, variables = _init('gru', x, hidden=5)
  variables = jax.tree.map(lambda a: a + 0.1 * rng.normal(size=a.shape).astype(np.float32),
                           variables)
  p = variables['params']['layer0_fwd']
  w_x, b, w_h = p['input']['kernel'], p['input']['bias'], p['cell']['hidden']
  cols = [slice(5 * k, 5 * (k + 1)) for k in range(3)]
  flax_params = {
      'ir': {'kernel': w_x[:, cols[0]], 'bias': b[cols[0]]},
      'iz': {'kernel': w_x[:, cols[1]], 'bias': b[cols[1]]},
      'in': {'kernel': w_x[:, cols[2]], 'bias': b[cols[2]]},
      'hr': {'kernel': w_h[:, cols[0]]},
      'hz': {'kernel': w_h[:, cols[1]]},
      'hn': {'kernel': w_h[:, cols[2]], 'bias': p['cell']['hidden_bias']},
  }
  ys = nn.RNN(nn.GRUCell(5)).apply({'params': {'cell': flax_params}}, x)
  np.testing.assert_allclose(model.apply(variables, x).per_position, ys, atol=1e-5)


@pytest.mark.parametrize('cell', CELLS)
@pytest.mark.parametrize('bidirectional', [False, True])
def test_masked_padding_changes_nothing(cell, bidirectional):
  rng = np.random.default_rng(3)
  lengths = np.array([5, 2, 7])
  t_max = 11
  x = rng.normal(size=(3, t_max, 4)).astype(np.float32)  # garbage beyond each length
  mask = np.arange(t_max)[None] < lengths[:, None]
  model, variables = _init(cell, x, mask, hidden=6, layers=2, bidirectional=bidirectional)
  padded = model.apply(variables, x, mask)
  for b, length in enumerate(lengths):
    alone = model.apply(variables, x[b:b + 1, :length])
    np.testing.assert_allclose(padded.per_position[b, :length], alone.per_position[0],
                               atol=1e-5)
    np.testing.assert_allclose(padded.summary[b], alone.summary[0], atol=1e-5)
    np.testing.assert_array_equal(padded.per_position[b, length:], 0.0)


def _scan_eqns(jaxpr):
  """(scan equations, equations outside any scan) of a closed jaxpr, recursively."""
  scans, outside = [], []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'scan':
      scans.append(eqn)
    else:
      outside.append(eqn)
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        s, o = _scan_eqns(sub)
        scans += s
        outside += o
  return scans, outside


@pytest.mark.parametrize('cell', CELLS)
def test_input_projection_is_outside_the_scan(cell):
  x = jnp.ones((2, 16, 3))
  model, variables = _init(cell, x, hidden=8, impl='scan')
  jaxpr = jax.make_jaxpr(model.apply)(variables, x).jaxpr
  scans, outside = _scan_eqns(jaxpr)
  assert len(scans) == 1
  body = scans[0].params['jaxpr'].jaxpr
  dots_inside = [e for e in body.eqns if e.primitive.name == 'dot_general']
  dots_outside = [e for e in outside if e.primitive.name == 'dot_general']
  assert len(dots_inside) == 1  # only h @ W_h
  assert dots_inside[0].invars[1].aval.shape[0] == 8  # a hidden-sized contraction
  assert len(dots_outside) == 1  # x @ W_x for all steps at once
  assert dots_outside[0].outvars[0].aval.shape == (2, 16, recurrent.CELLS[cell].gates * 8)


@pytest.mark.parametrize('cell', CELLS)
def test_program_size_does_not_grow_with_sequence_length(cell):
  sizes = []
  for t in (8, 512):
    x = jnp.ones((2, t, 3))
    model, variables = _init(cell, x, hidden=8)
    sizes.append(len(str(jax.make_jaxpr(model.apply)(variables, x))))
  assert abs(sizes[0] - sizes[1]) < 20  # only the printed shapes differ


def _loss(layer, mask):
  """A loss that reads every output and the final carry, with distinct weights per element."""

  def loss(variables, x):
    outputs, carry = layer.apply(variables, x, mask)
    return (jnp.sum(jnp.sin(outputs)) +
            sum(jnp.sum(jnp.cos(c) * c) for c in jax.tree.leaves(carry)))
  return loss


@pytest.mark.parametrize('cell', CELLS)
@pytest.mark.parametrize('reverse', [False, True])
@pytest.mark.parametrize('masked', [False, True])
def test_fused_layer_equals_autodiff_of_the_scan(cell, reverse, masked):
  """The hand-written backward against JAX's own differentiation of the nn.scan layer."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 9, 4)).astype(np.float32))
  mask = jnp.asarray(np.arange(9)[None] < np.array([9, 4, 6])[:, None]) if masked else None
  scan = recurrent.RecurrentLayer(cell, 5, reverse=reverse, impl='scan')
  fused = recurrent.RecurrentLayer(cell, 5, reverse=reverse, impl='fused')
  variables = scan.init(jax.random.PRNGKey(1), x, mask)
  assert (jax.tree.structure(fused.init(jax.random.PRNGKey(1), x, mask)) ==
          jax.tree.structure(variables))
  for a, b in zip(jax.tree.leaves(scan.apply(variables, x, mask)),
                  jax.tree.leaves(fused.apply(variables, x, mask))):
    np.testing.assert_allclose(a, b, atol=1e-6)
  want = jax.grad(_loss(scan, mask), argnums=(0, 1))(variables, x)
  got = jax.grad(_loss(fused, mask), argnums=(0, 1))(variables, x)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  if masked:  # padding gets no gradient
    np.testing.assert_array_equal(got[1][1, 4:], 0.0)


@pytest.mark.parametrize('cell', CELLS)
def test_fused_gradient_matches_finite_differences(cell):
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 3)))
  layer = recurrent.RecurrentLayer(cell, 4)
  variables = layer.init(jax.random.PRNGKey(2), x)
  jax.test_util.check_grads(_loss(layer, None), (variables, x), order=1, modes=['rev'],
                            atol=2e-2, rtol=2e-2, eps=1e-2)


@pytest.mark.parametrize('cell', CELLS)
def test_fused_backward_keeps_weight_products_out_of_the_loop(cell):
  """Forward loop: x_t W_x and h W_h (the LSTM: one product, [h, x_t] [W_h; W_x]); backward
  loop: one product by W_h^T; everything else (weight, bias and input gradients) is computed
  once over all steps."""
  x = jnp.ones((2, 16, 3))
  layer = recurrent.RecurrentLayer(cell, 8)
  variables = layer.init(jax.random.PRNGKey(0), x)
  jaxpr = jax.make_jaxpr(jax.grad(_loss(layer, None), argnums=(0, 1)))(variables, x).jaxpr
  scans, outside = _scan_eqns(jaxpr)
  inside = [[e for e in s.params['jaxpr'].jaxpr.eqns if e.primitive.name == 'dot_general']
            for s in scans]
  assert [s.params['reverse'] for s in scans] == [False, True]  # forward, then backward
  forward, backward = inside
  if cell == 'lstm':
    assert len(forward) == 1
    assert forward[0].invars[1].aval.shape == (8 + 3, 4 * 8)  # [W_h; W_x]
  else:
    assert len(forward) == 2
  assert len(backward) == 1
  assert backward[0].outvars[0].aval.shape == (2, 8)  # dz @ W_h^T: the carry's gradient
  # the backward loop writes one pre-activation gradient per step, nothing more (the GRU's
  # hidden-side one is made from it after the loop): one [T, B, gates H] array among its
  # results, stacked outputs or carried buffers alike
  loop = scans[1]
  stacked = [v.aval.shape for v in loop.outvars if v.aval.shape[:1] == (16,)]
  assert stacked == [(16, 2, recurrent.CELLS[cell].gates * 8)]
  big = [e for e in outside if e.primitive.name == 'dot_general'
         and 2 * 16 in e.invars[0].aval.shape + e.invars[1].aval.shape]
  assert big, 'the weight gradients should be products over all 2 x 16 steps'


@pytest.mark.parametrize('cell', ['lstm', 'gru'])
def test_backward_writes_over_the_saved_gates(cell):
  """The backward loop carries the forward's saved gate values ([T, B, gates H]) and writes
  each step's pre-activation gradient over that step's: no second buffer of that size."""
  x = jnp.ones((2, 16, 3))
  layer = recurrent.RecurrentLayer(cell, 8)
  variables = layer.init(jax.random.PRNGKey(0), x)
  jaxpr = jax.make_jaxpr(jax.grad(_loss(layer, None), argnums=(0, 1)))(variables, x).jaxpr
  scans, outside = _scan_eqns(jaxpr)
  big = (16, 2, recurrent.CELLS[cell].gates * 8)
  forward, backward = scans
  assert (forward.params['reverse'], backward.params['reverse']) == (False, True)
  n_consts, n_carry = backward.params['num_consts'], backward.params['num_carry']
  carried = [v for v in backward.invars[n_consts:n_consts + n_carry] if v.aval.shape == big]
  assert len(carried) == 1 and carried[0] in forward.outvars  # the saved gates themselves
  assert not [e for e in outside for v in e.outvars if v.aval.shape == big
              and e.primitive.name == 'broadcast_in_dim']  # no fresh (zero) buffer


def test_unknown_cell_field_is_a_clear_error():
  with pytest.raises(ValueError, match="model 'lstm' has no field 'kernel_size'; its fields"):
    models.build('lstm', kernel_size=3)
  with pytest.raises(ValueError, match="unknown model 'transformer'; choose one of cnn, cnn3d, cnn_gru"):
    models.build('transformer')


def test_gate_names_follow_the_cells():
  assert recurrent.gate_names('lstm') == ('input', 'forget', 'candidate', 'output')
  assert recurrent.gate_names('gru') == ('reset', 'update', 'candidate')
  assert recurrent.CELLS['gru'].gates == 3 and recurrent.CELLS['lstm'].gates == 4
