"""The speed options (mixed precision, prefetching) keep results right; the benchmark
code runs on tiny shapes (the speed itself is measured by `comparenets.analysis.bench`, never in
a test)."""

import json
import os
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from comparenets import parallel as parallels
from comparenets import train
from comparenets.analysis import bench
from comparenets.analysis import structure
from comparenets.models import recurrent
from tests.test_train import _config, _run_steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench(*args, timeout=600):
  """The benchmark's command line, as a user runs it (absl flags, checked while parsed)."""
  return subprocess.run([sys.executable, '-m', 'comparenets.analysis.bench', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize('model', ['lstm', 'cnn'])
def test_bfloat16_compute_keeps_float32_parameters_and_tracks_float32(model):
  f32_params, f32_history, f32_eval = _run_steps(_config(model), steps=6)
  params, history, evals = _run_steps(_config(model, compute_dtype='bfloat16'), steps=6)
  assert {a.dtype for a in jax.tree.leaves(params.params)} == {np.dtype('float32')}
  assert {a.dtype for a in jax.tree.leaves(params.opt_state)
          if hasattr(a, 'dtype') and a.ndim} == {np.dtype('float32')}
  losses = np.array([h['loss'] for h in history])
  f32_losses = np.array([h['loss'] for h in f32_history])
  # bf16 has 8 bits of mantissa: the same run to about 1%, not bit for bit
  np.testing.assert_allclose(losses, f32_losses, rtol=0.03)
  assert not np.allclose(losses, f32_losses, rtol=1e-6, atol=0)  # bf16 really was used
  assert abs(evals['accuracy'] - f32_eval['accuracy']) < 0.05


def test_bfloat16_activations_reach_the_matrix_products():
  setup = train.build_setup(_config('lstm', compute_dtype='bfloat16'))
  step, _ = train.make_step_fns(setup)
  splits = setup.task.splits()
  batch = {k: v[:8] for k, v in splits['train'].items()}
  state = train.create_state(setup, jax.random.PRNGKey(0), batch)
  jaxpr = jax.make_jaxpr(step)(state, batch, jax.random.PRNGKey(1))
  dots = [e for e in _all_eqns(jaxpr.jaxpr) if e.primitive.name == 'dot_general']
  assert dots and all(e.invars[0].aval.dtype == jnp.bfloat16 for e in dots)


def _all_eqns(jaxpr):
  for eqn in jaxpr.eqns:
    yield eqn
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      yield from _all_eqns(sub)


def _wait_for(condition, timeout=10.0):
  deadline = time.monotonic() + timeout
  while not condition() and time.monotonic() < deadline:
    time.sleep(0.005)
  return condition()


def test_prefetch_yields_in_order_ahead_of_use_and_stops_when_closed():
  made = []

  def produce(step):
    made.append(step)
    return step * 10

  batches = parallels.prefetch(produce, range(1, 100), depth=2)
  assert next(batches) == 10
  assert _wait_for(lambda: len(made) == 3)  # the next two are made while step 1 is in use
  time.sleep(0.05)
  assert made == [1, 2, 3]  # and no further ahead
  assert next(batches) == 20
  batches.close()
  time.sleep(0.05)
  assert len(made) <= 4
  assert list(parallels.prefetch(lambda s: s, range(5))) == [0, 1, 2, 3, 4]


def test_prefetch_raises_the_producers_error_in_the_loop():
  def produce(step):
    if step == 2:
      raise ValueError('batch 2 is unreadable')
    return step

  batches = parallels.prefetch(produce, range(5))
  assert next(batches) == 0 and next(batches) == 1
  with pytest.raises(ValueError, match='batch 2 is unreadable'):
    next(batches)


@pytest.mark.parametrize('cell', ['rnn', 'lstm', 'gru'])
def test_flax_and_torch_references_hold_our_parameters(cell):
  """The benchmark's references compute what our layer computes (so the speed comparison is
  of the same function)."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 7, 4)), jnp.float32)
  layer = recurrent.RecurrentLayer(cell, 6)
  variables = layer.init(jax.random.PRNGKey(0), x)
  variables = jax.tree.map(lambda a: a + 0.1, variables)  # nonzero biases everywhere
  want = np.asarray(layer.apply(variables, x)[0])
  got = nn.RNN(bench.FLAX_CELLS[cell](6)).apply(bench.flax_params(cell, variables['params']), x)
  np.testing.assert_allclose(got, want, atol=1e-5)
  torch = pytest.importorskip('torch')
  torch_out = bench.torch_layer(torch, cell, variables['params'])(torch.from_numpy(
      np.asarray(x)))[0]
  np.testing.assert_allclose(torch_out.detach().numpy(), want, atol=1e-5)


def test_benchmarks_run_on_tiny_shapes(tmp_path):
  out = tmp_path / 'bench.jsonl'
  proc = _bench('--tiny', '--repeats=1', '--min_time=0', f'--out={out}',
                '--cases=matmul,recurrent,cnn,tcn,compile')
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = [json.loads(line) for line in out.read_text().splitlines()]
  assert proc.stdout.count('\n') == len(records)
  cases = {r['case'] for r in records}
  assert cases == {'environment', 'matmul', 'recurrent', 'cnn', 'tcn', 'compile'}
  tcn = {r['impl']: r for r in records if r['case'] == 'tcn'}
  assert set(tcn) == {'lstm', 'conv', 'im2col'}
  assert [r['impl'] for r in tcn.values() if r.get('auto')] == [
      bench.conv_lib.conv_impl_for('cpu')]
  for impl in ('conv', 'im2col'):  # the same function at the LSTM's parameter count
    assert tcn[impl]['max_rel_grad_diff'] < 1e-5
    assert abs(tcn[impl]['backbone_params'] / tcn['lstm']['backbone_params'] - 1) < 0.01
    assert tcn[impl]['over_lstm'] == pytest.approx(
        tcn[impl]['time_steps_per_s'] / tcn['lstm']['time_steps_per_s'])
  rec = [r for r in records if r['case'] == 'recurrent']
  impls = {r['impl'] for r in rec}
  assert {'comparenets_fused', 'comparenets_scan', 'flax', 'flax_LSTMCell'} <= impls
  assert all(r['max_abs_diff'] < (5e-2 if r['impl'].endswith('bf16') else 1e-5) for r in rec)
  assert any(r['impl'] == 'comparenets_fused_bf16' for r in rec)
  assert all(r['tokens_per_s'] > 0 and r['median_s'] > 0 for r in rec)
  fused = [r for r in rec if r['impl'] == 'comparenets_fused']
  assert all(r['speedup'] == 1.0 for r in fused) and len(fused) == 6  # 3 cells x 2 modes
  assert {r['impl'] for r in records if r['case'] == 'cnn'} >= {'comparenets',
                                                                'comparenets_bf16'}
  cnn = next(r for r in records if r['case'] == 'cnn' and r['impl'] == 'comparenets')
  assert cnn['step_gflop'] > 0 and 0 < cnn['fraction_of_matmul_peak']


def test_reads_case_runs_on_mock_data_and_asks_for_prepared_data_otherwise():
  records = list(bench.reads_cases('', 1, 0.0, tiny=True))
  assert {(r['source'], r['impl']) for r in records} == {
      (s, i) for s in ('mnist_train_batches', 'imdb_train_whole')
      for i in ('batched', 'one_at_a_time')}
  assert all(r['same_records'] and r['examples_per_s'] > 0 for r in records)
  assert all(r['speedup'] == 1.0 for r in records if r['impl'] == 'one_at_a_time')
  (skipped,) = bench.reads_cases('', 1, 0.0, tiny=False)
  assert 'needs --data_dir=DIR with mnist and imdb_reviews' in skipped['skipped']


def test_equal_param_channels_is_the_nearest_width():
  kwargs = dict(structure.DEFAULT_KWARGS['tcn'])
  # 56 channels: 66,584 parameters against the structure LSTM's 66,560 (55: 64,240)
  assert bench.equal_param_channels(66_560, kwargs) == 56
  assert bench.equal_param_channels(64_240, kwargs) == 55


def test_benchmark_loop_case_runs(capsys):
  (record,) = bench.loop_cases('digits.py', 'model=rnn', 12, 1, steps_per_dispatch=3)
  assert record['steps_per_dispatch'] == 3
  assert record['loop_examples_per_s'] > 0 and record['bare_step_examples_per_s'] > 0
  assert record['fraction_of_bare'] == pytest.approx(
      record['loop_examples_per_s'] / record['bare_step_examples_per_s'])


def test_unknown_benchmark_case_is_a_clear_error():
  proc = _bench('--cases=gpu_magic', timeout=120)
  assert proc.returncode != 0
  assert 'unknown case(s) gpu_magic; choose from matmul' in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_the_compile_log_records_every_compilation_of_a_process_and_its_children(tmp_path):
  """scripts/bench/compile_log: a process started with it on PYTHONPATH logs its compilations
  (a subprocess's too), with the test's name; the summary adds them up."""
  log = tmp_path / 'compiles.log'
  tool = os.path.join(ROOT, 'scripts', 'bench', 'compile_log')
  child = 'import jax; jax.jit(lambda x: x * 3)(2.0)'
  parent = ('import subprocess, sys, jax; jax.jit(lambda x: x + 1)(1.0); '
            f'subprocess.run([sys.executable, "-c", {child!r}], check=True)')
  env = dict(os.environ, PYTHONPATH=tool, COMPILE_LOG=str(log), COMPARENETS_COMPILATION_CACHE='',
             PYTEST_CURRENT_TEST='tests/x.py::test_y (call)')
  subprocess.run([sys.executable, '-c', parent], check=True, env=env, timeout=120)
  rows = [line.split('\t') for line in log.read_text().splitlines()]
  compiled = [r for r in rows if r[1] == '/jax/core/compile/backend_compile_duration']
  assert len({r[0] for r in compiled}) == 2  # both processes
  assert [r[2] for r in compiled].count('jit(<lambda>)') == 2
  assert all(r[4] == 'tests/x.py::test_y (call)' and float(r[3]) > 0 for r in compiled)
  summary = subprocess.run([sys.executable, os.path.join(tool, 'summarize.py'), str(log)],
                           capture_output=True, text=True, check=True).stdout
  total = sum(float(r[3]) for r in compiled)
  assert f'{total:7.1f}      2  /jax/core/compile/backend_compile_duration' in summary
  assert 'tests/x.py::test_y' in summary and 'tests/x.py' in summary
