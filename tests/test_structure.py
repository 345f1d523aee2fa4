"""Structure metrics against analytic counts and a fully unrolled program."""

import jax
import jax.numpy as jnp
import pytest

from comparenets import models
from comparenets.analysis import structure
from comparenets.models import recurrent


def test_dense_layer_flops_are_two_m_n_k():
  flops, _ = structure.compiled_flops(lambda w, x: x @ w, jnp.ones((32, 64)), jnp.ones((8, 32)))
  assert flops == 2 * 8 * 32 * 64


@pytest.mark.parametrize('cell', ['rnn', 'lstm', 'gru'])
def test_recurrent_flops_count_every_time_step(cell):
  steps, features, hidden = 16, 8, 32
  x = jnp.ones((1, steps, features))
  counted = structure.xla_flops(cell, {'hidden': hidden}, x)
  unrolled = structure.xla_flops(cell, {'hidden': hidden, 'unroll': steps}, x)
  # compiled with unroll=T there is no loop left, and XLA's count is the whole sequence
  assert counted['forward'] == pytest.approx(unrolled['forward'], rel=0.02)
  # the two matrix products of every step, 2 (F + H) G H per step, are most of it
  gates = recurrent.CELLS[cell].gates
  matmuls = 2 * steps * (features + hidden) * gates * hidden
  assert matmuls < counted['forward'] < 1.35 * matmuls


def test_naive_xla_count_misses_the_loop():
  x = jnp.ones((1, 64, 8))
  model = structure.build('lstm', {'hidden': 32})
  variables = model.init(jax.random.PRNGKey(0), x)
  naive, _ = structure.compiled_flops(lambda v, x: model.apply(v, x), variables, x)
  full = structure.xla_flops('lstm', {'hidden': 32}, x)['forward']
  # the naive count holds one step of the loop; the other 63 steps' hidden products are missing
  assert full - naive > 63 * 2 * 32 * 4 * 32
  assert full > 4 * naive


def test_analyze_reports_params_receptive_field_and_memory():
  out = structure.analyze('tcn', {'channels': 8, 'levels': 3}, length=32, batch=4, repeats=1)
  assert out['receptive_field'] == 1 + 2 * 2 * (1 + 2 + 4)
  assert out['params'] > out['backbone_params'] > 0
  assert out['train_step_temp_bytes'] > 0 and out['time_steps_per_s'] > 0
  lstm = structure.analyze('lstm', {'hidden': 16}, length=8, batch=4, repeats=1)
  assert lstm['backbone_params'] == recurrent.analytic_param_count('lstm', 1, 16)
  assert lstm['flops_train_per_example'] > 2 * lstm['flops_forward_per_example']


def test_measured_models_and_sizes_come_from_the_registry():
  # the sequence backbones, in display order, each at its own defaults: the sizes the report's
  # structure rows were measured at when they were a table of their own
  assert structure.sequence_models() == ['tcn', 'rnn', 'lstm', 'gru']
  assert list(structure.DEFAULT_KWARGS) == models.ordered()
  assert structure.DEFAULT_KWARGS['tcn']['channels'] == 64
  assert structure.DEFAULT_KWARGS['tcn']['levels'] == 4
  assert structure.DEFAULT_KWARGS['cnn']['widths'] == (32, 64)
  assert structure.DEFAULT_KWARGS['cnn_lstm']['widths'] == (16, 32)
  assert all(structure.DEFAULT_KWARGS[m]['hidden'] == 128 for m in ('rnn', 'lstm', 'gru'))
  assert structure.build('gru', structure.DEFAULT_KWARGS['gru']).backbone == \
      structure.build('gru', {'hidden': 128}).backbone
