"""The claims audit's verdict logic on small synthetic runs and structure rows (no training)."""

import json
import os

import numpy as np
import pytest

from comparenets import models
from comparenets.analysis import claims
from comparenets.analysis import invariance
from comparenets.errors import ConfigError

Evidence = claims.Evidence


def run(workdir, model, metric='accuracy', value=0.5, params=1000):
  return {'workdir': workdir, 'model': model, 'target_metric': metric,
          'test': {metric: value}, 'params': {'total': params}}


def row(model, length, params, rate=1000.0, **extra):
  return {'model': model, 'length': length, 'backbone_params': params, 'batch': 32,
          'flops_train_per_example': 1e6, 'train_step_s': 0.01, 'time_steps_per_s': rate,
          **extra}


def write_curve(root, workdir, losses):
  path = os.path.join(root, workdir)
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    for i, loss in enumerate(losses):
      f.write(json.dumps({'step': 10 * (i + 1), 'split': 'train', 'loss': loss}) + '\n')
    f.write(json.dumps({'step': 10 * len(losses), 'split': 'validation', 'loss': 0.0}) + '\n')


# 2.3.3: parameters vs sequence length.

def test_params_constant_over_lengths_refutes_exponential_growth():
  v = claims.params_grow_with_steps(Evidence(structure=[
      row('lstm', 16, 500), row('lstm', 64, 500), row('tcn', 16, 7)]))
  assert v.verdict == claims.REFUTED
  assert 'lstm: T=16: 500, T=64: 500' in v.evidence and 'tcn' not in v.evidence


def test_params_changing_with_length_supports_growth():
  v = claims.params_grow_with_steps(Evidence(structure=[row('gru', 16, 500),
                                                               row('gru', 64, 2000)]))
  assert v.verdict == claims.SUPPORTED and 'T=64: 2,000' in v.evidence
  assert 'for gru' in v.evidence


def test_params_at_one_length_or_none_is_not_measured():
  v = claims.params_grow_with_steps(Evidence(structure=[row('rnn', 8, 300)]))
  assert v.verdict == claims.NOT_MEASURED and 'rnn: T=8: 300' in v.evidence
  assert claims.params_grow_with_steps(Evidence(structure=[row('tcn', 8, 1)])).verdict == \
      claims.NOT_MEASURED


# 2.2: gates.

def test_gru_has_two_gates_with_structure_numbers():
  structure = [row('gru', 16, 300), row('lstm', 16, 400), row('gru', 32, 300)]
  v = claims.gru_only_update_gate(Evidence(structure=structure))
  assert v.verdict == claims.REFUTED
  assert 'reset, update gates and a candidate' in v.evidence
  assert 'T=16: params 300 vs 400' in v.evidence and 'T=32' not in v.evidence  # no lstm at 32
  assert 'no structure rows' in claims.gru_only_update_gate(Evidence()).evidence


def test_lstm_gates_depends():
  v = claims.lstm_gates(Evidence())
  assert v.verdict == claims.DEPENDS and 'forget' in v.evidence and 'output' in v.evidence


# 2.2: a simple RNN sees only the previous step.

def test_rnn_solving_adding_refutes_previous_step_only():
  runs = [run('adding_T50/rnn/seed0', 'rnn', 'mse', 0.01),
          run('adding_T50/rnn/seed1', 'rnn', 'mse', 0.03),
          run('adding_T200/rnn', 'rnn', 'mse', 0.17), run('adding_T200/lstm', 'lstm', 'mse', 0.001)]
  v = claims.simple_rnn_previous_step_only(Evidence(runs))
  assert v.verdict == claims.REFUTED
  assert 'adding_T50 (adding_T50/rnn/seed0, adding_T50/rnn/seed1): rnn test mse 0.02 (mean of 2)' \
      in v.evidence
  assert 'adding_T200 (adding_T200/rnn): rnn test mse 0.17' in v.evidence  # both lengths kept


def test_rnn_solving_copy_memory_refutes_previous_step_only():
  runs = [run('copy_memory_T30/rnn', 'rnn', 'recall_accuracy', 0.9)]
  assert claims.simple_rnn_previous_step_only(Evidence(runs)).verdict == claims.REFUTED


def test_rnn_at_chance_depends():
  runs = [run('adding_T50/rnn', 'rnn', 'mse', 0.16),
          run('copy_memory_T30/rnn', 'rnn', 'recall_accuracy', 0.13),
          run('copy_memory_T30/lstm', 'lstm', 'recall_accuracy', 1.0)]
  v = claims.simple_rnn_previous_step_only(Evidence(runs))
  assert v.verdict == claims.DEPENDS
  assert 'copy_memory_T30 (copy_memory_T30/lstm): lstm test recall_accuracy 1' in v.evidence


def test_no_rnn_memory_run_is_not_measured():
  runs = [run('adding_T50/lstm', 'lstm', 'mse', 0.001), run('adding2/rnn', 'rnn', 'mse', 0.0)]
  assert claims.simple_rnn_previous_step_only(Evidence(runs)).verdict == claims.NOT_MEASURED


# 2.3.1: convergence.

def test_steps_to_converge():
  records = lambda losses: [{'step': 10 * (i + 1), 'loss': l} for i, l in enumerate(losses)]
  assert claims.steps_to_converge(records([2.0, 1.0, 0.2, 0.1])) == 30  # 0.2 <= 0.1 + 0.19
  assert claims.steps_to_converge(records([1.0, 2.0, 3.0])) == float('inf')  # diverged


def converging_at(k, length=10):
  """A learning curve (logged every 10 steps) 90 % of the way down at step 10 k."""
  return [2.0] * (k - 1) + [0.1] * (length - k + 1)


DIVERGING = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]


def write_seeds(root, base, curves):
  """One run per curve, ``base/seed<N>``; returns the runs."""
  out = []
  for seed, curve in enumerate(curves):
    write_curve(root, f'{base}/seed{seed}', curve)
    out.append(run(f'{base}/seed{seed}', base.split('/')[1]))
  return out


@pytest.mark.parametrize('cnn_at, verdict', [
    ((2, 2, 3), claims.SUPPORTED),  # 23.3 against the lstm's 53.3: p 0.003
    ((8, 8, 9), claims.REFUTED),  # 83.3: as far the other way
    (None, claims.REFUTED),  # a diverging cnn converges never, not first, at any spread
    ((4,), claims.NOT_DISTINGUISHABLE),  # one seed: no spread to weigh the difference by
])
def test_convergence_verdict_follows_which_family_is_first(tmp_path, cnn_at, verdict):
  cnn = [DIVERGING] * 3 if cnn_at is None else [converging_at(k) for k in cnn_at]
  runs = write_seeds(tmp_path, 'digits/cnn', cnn)
  runs += write_seeds(tmp_path, 'digits/lstm', [converging_at(k) for k in (5, 5, 6)])
  v = claims.rnns_converge_with_difficulty(Evidence(runs, root=str(tmp_path)))
  assert v.verdict == verdict
  assert 'digits: steps to 90 % of the loss drop' in v.evidence
  first = 1 if verdict == claims.SUPPORTED else 0
  assert f'converged first in {first} of 1 tasks' in v.evidence
  if verdict == claims.NOT_DISTINGUISHABLE:
    assert '(cnn vs lstm: not distinguishable (one seed of cnn))' in v.evidence
  elif cnn_at is None:
    assert 'beyond any spread (every seed of one never converged' in v.evidence
  else:
    assert "(cnn vs lstm: distinguishable (Welch's t-test over 3 and 3 seeds: p = 0.0031, " \
        'under 0.05))' in v.evidence


