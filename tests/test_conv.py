"""Conv stack and TCN: parameter counts, pooling, causality and receptive fields."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from comparenets import models


def _count(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def test_conv_stack_params_and_shapes():
  model = models.build('cnn', widths=(4, 8), kernel_size=3, pool='max')
  x = jnp.ones((2, 8, 8, 1))
  variables = model.init(jax.random.PRNGKey(0), x)
  # 3x3x1x4 + 4 and 3x3x4x8 + 8
  assert _count(variables['params']) == (9 * 4 + 4) + (9 * 4 * 8 + 8)
  feats = model.apply(variables, x)
  assert feats.per_position.shape == (2, 2, 2, 8)
  assert feats.summary.shape == (2, 32)


@pytest.mark.parametrize('pool', ['max', 'avg'])
def test_pooling_takes_max_or_mean_of_each_window(pool):
  # one conv with identity weights and no activation effect on positive inputs
  model = models.build('cnn', widths=(1,), kernel_size=1, pool=pool, activation='relu')
  x = jax.random.uniform(jax.random.PRNGKey(0), (1, 4, 4, 1))
  variables = {'params': {'conv0_0': {'kernel': jnp.ones((1, 1, 1, 1)),
                                      'bias': jnp.zeros((1,))}}}
  out = np.asarray(model.apply(variables, x).per_position)[0, :, :, 0]
  windows = np.asarray(x)[0, :, :, 0].reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)
  expected = windows.max(-1) if pool == 'max' else windows.mean(-1)
  np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_conv_stack_receptive_field_matches_gradients():
  # average pooling passes gradient to every position of a window (max pooling to one only)
  model = models.build('cnn', widths=(4, 4), kernel_size=3, pool='avg', activation='tanh')
  x = jax.random.normal(jax.random.PRNGKey(1), (1, 32, 32, 1))
  variables = model.init(jax.random.PRNGKey(0), x)
  grad = jax.grad(lambda x: model.apply(variables, x).per_position[0, 4, 4].sum())(x)
  rows = np.flatnonzero(np.abs(np.asarray(grad)[0, :, :, 0]).sum(1) > 0)
  # 3x3 conv, 2x2 pool, 3x3 conv, 2x2 pool: 1 + 2 + 1 + 2*2 + 1*2 = 10
  assert model.receptive_field() == 10
  assert rows.max() - rows.min() + 1 == model.receptive_field()


def test_conv_stack_refuses_images_too_small_for_its_pooling():
  model = models.build('cnn', widths=(4, 4, 4, 4))
  with pytest.raises(ValueError, match='needs images of at least 16x16; this input is 8x8'):
    model.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)))


@pytest.mark.parametrize('levels,kernel', [(1, 2), (3, 3), (4, 2)])
def test_tcn_is_causal_and_has_its_reported_receptive_field(levels, kernel):
  model = models.build('tcn', channels=4, levels=levels, kernel_size=kernel, activation='tanh')
  steps = 64
  x = jax.random.normal(jax.random.PRNGKey(0), (1, steps, 2))
  variables = model.init(jax.random.PRNGKey(1), x)
  jac = jax.jacobian(lambda x: model.apply(variables, x).per_position[0, :, 0])(x)
  depends = np.abs(np.asarray(jac)[:, 0]).sum(-1) > 0  # [output step, input step]
  rf = model.receptive_field()
  assert rf == 1 + 2 * (kernel - 1) * sum(2 ** i for i in range(levels))
  for t in range(steps):
    seen = np.flatnonzero(depends[t])
    assert seen.max() == t  # never a later step
    assert seen.min() == max(0, t - rf + 1)  # exactly the receptive field


def test_tcn_summary_is_the_last_real_step_and_ignores_padding():
  model = models.build('tcn', channels=4, levels=2)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 10, 3))
  lengths = np.array([6, 10])
  mask = np.arange(10)[None] < lengths[:, None]
  variables = model.init(jax.random.PRNGKey(1), x, mask)
  padded = model.apply(variables, x, mask)
  for b, length in enumerate(lengths):
    alone = model.apply(variables, x[b:b + 1, :length])
    np.testing.assert_allclose(padded.summary[b], alone.summary[0], atol=1e-6)
    np.testing.assert_allclose(padded.per_position[b, :length], alone.per_position[0],
                               atol=1e-6)
