"""Conv stack and TCN: parameter counts, pooling, causality and receptive fields."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from comparenets import models
from comparenets.errors import ConfigError
from comparenets.models import conv


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


def _causal_conv_reference(x, kernel, bias, dilation):
  """NumPy: y[b, t] = bias + sum_j x[b, t - (k - 1 - j) d] @ kernel[j], zero before step 0."""
  k = kernel.shape[0]
  y = np.broadcast_to(bias, x.shape[:2] + bias.shape).astype(np.float64)
  for j in range(k):
    shift = (k - 1 - j) * dilation
    shifted = np.zeros_like(x, dtype=np.float64)
    shifted[:, shift:] = x[:, :x.shape[1] - shift]
    y = y + shifted @ kernel[j]
  return y


@pytest.mark.parametrize('dilation', [1, 3])
def test_causal_conv_forms_equal_a_numpy_reference(dilation):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 11, 3)).astype(np.float32)
  want = None
  for impl in conv.CONV_IMPLS[1:]:
    layer = conv.CausalConv1D(5, 3, dilation, impl)
    variables = layer.init(jax.random.PRNGKey(0), x)
    variables = jax.tree.map(lambda a: a + 0.1, variables)  # a nonzero bias too
    p = variables['params']['conv']
    if want is None:
      want = _causal_conv_reference(x, np.asarray(p['kernel']), np.asarray(p['bias']), dilation)
    np.testing.assert_allclose(layer.apply(variables, x), want, atol=1e-5)


def test_tcn_forms_share_parameters_outputs_and_gradients():
  """Every conv_impl: the same parameter tree and initial values as today's nn.Conv layer (so
  checkpoints and counts carry over), the same outputs and gradients to 1e-5."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 20, 3))
  mask = jnp.arange(20)[None] < jnp.array([[20], [13]])
  forms = {impl: models.build('tcn', channels=4, levels=3, conv_impl=impl)
           for impl in conv.CONV_IMPLS}
  variables = forms['conv'].init(jax.random.PRNGKey(1), x, mask)

  def loss(model):
    return lambda v, x: jnp.sum(jnp.sin(model.apply(v, x, mask).per_position))

  want = jax.grad(loss(forms['conv']), argnums=(0, 1))(variables, x)
  for impl, model in forms.items():
    mine = model.init(jax.random.PRNGKey(1), x, mask)
    assert jax.tree.structure(mine) == jax.tree.structure(variables)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(variables)):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(model.apply(variables, x, mask).per_position,
                               forms['conv'].apply(variables, x, mask).per_position, atol=1e-5)
    got = jax.grad(loss(model), argnums=(0, 1))(variables, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      # float32 sums over every step in another order: 1e-5 of the gradient's largest entry
      np.testing.assert_allclose(a, b, atol=1e-5 * float(np.abs(b).max()))


def _has_convolution(model, x):
  variables = model.init(jax.random.PRNGKey(0), x)
  return 'conv_general_dilated' in str(jax.make_jaxpr(model.apply)(variables, x))


def test_tcn_auto_form_is_the_backends_and_a_named_form_is_kept():
  x = jnp.ones((1, 8, 4))  # as many features as channels: no 1x1 downsample convolution
  auto = conv.conv_impl_for(jax.default_backend())
  assert auto in conv.CONV_IMPLS[1:]
  assert _has_convolution(models.build('tcn', channels=4, levels=1), x) == (auto == 'conv')
  assert _has_convolution(models.build('tcn', channels=4, levels=1, conv_impl='conv'), x)
  assert not _has_convolution(models.build('tcn', channels=4, levels=1, conv_impl='im2col'), x)
  assert conv.conv_impl_for('gpu') == 'im2col'
  with pytest.raises(ConfigError, match='conv_impl'):
    models.build('tcn', conv_impl='winograd')
