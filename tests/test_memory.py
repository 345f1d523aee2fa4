"""Long-memory probes: generated data against its definition and its analytic baselines."""

import numpy as np
import pytest

from comparenets import tasks


def test_adding_problem_data():
  task = tasks.build('adding', length=50)
  batch = task.train_sampler(256, seed=3).batch(7)
  x, y = batch['inputs'], batch['target']
  assert x.shape == (256, 50, 2) and y.shape == (256,)
  markers = x[..., 1]
  assert (markers.sum(1) == 2).all()
  assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
  np.testing.assert_allclose((x[..., 0] * markers).sum(1), y, rtol=1e-6)
  # a pure function of (seed, step), different across steps
  np.testing.assert_array_equal(task.train_sampler(256, seed=3).batch(7)['inputs'], x)
  assert not np.array_equal(task.train_sampler(256, seed=3).batch(8)['inputs'], x)


def test_adding_problem_constant_baseline_is_one_sixth():
  test = tasks.build('adding', length=100, test_size=20000).splits()['test']
  mse_of_predicting_one = float(((test['target'] - 1.0) ** 2).mean())
  assert mse_of_predicting_one == pytest.approx(1 / 6, abs=0.005)


def test_eval_sets_are_fixed_and_not_training_batches():
  a = tasks.build('adding', length=20).splits()
  b = tasks.build('adding', length=20).splits()
  np.testing.assert_array_equal(a['test']['inputs'], b['test']['inputs'])
  assert not np.array_equal(a['validation']['inputs'][:64], a['test']['inputs'][:64])
  train = tasks.build('adding', length=20).train_sampler(1000, seed=0)
  seen = {row.tobytes() for step in range(20) for row in train.batch(step)['inputs']}
  assert not any(row.tobytes() in seen for row in a['test']['inputs'])


def test_copy_memory_data_and_baseline():
  task = tasks.build('copy_memory', length=30)
  batch = task.train_sampler(64, seed=0).batch(0)
  x, y = batch['inputs'], batch['target']
  assert x.shape == y.shape == (64, 50)
  assert ((x[:, :10] >= 1) & (x[:, :10] <= 8)).all()
  assert (x[:, 10:39] == 0).all() and (x[:, 39] == 9).all() and (x[:, 40:] == 0).all()
  assert (y[:, :40] == 0).all()
  np.testing.assert_array_equal(y[:, 40:], x[:, :10])
  onehot, mask = task.adapt(batch, 'sequence')
  assert onehot.shape == (64, 50, 10) and mask is None
  # blanks then a uniform guess over 8 digits: 10 ln 8 / (T + 20)
  logits = np.zeros((64, 50, 10), np.float32)
  logits[:, :40, 0] = 50.0
  logits[:, 40:, 1:9] = 0.0
  logits[:, 40:, [0, 9]] = -50.0
  loss = float(np.mean(task.per_example(logits, batch)['loss']))
  assert loss == pytest.approx(task.blank_then_guess_loss(), rel=1e-4)


def test_probes_refuse_image_models():
  with pytest.raises(ValueError, match="task 'adding' cannot feed model 'cnn'"):
    tasks.build('adding').check_input_kind('image', 'cnn')