def test_convergence_with_the_same_means_and_a_larger_spread_is_not_distinguishable(tmp_path):
  narrow = write_seeds(tmp_path / 'narrow', 'digits/cnn', [converging_at(k) for k in (3, 4, 5)])
  narrow += write_seeds(tmp_path / 'narrow', 'digits/lstm',
                        [converging_at(k) for k in (6, 7, 8)])
  wide = write_seeds(tmp_path / 'wide', 'digits/cnn', [converging_at(k) for k in (2, 3, 7)])
  wide += write_seeds(tmp_path / 'wide', 'digits/lstm', [converging_at(k) for k in (4, 7, 10)])
  # means 40 and 70 steps both times; standard deviations 10 and 10, then 26 and 30
  v = claims.rnns_converge_with_difficulty(Evidence(narrow, root=str(tmp_path / 'narrow')))
  assert v.verdict == claims.SUPPORTED and 'p = 0.021' in v.evidence
  v = claims.rnns_converge_with_difficulty(Evidence(wide, root=str(tmp_path / 'wide')))
  assert v.verdict == claims.NOT_DISTINGUISHABLE and 'not distinguishable (Welch' in v.evidence
  assert 'in 1 the difference is not beyond the seed spread' in v.evidence


def test_convergence_mixed_over_tasks_depends_and_uses_the_seed_median(tmp_path):
  runs = write_seeds(tmp_path, 'digits/cnn', [converging_at(k) for k in (2, 2, 3)])
  runs += write_seeds(tmp_path, 'digits/lstm', [converging_at(k) for k in (5, 5, 6)])
  # the tcn's median 20 against the gru's 30, of one seed: not distinguishable
  runs += write_seeds(tmp_path, 'adding_T50/tcn', [converging_at(k) for k in (3, 2, 2)])
  runs += write_seeds(tmp_path, 'adding_T50/gru', [converging_at(3)])
  runs += write_seeds(tmp_path, 'forecasting/gru', [converging_at(k) for k in (2, 2, 3)])
  runs += write_seeds(tmp_path, 'forecasting/tcn', [converging_at(k) for k in (5, 5, 6)])
  v = claims.rnns_converge_with_difficulty(Evidence(runs, root=str(tmp_path)))
  assert v.verdict == claims.DEPENDS
  assert 'adding_T50: steps to 90 % of the loss drop tcn 20, gru 30' in v.evidence
  assert 'forecasting: steps to 90 % of the loss drop gru 20, tcn 50' in v.evidence
  assert ('converged first in 1 of 3 tasks, the fastest recurrent one in 1, and in 1 the '
          'difference is not beyond the seed spread') in v.evidence


def test_convergence_without_curves_or_rivals_is_not_measured(tmp_path):
  assert claims.rnns_converge_with_difficulty(Evidence([run('digits/cnn', 'cnn')],
                                                      root=str(tmp_path))).verdict == \
      claims.NOT_MEASURED
  write_curve(tmp_path, 'digits/lstm', [2.0, 0.1])
  write_curve(tmp_path, 'digits/gru', [2.0, 0.1])
  v = claims.rnns_converge_with_difficulty(Evidence(
      [run('digits/lstm', 'lstm'), run('digits/gru', 'gru')], root=str(tmp_path)))
  assert v.verdict == claims.NOT_MEASURED and 'lstm 20' in v.evidence  # no conv rival


# 2.3.2: speed.

def test_speed_depends_with_the_tcn_tally():
  structure = [row('tcn', 16, 1, 9000.0), row('lstm', 16, 1, 3000.0),
               row('tcn', 64, 1, 1000.0), row('gru', 64, 1, 2000.0)]
  v = claims.rnns_train_slower(Evidence(structure=structure))
  assert v.verdict == claims.DEPENDS
  assert 'T=16: tcn 9e+03, lstm 3e+03' in v.evidence
  assert 'faster than every recurrent model at 1 of 2 lengths' in v.evidence
  assert claims.rnns_train_slower(Evidence()).verdict == claims.NOT_MEASURED


def test_speed_states_the_fraction_of_a_given_matmul_peak():
  structure = [row('tcn', 16, 1, achieved_flops_per_s=9e9), row('lstm', 16, 1),
               row('tcn', 256, 1, achieved_flops_per_s=25e9),
               row('lstm', 256, 1, achieved_flops_per_s=2e9),
               row('gru', 256, 1)]  # no achieved_flops_per_s: 1e6 * 32 / 0.01 = 3.2e9
  peak = {'gflops': 100.0, 'n': 1024, 'device': 'gpu NVIDIA H200'}
  v = claims.rnns_train_slower(Evidence(structure=structure, peak=peak))
  assert v.verdict == claims.DEPENDS
  assert 'at the longest T=256' in v.evidence and '1024x1024 matmul peak of 100 GFLOP/s' in \
      v.evidence
  assert 'tcn 25.0%, lstm 2.0%, gru 3.2%' in v.evidence
  assert 'The TCN uses more of it than every recurrent model.' in v.evidence
  assert 'Measured on gpu NVIDIA H200.' in v.evidence and 'CPU only' not in v.evidence
  v = claims.rnns_train_slower(Evidence(structure=structure[:2], peak=dict(peak, device='cpu')))
  assert 'T=16' in v.evidence and 'tcn 9.0%, lstm 3.2%' in v.evidence
  assert 'CPU only' in v.evidence
  assert 'matmul' not in claims.rnns_train_slower(Evidence(structure=structure)).evidence  # no peak
  by_claim = {v.claim: v for v in claims.audit([], structure, '', peak)}  # audit passes it
  assert 'tcn 25.0%' in by_claim[claims.rnns_train_slower.claim].evidence


# 2.3.3: CNN parameters.

def test_cnn_params_depends_on_every_task_with_a_cnn_and_an_rnn():
  runs = [run('digits/cnn', 'cnn', value=0.9, params=53002),
          run('digits/lstm/seed0', 'lstm', value=0.8, params=70000),
          run('digits/lstm/seed1', 'lstm', value=0.9, params=70000),
          run('mnist/cnn', 'cnn', params=5), run('mnist/gru', 'gru', params=6),
          run('adding_T50/tcn', 'tcn', 'mse', 0.1)]
  v = claims.cnn_fewer_params(Evidence(runs))
  assert v.verdict == claims.DEPENDS
  assert 'digits: cnn 53,002 (test accuracy 0.900), lstm 70,000 (test accuracy 0.850)' \
      in v.evidence
  assert 'mnist: cnn 5' in v.evidence and 'adding' not in v.evidence
  assert claims.cnn_fewer_params(Evidence(runs[1:3])).verdict == claims.NOT_MEASURED


# 3.1: fixed-size input, from the model code.

def test_cnn_fixed_size_depends_on_the_head():
  v = claims.cnn_needs_fixed_size(Evidence())
  assert v.section == '3.1' and v.verdict == claims.DEPENDS
  assert "global_pool='flatten' + dense head: 12: ScopeParamShapeError, " \
         "16: ScopeParamShapeError" in v.evidence
  assert "global_pool='avg': 12: ok, 16: ok" in v.evidence
  assert 'rnn over T steps: 12: ok, 16: ok, 100: ok' in v.evidence


def test_fixed_size_verdicts():
  ok, no = {12: 'ok', 16: 'ok'}, {12: 'ValueError', 16: 'ValueError'}
  assert claims.fixed_size_verdict(ok, ok, ok, 8)[0] == claims.REFUTED
  assert claims.fixed_size_verdict(no, no, ok, 8)[0] == claims.SUPPORTED
  assert claims.fixed_size_verdict(no, ok, ok, 8)[0] == claims.DEPENDS
  assert claims.fixed_size_verdict({12: 'ok', 16: 'ValueError'}, ok, ok, 8)[0] == claims.DEPENDS


# 2.1: a CNN is invariant to size and position.

