"""The claims audit's verdict logic on small synthetic runs and structure rows (no training)."""

import json
import os

import pytest

from comparenets.analysis import claims


def run(workdir, model, metric='accuracy', value=0.5, params=1000):
  return {'workdir': workdir, 'model': model, 'target_metric': metric,
          'test': {metric: value}, 'params': {'total': params}}


def row(model, length, params, rate=1000.0):
  return {'model': model, 'length': length, 'backbone_params': params,
          'flops_train_per_example': 1e6, 'train_step_s': 0.01, 'time_steps_per_s': rate}


def write_curve(root, workdir, losses):
  path = os.path.join(root, workdir)
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    for i, loss in enumerate(losses):
      f.write(json.dumps({'step': 10 * (i + 1), 'split': 'train', 'loss': loss}) + '\n')
    f.write(json.dumps({'step': 10 * len(losses), 'split': 'validation', 'loss': 0.0}) + '\n')


# 2.3.3: parameters vs sequence length.

def test_params_constant_over_lengths_refutes_exponential_growth():
  v = claims.params_grow_with_steps([], [row('lstm', 16, 500), row('lstm', 64, 500),
                                         row('tcn', 16, 7)], '')
  assert v.verdict == claims.REFUTED
  assert 'lstm: T=16: 500, T=64: 500' in v.evidence and 'tcn' not in v.evidence


def test_params_changing_with_length_supports_growth():
  v = claims.params_grow_with_steps([], [row('gru', 16, 500), row('gru', 64, 2000)], '')
  assert v.verdict == claims.SUPPORTED and 'T=64: 2,000' in v.evidence
  assert 'for gru' in v.evidence


def test_params_at_one_length_or_none_is_not_measured():
  v = claims.params_grow_with_steps([], [row('rnn', 8, 300)], '')
  assert v.verdict == claims.NOT_MEASURED and 'rnn: T=8: 300' in v.evidence
  assert claims.params_grow_with_steps([], [row('tcn', 8, 1)], '').verdict == \
      claims.NOT_MEASURED


# 2.2: gates.

def test_gru_has_two_gates_with_structure_numbers():
  structure = [row('gru', 16, 300), row('lstm', 16, 400), row('gru', 32, 300)]
  v = claims.gru_only_update_gate([], structure, '')
  assert v.verdict == claims.REFUTED
  assert 'reset, update gates and a candidate' in v.evidence
  assert 'T=16: params 300 vs 400' in v.evidence and 'T=32' not in v.evidence  # no lstm at 32
  assert 'no structure rows' in claims.gru_only_update_gate([], [], '').evidence


def test_lstm_gates_depends():
  v = claims.lstm_gates([], [], '')
  assert v.verdict == claims.DEPENDS and 'forget' in v.evidence and 'output' in v.evidence


# 2.2: a simple RNN sees only the previous step.

def test_rnn_solving_adding_refutes_previous_step_only():
  runs = [run('adding_T50/rnn/seed0', 'rnn', 'mse', 0.01),
          run('adding_T50/rnn/seed1', 'rnn', 'mse', 0.03),
          run('adding_T200/rnn', 'rnn', 'mse', 0.17), run('adding_T200/lstm', 'lstm', 'mse', 0.001)]
  v = claims.simple_rnn_previous_step_only(runs, [], '')
  assert v.verdict == claims.REFUTED
  assert 'adding_T50 (adding_T50/rnn/seed0, adding_T50/rnn/seed1): rnn test mse 0.02 (mean of 2)' \
      in v.evidence
  assert 'adding_T200 (adding_T200/rnn): rnn test mse 0.17' in v.evidence  # both lengths kept


def test_rnn_solving_copy_memory_refutes_previous_step_only():
  runs = [run('copy_memory_T30/rnn', 'rnn', 'recall_accuracy', 0.9)]
  assert claims.simple_rnn_previous_step_only(runs, [], '').verdict == claims.REFUTED


def test_rnn_at_chance_depends():
  runs = [run('adding_T50/rnn', 'rnn', 'mse', 0.16),
          run('copy_memory_T30/rnn', 'rnn', 'recall_accuracy', 0.13),
          run('copy_memory_T30/lstm', 'lstm', 'recall_accuracy', 1.0)]
  v = claims.simple_rnn_previous_step_only(runs, [], '')
  assert v.verdict == claims.DEPENDS
  assert 'copy_memory_T30 (copy_memory_T30/lstm): lstm test recall_accuracy 1' in v.evidence


def test_no_rnn_memory_run_is_not_measured():
  runs = [run('adding_T50/lstm', 'lstm', 'mse', 0.001), run('adding2/rnn', 'rnn', 'mse', 0.0)]
  assert claims.simple_rnn_previous_step_only(runs, [], '').verdict == claims.NOT_MEASURED


# 2.3.1: convergence.

def test_steps_to_converge():
  records = lambda losses: [{'step': 10 * (i + 1), 'loss': l} for i, l in enumerate(losses)]
  assert claims.steps_to_converge(records([2.0, 1.0, 0.2, 0.1])) == 30  # 0.2 <= 0.1 + 0.19
  assert claims.steps_to_converge(records([1.0, 2.0, 3.0])) == float('inf')  # diverged


