"""Long-memory probes: generated data against its definition and its analytic baselines."""

import jax
import numpy as np
import pytest

from comparenets import models
from comparenets import tasks
from comparenets import train
from comparenets.errors import ConfigError
from comparenets.experiment import load_config
from comparenets.models.conv import tcn_levels_for
from comparenets.models.heads import TaskModel


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


# Sequences of different lengths (issue 20, 2.3.1 second half).

def _adding_before_masks(rng, n, t):
  """The adding problem's generator as it was before variable lengths (a NumPy reference)."""
  values = rng.uniform(0.0, 1.0, size=(n, t)).astype(np.float32)
  first = rng.integers(0, t // 2, size=n)
  second = rng.integers(t // 2, t, size=n)
  markers = np.zeros((n, t), np.float32)
  markers[np.arange(n), first] = 1.0
  markers[np.arange(n), second] = 1.0
  target = values[np.arange(n), first] + values[np.arange(n), second]
  return {'inputs': np.stack([values, markers], axis=-1), 'target': target.astype(np.float32)}


def test_adding_at_one_length_makes_the_batches_it_always_made():
  task = tasks.build('adding', length=31, validation_size=16, test_size=16)
  batch = task.train_sampler(64, seed=5).batch(9)
  want = _adding_before_masks(np.random.default_rng([5, 9]), 64, 31)
  assert set(batch) == set(want)  # no mask
  for k in want:
    np.testing.assert_array_equal(batch[k], want[k])
  test = task.splits()['test']
  want = _adding_before_masks(np.random.default_rng(np.random.SeedSequence(0, spawn_key=(2,))),
                              16, 31)
  assert set(test) == set(want)
  np.testing.assert_array_equal(test['inputs'], want['inputs'])
  assert task.adapt(batch, 'sequence')[1] is None
  config = load_config('adding.py', 'model=lstm,length=50')  # its config too: workdirs resume
  assert 'min_length' not in config.task and 'test_lengths' not in config.task


def test_adding_lengths_masks_and_markers_fall_inside_each_sequence():
  task = tasks.build('adding', length=40, min_length=10)
  batch = task.train_sampler(2000, seed=1).batch(3)
  x, mask, y = batch['inputs'], batch['mask'], batch['target']
  lengths = mask.sum(1)
  assert x.shape == (2000, 40, 2) and mask.dtype == bool
  assert lengths.min() == 10 and lengths.max() == 40  # both ends of [10, 40] drawn
  np.testing.assert_array_equal(mask, np.arange(40)[None] < lengths[:, None])  # real steps first
  assert (x[~mask] == 0).all()  # padded steps are zeros
  markers = x[..., 1]
  assert (markers.sum(1) == 2).all()
  half = np.arange(40)[None] < (lengths // 2)[:, None]
  assert (np.where(half, markers, 0).sum(1) == 1).all()
  assert (np.where(mask & ~half, markers, 0).sum(1) == 1).all()
  np.testing.assert_allclose((x[..., 0] * markers).sum(1), y, rtol=1e-6)
  np.testing.assert_array_equal(task.adapt(batch, 'sequence')[1], mask)
  again = task.train_sampler(2000, seed=1).batch(3)  # a pure function of (seed, step)
  np.testing.assert_array_equal(again['inputs'], x)
  np.testing.assert_array_equal(again['mask'], mask)
  assert not np.array_equal(task.train_sampler(2000, seed=1).batch(4)['mask'], mask)


def test_adding_test_lengths_each_give_their_own_metric():
  plain = tasks.build('adding', length=20, min_length=8, validation_size=8, test_size=50)
  task = tasks.build('adding', length=20, min_length=8, validation_size=8, test_size=50,
                     test_lengths=[6, 33])
  test = task.splits()['test']
  assert test['inputs'].shape == (150, 33, 2)
  np.testing.assert_array_equal(test['group'], np.repeat([0, 1, 2], 50))
  np.testing.assert_array_equal(test['mask'].sum(1)[50:], np.repeat([6, 33], 50))
  # the training distribution's test set is the one the task has without test lengths
  np.testing.assert_array_equal(test['inputs'][:50, :20], plain.splits()['test']['inputs'])
  assert (test['inputs'][:50, 20:] == 0).all() and not test['mask'][:50, 20:].any()
  np.testing.assert_array_equal(task.splits()['validation']['inputs'],
                                plain.splits()['validation']['inputs'])
  # each length's set keyed by its length: the same whatever else is tested
  alone = tasks.build('adding', length=20, test_size=50, test_lengths=(33,)).splits()['test']
  np.testing.assert_array_equal(alone['inputs'][50:], test['inputs'][100:])
  outputs = np.random.default_rng(0).normal(1.0, 0.3, (150, 1)).astype(np.float32)
  err = (outputs[:, 0] - test['target']) ** 2
  got = task.score(outputs, 'test')
  assert set(got) == {'loss', 'mse', 'mse_T6', 'mse_T33'}
  for key, rows in (('mse', slice(0, 50)), ('loss', slice(0, 50)), ('mse_T6', slice(50, 100)),
                    ('mse_T33', slice(100, 150))):
    assert got[key] == pytest.approx(float(err[rows].mean()), rel=1e-5), key
  assert set(task.score(outputs[:8], 'validation')) == {'loss', 'mse'}


@pytest.mark.parametrize('fields, message', [
    ({'length': 20, 'min_length': 1}, 'min_length=1 must be 0'),
    ({'length': 20, 'min_length': 21}, 'or from 2 to length=20'),
    ({'length': 20, 'test_lengths': (5, 5)}, 'repeats a length'),
    ({'length': 20, 'test_lengths': (1,)}, 'test_lengths must be at least 2'),
])
def test_adding_lengths_refuse_what_cannot_be_made(fields, message):
  with pytest.raises(ConfigError, match=message):
    tasks.build('adding', **fields)


def test_adding_experiment_arguments_set_the_lengths_and_the_tcn_sees_the_longest():
  config = load_config('adding.py', 'model=tcn,length=40,min_length=10,test_lengths=5+100')
  assert config.task.min_length == 10 and tuple(config.task.test_lengths) == (5, 100)
  assert config.model.levels == tcn_levels_for(100, 6) > tcn_levels_for(40, 6)
  with pytest.raises(ConfigError, match="lengths joined by '\\+'"):
    load_config('adding.py', 'model=tcn,test_lengths=5+x')


@pytest.mark.parametrize('name, fields', [
    ('tcn', dict(channels=6, levels=3, kernel_size=3)),
    ('rnn', dict(hidden=6)),
    ('lstm', dict(hidden=6, layers=2)),
    ('gru', dict(hidden=6, bidirectional=True)),
])
def test_every_family_reads_each_padded_sequence_as_if_alone(name, fields):
  """A padded batch of the task through backbone and head gives each sequence's answer exactly
  as the sequence alone (unpadded, no mask), with garbage on the padded steps."""
  task = tasks.build('adding', length=9, min_length=3)
  lengths = np.array([4, 9, 6])
  batch = task.sequences(np.random.default_rng(0), lengths, 9)
  x, mask = task.adapt(batch, 'sequence')
  noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
  x = np.where(mask[..., None], x, noise)  # the mask alone must keep the padding out
  model = TaskModel(models.build(name, **fields), task.head())
  variables = model.init(jax.random.PRNGKey(0), x, mask)
  apply = jax.jit(model.apply)
  padded = np.asarray(apply(variables, x, mask))
  for b, length in enumerate(lengths):
    alone = apply(variables, x[b:b + 1, :length], None)
    np.testing.assert_allclose(padded[b], alone[0], atol=1e-5)


def test_a_run_with_test_lengths_reports_each(tmp_path):
  config = load_config('adding.py', 'model=tcn,length=16,min_length=4,test_lengths=3+24,quick',
                       {'model.channels': 4, 'task.validation_size': 8, 'task.test_size': 8})
  config.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=2, parallel='none',
                      batch_size=8, eval_batch_size=8)
  results = train.train_and_evaluate(config, str(tmp_path))
  assert set(results['test']) == {'loss', 'mse', 'mse_T3', 'mse_T24'}
  assert set(results['validation']) == {'loss', 'mse'}
  assert tuple(results['task']['test_lengths']) == (3, 24)