def test_shift_moves_pixels_and_fills_zeros():
  image = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)  # 1 2 3 / 4 5 6 / 7 8 9
  show = lambda x: x[0, ..., 0].tolist()
  assert show(invariance.shift(image, 1, 0)) == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]  # down
  assert show(invariance.shift(image, -1, 0)) == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]  # up
  assert show(invariance.shift(image, 0, 1)) == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]  # right
  assert show(invariance.shift(image, 0, -1)) == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]  # left
  assert show(invariance.shift(image, 0, 0)) == show(image)


def test_area_resize_and_centring():
  np.testing.assert_allclose(invariance.area_matrix(4, 2), [[.5, .5, 0, 0], [0, 0, .5, .5]])
  # 8 -> 6: each output cell covers 4/3 input cells
  np.testing.assert_allclose(invariance.area_matrix(8, 6)[:2],
                             [[.75, .25, 0, 0, 0, 0, 0, 0], [0, .5, .5, 0, 0, 0, 0, 0]])
  ones = np.ones((2, 8, 8, 1), np.float32)
  out = invariance.rescale_centred(ones, 6)
  assert out.shape == ones.shape and out.dtype == np.float32
  np.testing.assert_allclose(out[:, 1:7, 1:7], 1.0, rtol=1e-6)  # brightness kept, centred
  assert out.sum() == pytest.approx(2 * 36)  # the 1-pixel border is 0
  image = np.zeros((1, 4, 4, 1), np.float32)
  image[0, :2, :2] = 1.0  # the top-left quarter lit
  np.testing.assert_allclose(invariance.rescale_centred(image, 2)[0, ..., 0],
                             [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def _acc(original, shifted, rescaled, spread=None):
  """One run's accuracies, or with ``spread`` three seeds' (the transformed ones at -spread,
  0 and +spread around the value, so each drop has that standard deviation)."""
  if spread is None:
    return {'original': original, 'shifted': shifted, 'rescaled': rescaled}
  seeds = lambda v: [v - spread, v, v + spread]
  return {'original': [original] * 3, 'shifted': seeds(shifted), 'rescaled': seeds(rescaled)}


@pytest.mark.parametrize('cnn, spread, verdict', [
    ((0.99, 0.98, 0.97), 0.01, claims.SUPPORTED),  # drops 0.01 / 0.02: smaller than both
    ((0.99, 0.50, 0.30), 0.01, claims.REFUTED),  # 0.49 / 0.69: larger under both
    ((0.99, 0.90, 0.30), 0.01, claims.DEPENDS),  # better shifted, worse rescaled
    ((0.99, 0.79, 0.59), 0.01, claims.NOT_DISTINGUISHABLE),  # ties the lstm (0.20 / 0.40)
    ((0.99, 0.98, 0.97), None, claims.NOT_DISTINGUISHABLE),  # the first, of one seed
    ((0.99, 0.98, 0.97), 0.2, claims.NOT_DISTINGUISHABLE),  # the first, a larger spread
])
def test_invariance_verdict(cnn, spread, verdict):
  acc = {'cnn': _acc(*cnn, spread), 'lstm': _acc(0.98, 0.78, 0.58, spread),
         'tcn': _acc(0.97, 0.47, 0.37, spread)}
  got, evidence = claims.invariance_verdict(acc)
  assert got == verdict
  assert evidence.index('; tcn ') < evidence.index('; lstm ')  # conv families first
  assert 'lstm 0.980, shifted 1 px 0.780 (drop +0.200), shrunk to 6x6 0.580 (drop +0.400)' \
      in evidence
  assert 'smallest other: lstm 0.200' in evidence
  assert ('not invariant here' in evidence) == (cnn[0] - min(cnn[1:]) > 0.05)  # by the drop
  if spread is None:
    assert evidence.startswith('test accuracy, original') and \
        'against it: not distinguishable (one seed each)' in evidence
  else:
    assert evidence.startswith('test accuracy, mean over seeds') and "Welch's t-test" in evidence


def test_invariance_without_a_cnn_or_a_rival_is_not_measured():
  assert claims.invariance_verdict({'cnn': _acc(1, 1, 1)})[0] == claims.NOT_MEASURED
  assert claims.invariance_verdict({'gru': _acc(1, 1, 1), 'rnn': _acc(1, 1, 1)})[0] == \
      claims.NOT_MEASURED
  # runs without a cnn and a rival: nothing is restored
  v = claims.cnn_size_position_invariant(Evidence([run('digits/cnn', 'cnn'),
                                                   run('mnist/lstm', 'lstm')], root='/nonexistent'))
  assert v.section == '2.1' and v.verdict == claims.NOT_MEASURED


def test_invariance_leaves_out_runs_without_checkpoints(tmp_path):
  v = claims.cnn_size_position_invariant(Evidence([run('digits/cnn', 'cnn'),
                                                   run('digits/gru', 'gru')], root=str(tmp_path)))
  assert v.verdict == claims.NOT_MEASURED
  assert 'Left out (no checkpoint restored): digits/cnn (FileNotFoundError)' in v.evidence


def test_audit_runs_every_check_on_an_empty_suite():
  verdicts = claims.audit([], [], '')
  assert len(verdicts) == len(claims.CHECKS) == 16
  assert [v.section for v in verdicts].count('3.1') == 2
  assert [v.section for v in verdicts].count('2.3.3') == 3
  assert [v.section for v in verdicts].count('2.3.2') == 2
  assert [v.section for v in verdicts].count('2.3.1') == 2
  assert claims.table(verdicts).count('\n| ') == 16  # one row per claim
  assert {v.section: v.verdict for v in verdicts[-4:]} == {
      '4.2': claims.NOT_MEASURED, '3.2': claims.NOT_MEASURED, '2.3.3': claims.NOT_MEASURED,
      '2.3.2': claims.NOT_MEASURED}


# 3.1: the input kinds a CNN reads.

def clip_run(workdir, accuracy, reading='auto', channels=1, model='cnn'):
  r = run(workdir, model, value=accuracy)
  r['task'] = {'name': 'moving_digits', 'reading': reading, 'channels': channels,
               'directions': 8}
  return r


def test_cnn_input_kinds_each_read_well_above_chance_are_supported():
  digits = run('digits/cnn', 'cnn', value=0.97)
  digits['task'] = {'name': 'digits', 'reading': 'auto'}
  cifar = run('cifar10/cnn', 'cnn', value=0.70)
  cifar['task'] = {'name': 'tfds_images', 'dataset': 'cifar10', 'reading': 'auto'}
  runs = [digits, cifar, clip_run('moving_digits/cnn', 0.99),
          clip_run('moving_digits_rgb/cnn', 0.98, channels=3),
          clip_run('moving_digits_frame/cnn', 0.13, reading='frame'),
          clip_run('moving_digits/cnn3d', 0.99, model='cnn3d')]
  v = claims.cnn_reads_input_kinds(Evidence(runs))
  assert v.verdict == claims.SUPPORTED
  assert 'RGB images: cifar10/cnn test accuracy 0.700 (chance 0.100)' in v.evidence
  assert ('multi-channel multi-frame input: moving_digits_rgb/cnn test accuracy 0.980 '
          '(chance 0.125)') in v.evidence
  assert 'one frame of each clip (control): moving_digits_frame/cnn' in v.evidence
  assert 'cnn3d' not in v.evidence and 'Not in this suite' not in v.evidence


def test_a_kind_learned_only_to_chance_makes_it_depend_and_missing_kinds_are_named():
  runs = [clip_run('moving_digits/cnn', 0.40), clip_run('moving_digits_rgb/cnn', 0.99,
                                                        channels=3)]
  v = claims.cnn_reads_input_kinds(Evidence(runs))
  assert v.verdict == claims.DEPENDS  # 0.40 is under 0.125 + 0.875 / 2
  assert v.evidence.startswith('Not read (below halfway from chance to 1): single-channel '
                               'multi-frame input.')
  assert ('Not in this suite: grayscale images, RGB images (the full suite, '
          'experiments/suites/full.py, runs them).') in v.evidence
  assert claims.cnn_reads_input_kinds(Evidence([run('adding/lstm', 'lstm')])).verdict == \
      claims.NOT_MEASURED


# 4.1: the CNN's scenarios.

def scenario_run(workdir, task, **test):
  r = run(workdir, 'cnn')
  r['task'], r['test'] = task, test
  return r


def test_cnn_scenarios_that_beat_their_baselines_are_supported_and_a_failing_one_depends():
  digits = scenario_run('digits/cnn', {'name': 'digits'}, accuracy=0.97)
  detection = scenario_run('detection/cnn', {'name': 'detection'}, mAP50=0.86)
  sr = scenario_run('sr_x2/cnn', {'name': 'super_resolution', 'scale': 2}, psnr=31.2,
                    bicubic_psnr=30.1, psnr_gain=1.1)
  edges = scenario_run('edges/cnn', {'name': 'edges'}, ods_f=0.81)
  edges['baselines'] = {'sobel': {'ods_f': 0.62}, 'canny': {'ods_f': 0.70}}
  lstm = run('digits/lstm', 'lstm', value=0.2)  # other families do not count here
  v = claims.cnn_vision_scenarios(Evidence([digits, detection, sr, edges, lstm]))
  assert v.verdict == claims.SUPPORTED, v.evidence
  assert 'object detection: detection/cnn test mAP@0.5 0.860' in v.evidence
  assert 'x2 test PSNR 31.20 dB vs bicubic 30.10 dB (+1.10 dB)' in v.evidence
  assert 'sobel 0.620, canny 0.700' in v.evidence and 'Not in this suite' not in v.evidence
  worse = scenario_run('sr_x4/cnn', {'name': 'super_resolution', 'scale': 4}, psnr=25.0,
                       bicubic_psnr=25.3, psnr_gain=-0.3)
  v = claims.cnn_vision_scenarios(Evidence([digits, worse]))
  assert v.verdict == claims.DEPENDS
  assert v.evidence.startswith('Did not work here: image super-resolution.')
  assert 'Not in this suite: object detection, edge detection (the full suite' in v.evidence
  assert claims.cnn_vision_scenarios(Evidence([lstm])).verdict == claims.NOT_MEASURED


# The families, from the model registry.

def test_the_registry_gives_each_model_its_family_and_the_display_order():
  assert models.ordered() == ['cnn', 'cnn3d', 'tcn', 'rnn', 'lstm', 'gru', 'cnn_rnn', 'cnn_lstm',
                              'cnn_gru']
  assert models.names() == sorted(models.ordered())  # alphabetical, as error messages list them
  assert models.names('conv') == ['cnn', 'cnn3d', 'tcn']
  assert models.ordered('recurrent') == ['rnn', 'lstm', 'gru']
  assert models.family('cnn_lstm') == 'conv+recurrent'
  assert [models.rank(m) for m in ('cnn', 'gru', 'transformer')] == [0, 5, 9]
  with pytest.raises(ConfigError, match='unknown model family'):
    models.names('attention')
  # the audit compares 'conv' with 'recurrent': the video models with both are in neither
  assert claims.CONV == ('cnn', 'cnn3d', 'tcn') and claims.RECURRENT == ('rnn', 'lstm', 'gru')
  assert claims.SEQUENCE == ('tcn', 'rnn', 'lstm', 'gru')


# The decide steps on synthetic findings: each verdict flips where its number crosses its rule
# (`claims.Rules`), and moves with the rule.

def test_param_growth_decision():
  assert claims.decide_params_growth({'lstm': {16: 500, 64: 500}}) == claims.REFUTED
  assert claims.decide_params_growth({'lstm': {16: 500, 64: 501}}) == claims.SUPPORTED
  assert claims.decide_params_growth({'lstm': {16: 500}, 'gru': {8: 1}}) == claims.NOT_MEASURED


def test_gate_decisions_follow_the_cells_gates():
  gru = lambda gates: claims.GruVsLstm(gates, (3, 4), [])
  assert claims.decide_gru_gates(gru(('reset', 'update', 'candidate'))) == claims.REFUTED
  assert claims.decide_gru_gates(gru(('update', 'candidate'))) == claims.SUPPORTED
  assert claims.decide_lstm_gates(('input', 'forget', 'candidate', 'output')) == claims.DEPENDS
  assert claims.decide_lstm_gates(('input', 'forget', 'update', 'output')) == claims.SUPPORTED
  assert claims.decide_lstm_gates(('input', 'candidate', 'output')) == claims.REFUTED


def memory(task, value, model='rnn'):
  metric = dict(claims.MEMORY_TASKS)[task]
  return claims.MemoryResult(task, f'{task}_T50', model, metric, f'{task}_T50/{model}', value, 1)


@pytest.mark.parametrize('task, remembers, forgets', [('adding', 0.049, 0.05),
                                                       ('copy_memory', 0.51, 0.5)])
def test_memory_decision_flips_at_its_threshold(task, remembers, forgets):
  assert claims.decide_memory([memory(task, remembers)]) == claims.REFUTED
  assert claims.decide_memory([memory(task, forgets)]) == claims.DEPENDS
  assert claims.decide_memory([memory(task, remembers, 'lstm')]) == claims.NOT_MEASURED  # no rnn
  stricter = claims.Rules(adding_solved_mse=0.01, copy_solved_recall=0.9)
  assert claims.decide_memory([memory(task, remembers)], stricter) == claims.DEPENDS


def test_memory_evidence_states_the_rules_thresholds():
  runs = [run('adding_T50/rnn', 'rnn', 'mse', 0.03)]
  v = claims.simple_rnn_previous_step_only(Evidence(runs))
  assert v.verdict == claims.REFUTED and '(adding MSE under 0.05, recall over 0.5)' in v.evidence
  v = claims.simple_rnn_previous_step_only(Evidence(runs), claims.Rules(adding_solved_mse=0.01))
  assert v.verdict == claims.DEPENDS and '(adding MSE under 0.01, recall over 0.5)' in v.evidence


def test_steps_to_converge_is_exactly_ninety_percent_of_the_drop():
  records = lambda losses: [{'step': 10 * (i + 1), 'loss': l} for i, l in enumerate(losses)]
  assert claims.steps_to_converge(records([1.0, 0.1, 0.0])) == 20  # 0.1 left: 90 % done
  assert claims.steps_to_converge(records([1.0, 0.1000001, 0.0])) == 30
  assert claims.steps_to_converge(records([1.0, 0.4, 0.0]), claims.Rules(loss_drop_done=0.6)) == 20


def test_convergence_decision_follows_which_family_is_first():
  fast, slow = [20, 20, 30], [50, 50, 60]  # per-seed steps: p 0.003
  assert claims.decide_convergence({'digits': {'cnn': fast, 'lstm': slow}}) == claims.SUPPORTED
  assert claims.decide_convergence({'digits': {'cnn': slow, 'lstm': fast}}) == claims.REFUTED
  assert claims.decide_convergence({'digits': {'cnn': fast, 'lstm': fast}}) == \
      claims.NOT_DISTINGUISHABLE  # a tie
  assert claims.decide_convergence({'digits': {'cnn': fast, 'lstm': slow},
                                    'adding': {'tcn': slow, 'gru': fast}}) == claims.DEPENDS
  assert claims.decide_convergence({'digits': {'cnn': fast, 'lstm': slow},
                                    'adding': {'tcn': [20], 'gru': [30]}}) == claims.DEPENDS
  # a CNN encoder + LSTM is of both families, so it is no rival of the lstm
  assert claims.decide_convergence({'clips': {'cnn_lstm': [10], 'lstm': [30]}}) == \
      claims.NOT_MEASURED


@pytest.mark.parametrize('cnn, lstm', [([20], [30]), ([20], [30, 30, 30]), ([20, 20], [90])])
def test_convergence_with_fewer_than_two_seeds_a_side_is_not_distinguishable(cnn, lstm):
  assert claims.decide_convergence({'digits': {'cnn': cnn, 'lstm': lstm}}) == \
      claims.NOT_DISTINGUISHABLE


def test_convergence_seed_minimum_is_a_rule():
  two = {'digits': {'cnn': [20, 21], 'lstm': [50, 51]}}  # p 0.0006 over two seeds a side
  assert claims.decide_convergence(two) == claims.SUPPORTED
  assert claims.decide_convergence(two, claims.Rules(min_seeds=3)) == claims.NOT_DISTINGUISHABLE
  # Welch's test needs two a side whatever the rule says
  one = {'digits': {'cnn': [20], 'lstm': [50]}}
  assert claims.decide_convergence(one, claims.Rules(min_seeds=1)) == claims.NOT_DISTINGUISHABLE


def test_convergence_decision_flips_when_the_spread_grows_or_the_rule_tightens():
  narrow = {'digits': {'cnn': [30, 40, 50], 'lstm': [60, 70, 80]}}  # means 40 and 70, std 10
  wide = {'digits': {'cnn': [20, 30, 70], 'lstm': [40, 70, 100]}}  # the same means, std 26, 30
  assert claims.decide_convergence(narrow) == claims.SUPPORTED  # p 0.021
  assert claims.decide_convergence(wide) == claims.NOT_DISTINGUISHABLE  # p 0.27
  assert claims.decide_convergence(narrow, claims.Rules(significance=0.01)) == \
      claims.NOT_DISTINGUISHABLE
  # one side never converging, the other always: beyond any spread; a mix is not
  assert claims.decide_convergence({'d': {'cnn': [float('inf')] * 2, 'lstm': [20, 30]}}) == \
      claims.REFUTED
  assert claims.decide_convergence({'d': {'cnn': [20, float('inf')], 'lstm': [20, 30]}}) == \
      claims.NOT_DISTINGUISHABLE


def test_speed_decision():
  assert claims.decide_speed(claims.Speed({}, None, None, {})) == claims.NOT_MEASURED
  assert claims.decide_speed(claims.Speed({16: {'tcn': 2.0}}, None, 16, {})) == claims.DEPENDS


@pytest.mark.parametrize('accuracy, verdict', [(0.5625, claims.SUPPORTED),
                                               (0.5624, claims.DEPENDS)])
def test_input_kind_is_read_from_halfway_between_chance_and_perfect(accuracy, verdict):
  found = {'single-channel multi-frame input': [('moving_digits/cnn', accuracy, 0.125)]}
  assert claims.decide_input_kinds(found) == verdict  # 0.125 + 0.875 / 2 = 0.5625
  lenient = claims.Rules(learned_fraction=0.25)
  assert claims.decide_input_kinds(found, lenient) == claims.SUPPORTED
  assert claims.decide_input_kinds({claims.SINGLE_FRAME: found.popitem()[1]}) == \
      claims.NOT_MEASURED  # the control alone is none of the article's kinds


def scenario(name, task, baselines=None, **test):
  return claims.ScenarioRun(name, f'{task}/cnn', {'name': task}, test, baselines or {})


@pytest.mark.parametrize('works, fails', [
    (scenario('object detection', 'detection', mAP50=0.5),
     scenario('object detection', 'detection', mAP50=0.499)),
    (scenario('image super-resolution', 'super_resolution', psnr_gain=0.01),
     scenario('image super-resolution', 'super_resolution', psnr_gain=0.0)),
    (scenario('edge detection', 'edges', {'sobel': {'ods_f': 0.62}}, ods_f=0.63),
     scenario('edge detection', 'edges', {'sobel': {'ods_f': 0.62}}, ods_f=0.62)),
    (scenario('image classification', 'digits', accuracy=0.55),
     scenario('image classification', 'digits', accuracy=0.549)),
])
def test_scenario_decision_flips_at_its_rule(works, fails):
  assert claims.decide_scenarios([works]) == claims.SUPPORTED
  assert claims.decide_scenarios([works, fails]) == claims.DEPENDS
  assert claims.decide_scenarios([]) == claims.NOT_MEASURED


def test_scenario_rules_move_the_verdict():
  detector = scenario('object detection', 'detection', mAP50=0.6)
  assert claims.decide_scenarios([detector], claims.Rules(min_map50=0.7)) == claims.DEPENDS
  edges = scenario('edge detection', 'edges', {'sobel': {'ods_f': 0.6}, 'canny': {'ods_f': 0.7}},
                   ods_f=0.65)
  assert claims.decide_scenarios([edges]) == claims.SUPPORTED
  assert claims.decide_scenarios([edges], claims.Rules(edge_baseline='canny')) == claims.DEPENDS


def test_invariance_drop_rule_changes_only_the_evidence():
  # cnn drops 1/16, 1/32 (three seeds each, standard deviation 0.01)
  acc = {'cnn': _acc(1.0, 0.9375, 0.96875, 0.01), 'lstm': _acc(1.0, 0.5, 0.5, 0.01)}
  assert claims.decide_invariance(acc) == claims.SUPPORTED
  assert 'not invariant here' in claims.invariance_verdict(acc)[1]  # 0.0625 > 0.05
  measured = claims.Invariance({m: dict(a, runs=[f'digits/{m}']) for m, a in acc.items()}, [], True)
  describe = claims.cnn_size_position_invariant.describe  # the check's own evidence step
  assert 'not invariant here' in describe(measured, claims.SUPPORTED, claims.RULES)
  assert 'not invariant' not in describe(measured, claims.SUPPORTED,
                                         claims.Rules(invariant_max_drop=0.0625))


# 4.2: RNNs predict and classify sequence data.

def seq_run(workdir, task, value, metric=None, **extra):
  model = workdir.split('/')[1]
  metric = metric or claims.tasks.REGISTRY[task['name']].target_metric
  r = run(workdir, model, metric, value)
  r['task'] = task
  r.update(extra)
  return r


ADDING = {'name': 'adding', 'length': 50}
SONG_BASELINES = {'previous_frame': {'nll': 9.0}, 'key_frequency': {'nll': 12.0}}


@pytest.mark.parametrize('gru_mse, lstm_recall, verdict', [
    (0.166, 0.126, claims.SUPPORTED),  # under predicting 1 (0.167), over guessing (0.125)
    (0.167, 0.126, claims.DEPENDS),  # the adding problem at the bar: not beaten
    (0.168, 0.125, claims.REFUTED),  # neither
])
def test_sequence_uses_flip_at_the_trivial_levels(gru_mse, lstm_recall, verdict):
  runs = [seq_run('adding_T50/gru', ADDING, gru_mse), seq_run('adding_T50/rnn', ADDING, 0.3),
          seq_run('copy_memory_T30/lstm', {'name': 'copy_memory'}, lstm_recall),
          seq_run('digits/cnn', {'name': 'digits'}, 0.05)]  # no step-by-step reader: left out
  v = claims.rnns_handle_sequences(Evidence(runs))
  assert v.verdict == verdict
  assert f'adding_T50: best recurrent gru test mse {gru_mse:g} (adding_T50/gru); to beat: ' \
      'predicting 1 0.167' in v.evidence
  assert 'copy_memory_T30: best recurrent lstm' in v.evidence and 'guessing 0.125' in v.evidence
  assert 'digits/cnn' not in v.evidence and 'no tcn run' in v.evidence
  assert v.evidence.endswith(  # the article's kinds of sequence data that no run here is
      'Not in this suite: text (char_lm, sentiment), music (song), a real series '
      '(forecasting_sunspots), video (moving_digits) (the full suite, '
      'experiments/suites/full.py, runs them). experiments/suites/real_data.py runs the song '
      'and the sunspots at quick sizes (every causal family, 3 seeds).')
  # a setting trained on part of its data is the data-size check's, not one more task here
  part = seq_run('copy_memory_T30_frac0.125/lstm', {'name': 'copy_memory', 'train_subset':
                                                    0.125}, 0.1)
  assert claims.rnns_handle_sequences(Evidence(runs + [part])).verdict == verdict
  assert 'frac0.125' not in claims.rnns_handle_sequences(Evidence(runs + [part])).evidence


def test_sequence_uses_read_recorded_baselines_and_weigh_the_tcn_over_seeds():
  song = {'name': 'song'}
  runs = [seq_run(f'song/lstm/seed{i}', song, 8.0 + 0.1 * i, baselines=SONG_BASELINES)
          for i in range(3)]
  runs += [seq_run(f'song/tcn/seed{i}', song, 8.6 + 0.1 * i, baselines=SONG_BASELINES)
           for i in range(3)]
  runs.append(seq_run('moving_digits/cnn_lstm', {'name': 'moving_digits', 'directions': 8}, 0.9))
  v = claims.rnns_handle_sequences(Evidence(runs))
  assert v.verdict == claims.SUPPORTED
  assert 'song: best recurrent lstm test nll 8.1 (mean of 3)' in v.evidence
  assert 'to beat: previous_frame 9, key_frequency 12 (beats them)' in v.evidence
  assert "better than the tcn 8.7 (distinguishable (Welch's t-test over 3 and 3" in v.evidence
  assert 'moving_digits: best recurrent cnn_lstm test accuracy 0.9' in v.evidence
  assert 'chance 0.125' in v.evidence and 'on 2 of 2 tasks' in v.evidence
  assert 'Not in this suite: text (char_lm, sentiment), a real series' in v.evidence
  # a real series is a kind of its own; a generated one (Mackey-Glass) is not
  series = lambda name: seq_run(f'{name}/gru', {'name': 'forecasting', 'series': name}, 0.3,
                                baselines={'persistence': {'nrmse': 1.0}})
  with_real = claims.rnns_handle_sequences(Evidence(runs + [series('mackey_glass')]))
  assert 'a real series (forecasting_sunspots)' in with_real.evidence
  with_real = claims.rnns_handle_sequences(Evidence(runs + [series('sunspots')]))
  assert 'Not in this suite: text (char_lm, sentiment) (the full suite' in with_real.evidence
  assert with_real.evidence.endswith('experiments/suites/full.py, runs them).')  # both here
  # a recorded baseline the model does not beat: the song no longer counts as handled
  worse = dict(SONG_BASELINES, previous_frame={'nll': 8.05})
  for r in runs[:6]:
    r['baselines'] = worse
  v = claims.rnns_handle_sequences(Evidence(runs))
  assert v.verdict == claims.DEPENDS and '(does not beat them)' in v.evidence
  one = claims.rnns_handle_sequences(Evidence([runs[0], runs[3]]))
  assert 'better than the tcn' not in one.evidence
  assert 'level with the tcn 8.6 (not distinguishable (one seed each))' in one.evidence


def test_sequence_uses_classification_chance_is_one_over_classes():
  digits = lambda acc: seq_run('digits/lstm', {'name': 'digits', 'reading': 'rows'}, acc)
  assert claims.decide_sequence_uses(claims._sequence_tasks(Evidence([digits(0.101)]),
                                                            claims.RULES)) == claims.SUPPORTED
  assert claims.decide_sequence_uses(claims._sequence_tasks(Evidence([digits(0.1)]),
                                                            claims.RULES)) == claims.REFUTED
  lm = lambda bpc: seq_run('char_lm/gru', {'name': 'char_lm'}, bpc)
  assert claims.rnns_handle_sequences(Evidence([lm(7.9)])).verdict == claims.SUPPORTED
  assert claims.rnns_handle_sequences(Evidence([lm(8.0)])).verdict == claims.REFUTED
  assert claims.rnns_handle_sequences(Evidence([lm(7.9)]),
                                      claims.Rules(char_uniform_bpc=7.0)).verdict == claims.REFUTED
  assert claims.rnns_handle_sequences(Evidence([run('digits/lstm', 'lstm')])).verdict == \
      claims.NOT_MEASURED  # no task recorded: no bar known


# 3.2: sequences of vectors in and out.

def io_run(workdir, task, inp, out, **extra):
  r = seq_run(workdir, {'name': task}, 0.5, metric='accuracy',
              io_shapes={'input': inp, 'output': out})
  r.update(extra)
  return r


def test_io_patterns_from_recorded_shapes_and_samples(tmp_path):
  rows = io_run('digits/lstm', 'digits', [8, 8], [10])
  copy = io_run('copy_memory_T30/gru', 'copy_memory', [50, 10], [50, 10])
  lm = io_run('char_lm/rnn', 'char_lm', [128], [128, 256])
  tcn_lm = io_run('char_lm/tcn', 'char_lm', [128], [128, 256], samples=['def f'])
  v = claims.rnn_sequence_io(Evidence([rows, copy, tcn_lm], root=str(tmp_path)))
  assert v.verdict == claims.DEPENDS  # the tcn's samples are no recurrent run's
  assert 'many-to-one: digits/lstm (8x8 -> 10)' in v.evidence
  assert 'many-to-many: copy_memory_T30/gru (50x10 -> 50x10)' in v.evidence
  assert v.evidence.endswith('No finished recurrent run of: generation.')
  os.makedirs(tmp_path / 'char_lm/rnn')
  (tmp_path / 'char_lm/rnn/samples.txt').write_text('=== sample 0\ndef f')
  v = claims.rnn_sequence_io(Evidence([rows, copy, lm], root=str(tmp_path)))
  assert v.verdict == claims.SUPPORTED
  assert 'char_lm/rnn (128 -> 128x256)' in v.evidence
  assert "generation: char_lm/rnn (samples.txt, one step's output 256)" in v.evidence
  assert 'No finished' not in v.evidence


def test_io_pattern_reads_the_step_axis_and_falls_back_to_the_task():
  assert claims.io_pattern({'io_shapes': {'input': [64, 1], 'output': [10]}}) == 'many-to-one'
  assert claims.io_pattern({'io_shapes': {'input': [12, 1], 'output': [6, 1]}}) == 'many-to-one'
  assert claims.io_pattern({'io_shapes': {'input': [12, 1], 'output': [12, 1]}}) == \
      'many-to-many'
  assert claims.io_pattern({'task': {'name': 'song'}}) == 'many-to-many'  # an older run
  assert claims.io_pattern({'task': {'name': 'adding'}}) == 'many-to-one'
  old = seq_run('song/lstm', {'name': 'song'}, 8.0)
  v = claims.rnn_sequence_io(Evidence([old], root='/nonexistent'))
  assert v.verdict == claims.DEPENDS and 'song/lstm (shapes not recorded)' in v.evidence
  assert 'No finished recurrent run of: many-to-one, generation.' in v.evidence
  assert claims.decide_io_patterns([]) == claims.NOT_MEASURED


# 2.3.3, second half: time to a good result.

def write_timed(root, workdir, rate, accuracies, every=10):
  """A run logged every ``every`` steps at ``rate`` steps/s, one validation accuracy a log."""
  path = os.path.join(root, workdir)
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    for i, acc in enumerate(accuracies):
      step = every * (i + 1)
      f.write(json.dumps({'step': step, 'split': 'train', 'loss': 1.0, 'steps_per_s': rate})
              + '\n')
      f.write(json.dumps({'step': step, 'split': 'validation', 'accuracy': acc}) + '\n')
  return seq_run(workdir, {'name': 'digits'}, accuracies[-1])


def test_seconds_to_target_reads_the_rebuilt_training_time():
  records = [{'step': 10, 'split': 'train', 'steps_per_s': 10.0},
             {'step': 20, 'split': 'train', 'steps_per_s': 5.0},
             {'step': 15, 'split': 'validation', 'accuracy': 0.6},
             {'step': 20, 'split': 'validation', 'accuracy': 0.8}]
  assert claims.seconds_to(records, 'accuracy', 0.6, True) == 3.0  # 1 s + 2 s, at step 20
  assert claims.seconds_to(records, 'accuracy', 0.81, True) == float('inf')
  assert claims.seconds_to(records, 'accuracy', 0.7, False) == 3.0  # lower is better: 0.6


@pytest.mark.parametrize('lstm_rates, verdict', [
    ((4.0, 5.0, 6.0), claims.SUPPORTED),  # 7.5, 6, 5 s against the cnn's 1 s a seed
    ((40.0, 50.0, 60.0), claims.REFUTED),  # 0.75, 0.6, 0.5 s
    ((20.0, 30.0, 60.0), claims.NOT_DISTINGUISHABLE),  # 1.5, 1, 0.5 s: a mean of 1 s too
])
def test_time_to_target_flips_with_the_speed(tmp_path, lstm_rates, verdict):
  # worst logged 0.1, best 0.9: the target is 0.5, reached at step 10 and step 30
  runs = [write_timed(tmp_path, f'digits/cnn/seed{i}', rate, [0.5, 0.9])
          for i, rate in enumerate((9.0, 10.0, 11.0))]
  runs += [write_timed(tmp_path, f'digits/lstm/seed{i}', rate, [0.1, 0.1, 0.5])
           for i, rate in enumerate(lstm_rates)]
  v = claims.rnns_take_longer(Evidence(runs, root=str(tmp_path)))
  assert v.verdict == verdict, v.evidence
  assert 'digits: training seconds to validation accuracy >= 0.5: ' in v.evidence
  assert 'got there first in' in v.evidence


def test_time_to_target_moves_with_the_fraction_and_needs_two_seeds(tmp_path):
  runs = [write_timed(tmp_path, f'digits/cnn/seed{i}', rate, [0.5, 0.9])
          for i, rate in enumerate((9.0, 10.0, 11.0))]
  runs += [write_timed(tmp_path, f'digits/gru/seed{i}', rate, [0.1, 0.6, 0.9])
           for i, rate in enumerate((9.0, 10.0, 11.0))]
  ev = Evidence(runs, root=str(tmp_path))
  v = claims.rnns_take_longer(ev)
  assert v.verdict == claims.SUPPORTED, v.evidence  # to 0.5: steps 10 and 20
  assert 'cnn 1 s, gru 2 s' in v.evidence
  v = claims.rnns_take_longer(ev, claims.Rules(time_target_fraction=0.0))
  assert v.verdict == claims.NOT_DISTINGUISHABLE  # to 0.1: both at step 10
  assert '>= 0.1: cnn 1 s, gru 1 s' in v.evidence
  one = claims.rnns_take_longer(Evidence(runs[1:2] + runs[4:5], root=str(tmp_path)))
  assert one.verdict == claims.NOT_DISTINGUISHABLE and 'one seed each' in one.evidence
  never = write_timed(tmp_path, 'digits/gru/seed9', 10.0, [0.1, 0.2])
  assert 'gru never' in claims.rnns_take_longer(Evidence([runs[1], never],
                                                         root=str(tmp_path))).evidence
  assert claims.rnns_take_longer(Evidence(runs[:3], root=str(tmp_path))).verdict == \
      claims.NOT_MEASURED  # one model: no race


# 2.3.2, second half: CNNs suit large datasets.

FRACTIONS = (0.125, 0.25, 0.5, 1.0)


def sized_runs(setting, model, gains, error=0.1, task='digits', fractions=FRACTIONS):
  """One run per (fraction, seed): seed i's test error is ``error * f ** -gains[i]`` (accuracy:
  one minus it), in ``<setting>_frac<f>/<model>/seed<i>`` (all of the data:
  ``<setting>/<model>/seed<i>``)."""
  out = []
  higher = claims.tasks.REGISTRY[task].higher_is_better
  for f in fractions:
    group = setting if f == 1.0 else f'{setting}_frac{f:g}'
    for i, g in enumerate(gains):
      e = error * f ** -g
      out.append(seq_run(f'{group}/{model}/seed{i}', {'name': task, 'train_subset': f},
                         1 - e if higher else e))
  return out


def test_log2_slope_is_the_least_squares_slope():
  assert claims.log2_slope(FRACTIONS, [1.0, 2.0, 2.0, 4.0]) == pytest.approx(0.9)  # 4.5 / 5
  assert claims.log2_slope((0.25, 1.0), [0.5, 0.7]) == pytest.approx(0.1)  # two doublings
  assert claims.train_subset({'workdir': 'digits_frac0.25/cnn/seed0'}) == 0.25  # older runs
  assert claims.train_subset({'workdir': 'digits/cnn', 'task': {'train_subset': 0.5}}) == 0.5
  assert claims.train_subset({'workdir': 'digits/cnn'}) == 1.0
  # forecasting's train_fraction is where its series splits, not a part of a training split
  assert claims.train_subset({'workdir': 'forecasting/gru',
                              'task': {'name': 'forecasting', 'train_fraction': 0.7}}) == 1.0
  # the error a metric leaves: a perfect accuracy keeps half an example of the test split
  assert claims.error_of(0.9, True, 269) == pytest.approx(0.1)
  assert claims.error_of(1.0, True, 269) == pytest.approx(0.5 / 269)
  assert claims.error_of(0.02, False, 269) == 0.02


CNN_GAINS = (0.50, 0.52, 0.48)


@pytest.mark.parametrize('lstm_gains, verdict', [
    ((0.20, 0.22, 0.18), claims.SUPPORTED),  # the cnn's error falls faster per doubling
    ((0.80, 0.82, 0.78), claims.REFUTED),  # the lstm's does
    ((0.50, 0.51, 0.49), claims.NOT_DISTINGUISHABLE),  # level
    ((0.20, 1.20, -0.80), claims.NOT_DISTINGUISHABLE),  # a mean of 0.2, a wide spread
])
def test_data_size_verdict_flips_with_the_slopes_and_the_spread(lstm_gains, verdict):
  runs = (sized_runs('digits', 'cnn', CNN_GAINS, error=0.05)
          + sized_runs('digits', 'lstm', lstm_gains, error=0.07)
          # gains the most, but the lstm is the best recurrent model with all of the data
          + sized_runs('digits', 'rnn', (1.0, 1.05, 0.95), error=0.1))
  v = claims.cnns_suit_large_data(Evidence(runs))
  assert v.verdict == verdict, v.evidence
  assert ('digits (digits, digits_frac0.125, digits_frac0.25, digits_frac0.5): test accuracy at '
          'training fractions 1/8 / 1/4 / 1/2 / 1 (mean over seeds): cnn 0.858 / 0.900 / 0.929 / '
          '0.950') in v.evidence
  assert 'cnn +0.500' in v.evidence and "cnn's gain is" in v.evidence
  assert "(the best recurrent model at the largest fraction)" in v.evidence and 'rnn +1.000' \
      in v.evidence


def test_data_size_mixed_over_tasks_depends_and_lower_is_better_turns_the_sign():
  digits = sized_runs('digits', 'cnn', CNN_GAINS) + sized_runs('digits', 'gru', (0.1,) * 3)
  # the adding problem's MSE (lower is better) halves per doubling for the tcn: a gain of 1
  adding = (sized_runs('adding_T50', 'tcn', (1.0, 1.01, 0.99), error=0.01, task='adding')
            + sized_runs('adding_T50', 'gru', (0.1, 0.11, 0.09), error=0.02, task='adding'))
  assert claims.cnns_suit_large_data(Evidence(digits + adding)).verdict == claims.SUPPORTED
  worse = sized_runs('adding_T50', 'tcn', (0.01, 0.011, 0.009), error=0.01, task='adding')
  v = claims.cnns_suit_large_data(Evidence(digits + adding[12:] + worse))
  assert v.verdict == claims.DEPENDS, v.evidence
  assert 'the test error, mse, against log2 of the fraction; the error divides by 2 ** gain): ' \
      'tcn +0.010, gru +0.100' in v.evidence
  assert 'gains more in 1 of 2 task settings, less in 1' in v.evidence


def test_data_size_needs_four_fractions_of_both_families():
  three = sized_runs('digits', 'cnn', CNN_GAINS, fractions=FRACTIONS[1:]) + \
      sized_runs('digits', 'lstm', (0.1,) * 3, fractions=FRACTIONS[1:])
  v = claims.cnns_suit_large_data(Evidence(three))
  assert v.verdict == claims.NOT_MEASURED
  assert 'training fractions 1/4 / 1/2 / 1' in v.evidence
  assert 'experiments/suites/full.py, runs them: digits_frac*' in v.evidence
  assert claims.cnns_suit_large_data(Evidence(three), claims.Rules(min_fractions=3)).verdict == \
      claims.SUPPORTED
  # the quick suite: every run on all of its data
  quick = [r for r in three if r['task']['train_subset'] == 1.0]
  v = claims.cnns_suit_large_data(Evidence(quick))
  assert v.verdict == claims.NOT_MEASURED and v.evidence.startswith('no run on part of a ')
  # a seed missing at one fraction has no slope: one seed a side is not distinguishable
  four = sized_runs('digits', 'cnn', CNN_GAINS) + sized_runs('digits', 'lstm', (0.1,) * 3)
  gaps = [r for r in four if not (r['workdir'].endswith(('seed1', 'seed2'))
                                  and r['task']['train_subset'] == 0.25)]
  v = claims.cnns_suit_large_data(Evidence(gaps))
  assert v.verdict == claims.NOT_DISTINGUISHABLE and 'one seed each' in v.evidence


# 2.3.1, second half: sequences of other lengths.

LENGTHS_TASK = {'name': 'adding', 'length': 75, 'min_length': 25, 'test_lengths': [10, 50, 150]}


def lengths_run(model, seed, at50, at10, at150, task=LENGTHS_TASK, metric='mse'):
  """A run trained on T=25..75 with its test metric at 10, 50 and 150 (and on the mix)."""
  r = seq_run(f'adding_lengths/{model}/seed{seed}', task, at50, metric=metric)
  r['test'].update({f'{metric}_T10': at10, f'{metric}_T50': at50, f'{metric}_T150': at150})
  return r


def lengths_runs(tcn_gaps, gru_gaps, spread=0.001):
  """Three seeds each of the tcn and the gru, at 0.01 inside the range and worse by the given
  gaps (at 10, at 150) outside it, seed i off by (i - 1) * spread."""
  runs = []
  for model, (g10, g150) in (('tcn', tcn_gaps), ('gru', gru_gaps)):
    for i in range(3):
      e = (i - 1) * spread
      runs.append(lengths_run(model, i, 0.01, 0.01 + g10 + e, 0.01 + g150 - e))
  return runs


@pytest.mark.parametrize('tcn_gaps, gru_gaps, verdict', [
    ((0.01, 0.02), (0.05, 0.10), claims.SUPPORTED),  # the gru degrades more at both lengths
    ((0.05, 0.10), (0.01, 0.02), claims.REFUTED),  # the tcn does
    ((0.01, 0.10), (0.05, 0.02), claims.DEPENDS),  # the gru at 10, the tcn at 150
    ((0.03, 0.05), (0.03, 0.05), claims.NOT_DISTINGUISHABLE),  # the same gaps
])
def test_length_adaptation_flips_with_who_degrades_more(tcn_gaps, gru_gaps, verdict):
  v = claims.rnns_adapt_to_lengths_slowly(Evidence(lengths_runs(tcn_gaps, gru_gaps)))
  assert v.verdict == verdict, v.evidence
  assert v.section == '2.3.1'
  assert (f'adding_lengths (trained on T=25..75) at T=10 (shorter): test mse worse than at '
          f'T=50 by ') in v.evidence
  assert 'at T=150 (longer)' in v.evidence and "Welch's t-test at 0.05" in v.evidence


def test_length_adaptation_within_a_larger_spread_is_not_distinguishable():
  gaps = ((0.01, 0.02), (0.05, 0.10))
  v = claims.rnns_adapt_to_lengths_slowly(Evidence(lengths_runs(*gaps, spread=0.001)))
  assert v.verdict == claims.SUPPORTED
  assert 'tcn 0.01, gru 0.05 (tcn vs gru: distinguishable' in v.evidence
  v = claims.rnns_adapt_to_lengths_slowly(Evidence(lengths_runs(*gaps, spread=0.2)))
  assert v.verdict == claims.NOT_DISTINGUISHABLE, v.evidence  # the same means, seeds far apart
  assert 'at 2 the difference is not beyond the seed spread' in v.evidence
  stricter = claims.Rules(significance=1e-9)
  v = claims.rnns_adapt_to_lengths_slowly(Evidence(lengths_runs(*gaps)), stricter)
  assert v.verdict == claims.NOT_DISTINGUISHABLE


def test_length_adaptation_best_of_each_family_and_the_reference():
  runs = lengths_runs((0.01, 0.02), (0.05, 0.10))
  # an lstm that degrades less than the tcn: the recurrent family's best is now ahead
  runs += [lengths_run('lstm', i, 0.01, 0.012 + 0.001 * i, 0.013 + 0.001 * i) for i in range(3)]
  v = claims.rnns_adapt_to_lengths_slowly(Evidence(runs))
  assert v.verdict == claims.REFUTED and '(tcn vs lstm: distinguishable' in v.evidence
  # without an in-range test length the gap is taken from the test metric on the training mix
  task = dict(LENGTHS_TASK, test_lengths=[10, 150])
  found = claims._length_gaps(Evidence([lengths_run('gru', 0, 0.5, 0.7, 0.9, task)]),
                              claims.RULES)
  assert [(g.length, g.reference) for g in found] == [(10, 'the training lengths'),
                                                      (150, 'the training lengths')]
  assert found[1].gaps['gru'] == [pytest.approx(0.4)]
  # higher is better (recall): a lower value at an unseen length is a positive gap
  copy = dict(LENGTHS_TASK, name='copy_memory')
  found = claims._length_gaps(Evidence([lengths_run('gru', 0, 0.9, 0.8, 0.5, copy,
                                                    'recall_accuracy')]), claims.RULES)
  assert [g.gaps['gru'] for g in found] == [[pytest.approx(0.1)], [pytest.approx(0.4)]]


def test_length_adaptation_without_such_runs_is_not_measured():
  plain = [seq_run('adding_T50/gru', ADDING, 0.01), seq_run('adding_T50/tcn', ADDING, 0.02)]
  v = claims.rnns_adapt_to_lengths_slowly(Evidence(plain))
  assert v.verdict == claims.NOT_MEASURED
  assert v.evidence == ('no run trained on some sequence lengths and tested at others '
                        '(adding_lengths: the full suite, experiments/suites/full.py, runs them)')
  only_gru = [r for r in lengths_runs((0.01, 0.02), (0.05, 0.1)) if r['model'] == 'gru']
  v = claims.rnns_adapt_to_lengths_slowly(Evidence(only_gru))
  assert v.verdict == claims.NOT_MEASURED
  assert v.evidence.endswith('No setting has a convolutional and a recurrent run.')
  assert claims.rnns_adapt_to_lengths_slowly in claims.CHECKS
