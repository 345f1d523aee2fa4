"""Forecasting: the generated series, the real one (sunspots), the chronological split and the
baselines."""

import sys

import numpy as np
import pytest

from comparenets import tasks
from comparenets import train
from comparenets.data import series
from comparenets.errors import DatasetNotFoundError
from comparenets.experiment import load_config
from comparenets.tasks import forecasting


def test_mackey_glass_integration_converges_in_the_step_size():
  coarse = series.mackey_glass(150, dt=0.1, discard=0)
  fine = series.mackey_glass(150, dt=0.05, discard=0)
  assert np.abs(coarse - fine).max() < 1e-4  # RK4: error shrinks ~16x per halving
  long = series.mackey_glass(3000)
  assert 0.2 < long.min() and long.max() < 1.5  # the attractor's known range for tau = 17


def test_lorenz_integration_converges_in_the_step_size():
  coarse = series.lorenz(40, dt=0.01, discard=0)
  fine = series.lorenz(40, dt=0.005, discard=0)
  assert np.abs(coarse - fine).max() < 1e-3


def test_split_is_chronological_and_normalised_on_train_only():
  task = tasks.build('forecasting', length=1200, context=16, horizon=4)
  raw = task._raw()  # pylint: disable=protected-access
  mean, std = task.scale()
  n_train = int(1200 * 0.7)
  np.testing.assert_allclose(mean, raw[:n_train].mean(0))
  np.testing.assert_allclose(std, raw[:n_train].std(0))
  splits = task.splits()
  normalised = (raw - mean) / std
  # the last training window ends inside the training part; the first validation window
  # starts exactly at the validation part
  last = np.concatenate([splits['train']['inputs'][-1], splits['train']['target'][-1]])
  np.testing.assert_allclose(last[:, 0], normalised[n_train - 20:n_train, 0], rtol=1e-5)
  first = splits['validation']['inputs'][0][:, 0]
  np.testing.assert_allclose(first, normalised[n_train:n_train + 16, 0], rtol=1e-5)
  assert len(splits['test']['inputs']) == (1200 - n_train - 120) - 20 + 1


def test_persistence_baseline_by_hand():
  task = tasks.build('forecasting', length=1200, context=16, horizon=4)
  test = task.splits()['test']
  expected = np.sqrt(np.mean((test['inputs'][:, -1, 0] - test['target'][:, 2, 0]) ** 2))
  got = task.baselines()['persistence']['nrmse_h3']
  assert got == pytest.approx(expected, rel=1e-5)
  _, std = task.scale()
  assert task.baselines()['persistence']['rmse_h3'] == pytest.approx(expected * std[0], rel=1e-5)


def test_linear_autoregression_is_exact_on_a_linear_recurrence(monkeypatch):
  # a sampled sine obeys x[t] = 2 cos(w) x[t-1] - x[t-2]: least squares must find it
  sine = lambda n, sample_every: np.sin(0.3 * np.arange(n))[:, None]
  monkeypatch.setitem(forecasting.SERIES, 'mackey_glass', sine)
  task = tasks.build('forecasting', length=800, context=8, horizon=5)
  linear = task.baselines()['linear_ar']
  assert linear['nrmse'] < 1e-4
  assert task.baselines()['persistence']['nrmse'] > 0.1


def test_forecasting_needs_sequence_models():
  with pytest.raises(ValueError, match="cannot feed model 'cnn'"):
    tasks.build('forecasting').check_input_kind('image', 'cnn')


def test_sunspots_are_the_real_yearly_series_split_by_time():
  raw = series.sunspots()
  assert raw.shape == (309, 1)  # 1700 to 2008, one value a year
  assert (raw[0, 0], raw[1, 0], raw[-1, 0]) == (5.0, 11.0, 2.9)  # 1700, 1701 and 2008
  task = tasks.build('forecasting', series='sunspots', length=6000, context=12, horizon=6,
                     train_fraction=0.6, validation_fraction=0.2)
  n_train, n_val = int(309 * 0.6), int(309 * 0.2)  # 1700-1884, 1885-1945, 1946-2008
  mean, std = task.scale()
  np.testing.assert_allclose(mean, raw[:n_train].mean(0))
  np.testing.assert_allclose(std, raw[:n_train].std(0))
  splits = task.splits()
  normalised = (raw - mean) / std
  np.testing.assert_allclose(splits['validation']['inputs'][0][:, 0],
                             normalised[n_train:n_train + 12, 0], rtol=1e-5)
  np.testing.assert_allclose(splits['test']['target'][-1][:, 0], normalised[-6:, 0], rtol=1e-5)
  assert len(splits['train']['inputs']) == n_train - 18 + 1
  assert len(splits['test']['inputs']) == (309 - n_train - n_val) - 18 + 1
  assert set(task.baselines()) == {'persistence', 'linear_ar'}


def test_missing_statsmodels_is_one_error_naming_the_install(monkeypatch):
  series.sunspots.cache_clear()
  monkeypatch.setitem(sys.modules, 'statsmodels.datasets', None)
  try:
    with pytest.raises(DatasetNotFoundError, match=r"pip install 'statsmodels>=0\.14\.2,<0\.16'"):
      tasks.build('forecasting', series='sunspots').splits()
  finally:
    series.sunspots.cache_clear()


def test_sunspots_experiment_quick_run_records_both_baselines(tmp_path):
  config = load_config('forecasting', 'model=gru,series=sunspots,quick')
  assert (config.task.context, config.task.horizon, config.train.learning_rate) == (12, 6, 5e-4)
  config.train.update(steps=4, eval_every=0, checkpoint_every=0, parallel='none')
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results['task']['series'] == 'sunspots'
  assert set(results['baselines']) == {'persistence', 'linear_ar'}
  assert set(results['beats_baselines']) == {f'h{h}' for h in range(1, 7)}