@pytest.mark.parametrize('cnn_losses, verdict', [
    ([2.0, 0.1, 0.1, 0.1], claims.SUPPORTED),
    ([2.0, 2.0, 2.0, 0.1], claims.REFUTED),
    ([1.0, 2.0, 4.0, 8.0], claims.REFUTED),  # a diverging cnn converges never, not first
])
def test_convergence_verdict_follows_which_family_is_first(tmp_path, cnn_losses, verdict):
  write_curve(tmp_path, 'digits/cnn', cnn_losses)
  write_curve(tmp_path, 'digits/lstm', [2.0, 1.0, 0.1, 0.1])
  runs = [run('digits/cnn', 'cnn'), run('digits/lstm', 'lstm')]
  v = claims.rnns_converge_with_difficulty(runs, [], str(tmp_path))
  assert v.verdict == verdict
  assert 'digits: steps to 90 % of the loss drop' in v.evidence
  first = 1 if verdict == claims.SUPPORTED else 0
  assert f'converged first in {first} of 1 tasks' in v.evidence


def test_convergence_mixed_over_tasks_depends_and_uses_the_seed_median(tmp_path):
  write_curve(tmp_path, 'digits/cnn', [2.0, 0.1, 0.1])
  write_curve(tmp_path, 'digits/lstm', [2.0, 2.0, 0.1])
  for seed, losses in enumerate(([2.0, 2.0, 0.1], [2.0, 0.1, 0.1], [2.0, 0.1, 0.1])):
    write_curve(tmp_path, f'adding_T50/tcn/seed{seed}', losses)
  write_curve(tmp_path, 'adding_T50/gru', [2.0, 2.0, 0.1])  # 30 vs the tcn's median 20
  write_curve(tmp_path, 'forecasting/gru', [2.0, 0.1, 0.1])
  write_curve(tmp_path, 'forecasting/tcn', [2.0, 1.9, 0.1])
  runs = [run(w, w.split('/')[1]) for w in (
      'digits/cnn', 'digits/lstm', 'adding_T50/tcn/seed0', 'adding_T50/tcn/seed1',
      'adding_T50/tcn/seed2', 'adding_T50/gru', 'forecasting/gru', 'forecasting/tcn')]
  v = claims.rnns_converge_with_difficulty(runs, [], str(tmp_path))
  assert v.verdict == claims.DEPENDS
  assert 'adding_T50: steps to 90 % of the loss drop tcn 20, gru 30' in v.evidence
  assert 'forecasting: steps to 90 % of the loss drop gru 20, tcn 30' in v.evidence
  assert 'in 2 of 3 tasks' in v.evidence


def test_convergence_without_curves_or_rivals_is_not_measured(tmp_path):
  assert claims.rnns_converge_with_difficulty([run('digits/cnn', 'cnn')], [], str(tmp_path)) \
      .verdict == claims.NOT_MEASURED
  write_curve(tmp_path, 'digits/lstm', [2.0, 0.1])
  write_curve(tmp_path, 'digits/gru', [2.0, 0.1])
  v = claims.rnns_converge_with_difficulty(
      [run('digits/lstm', 'lstm'), run('digits/gru', 'gru')], [], str(tmp_path))
  assert v.verdict == claims.NOT_MEASURED and 'lstm 20' in v.evidence  # no conv rival


# 2.3.2: speed.

def test_speed_depends_with_the_tcn_tally():
  structure = [row('tcn', 16, 1, 9000.0), row('lstm', 16, 1, 3000.0),
               row('tcn', 64, 1, 1000.0), row('gru', 64, 1, 2000.0)]
  v = claims.rnns_train_slower([], structure, '')
  assert v.verdict == claims.DEPENDS
  assert 'T=16: tcn 9e+03, lstm 3e+03' in v.evidence
  assert 'faster than every recurrent model at 1 of 2 lengths' in v.evidence
  assert claims.rnns_train_slower([], [], '').verdict == claims.NOT_MEASURED


# 2.3.3: CNN parameters.

def test_cnn_params_depends_on_every_task_with_a_cnn_and_an_rnn():
  runs = [run('digits/cnn', 'cnn', value=0.9, params=53002),
          run('digits/lstm/seed0', 'lstm', value=0.8, params=70000),
          run('digits/lstm/seed1', 'lstm', value=0.9, params=70000),
          run('mnist/cnn', 'cnn', params=5), run('mnist/gru', 'gru', params=6),
          run('adding_T50/tcn', 'tcn', 'mse', 0.1)]
  v = claims.cnn_fewer_params(runs, [], '')
  assert v.verdict == claims.DEPENDS
  assert 'digits: cnn 53,002 (test accuracy 0.900), lstm 70,000 (test accuracy 0.850)' \
      in v.evidence
  assert 'mnist: cnn 5' in v.evidence and 'adding' not in v.evidence
  assert claims.cnn_fewer_params(runs[1:3], [], '').verdict == claims.NOT_MEASURED


# 3.1: fixed-size input, from the model code.

def test_cnn_fixed_size_depends_on_the_head():
  v = claims.cnn_needs_fixed_size([], [], '')
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


def test_audit_runs_every_check_on_an_empty_suite():
  verdicts = claims.audit([], [], '')
  assert len(verdicts) == len(claims.CHECKS) == 8
  assert [v.section for v in verdicts].count('3.1') == 1
  assert claims.table(verdicts).count('\n| ') == 8  # one row per claim
