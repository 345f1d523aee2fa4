"""The digits task: a fixed seeded split, the input adapters and the pairs that cannot work."""

import jax.numpy as jnp
import numpy as np
import pytest

from comparenets import tasks
from comparenets.data import digits, pipeline
from comparenets.errors import ConfigError


def test_split_is_fixed_disjoint_stratified_and_complete():
  a = digits.load_splits(seed=0)
  b = digits.load_splits(seed=0)
  c = digits.load_splits(seed=1)
  for split in digits.SPLITS:
    np.testing.assert_array_equal(a[split]['inputs'], b[split]['inputs'])
  assert not np.array_equal(a['test']['label'], c['test']['label'])
  sizes = {s: len(a[s]['label']) for s in digits.SPLITS}
  assert sum(sizes.values()) == 1797
  assert 260 <= sizes['test'] <= 280 and 260 <= sizes['validation'] <= 280
  for s in ('validation', 'test'):  # every class about 15 % in each held-out split
    counts = np.bincount(a[s]['label'], minlength=10)
    assert counts.min() >= 26 and counts.max() <= 28
  # disjoint: no image of the test split appears in train (images as bytes)
  train = {img.tobytes() for img in a['train']['inputs']}
  overlap = sum(img.tobytes() in train for img in a['test']['inputs'])
  assert overlap == 0
  assert a['train']['inputs'].min() == 0.0 and a['train']['inputs'].max() == 1.0


def _batch(n=4):
  split = digits.load_splits()['train']
  return {k: jnp.asarray(v[:n]) for k, v in split.items()}


def test_adapters_give_each_family_its_reading():
  batch = _batch()
  images = np.asarray(batch['inputs'])
  task = tasks.build('digits')
  x, mask = task.adapt(batch, 'image')
  assert x.shape == (4, 8, 8, 1) and mask is None
  x, _ = task.adapt(batch, 'sequence')  # auto: rows
  np.testing.assert_array_equal(x[:, 3], images[:, 3, :, 0])  # step 3 is image row 3
  x, _ = tasks.build('digits', reading='pixels').adapt(batch, 'sequence')
  assert x.shape == (4, 64, 1)
  np.testing.assert_array_equal(x[:, 8 * 2 + 5, 0], images[:, 2, 5, 0])  # row-major pixels


def test_permuted_order_is_one_fixed_permutation():
  batch = _batch()
  seq, _ = tasks.build('digits', reading='pixels').adapt(batch, 'sequence')
  task = tasks.build('digits', reading='pixels', order='permuted', permutation_seed=3)
  perm = task.permutation(64)
  assert sorted(perm) == list(range(64)) and not np.array_equal(perm, np.arange(64))
  x1, _ = task.adapt(batch, 'sequence')
  x2, _ = tasks.build('digits', reading='pixels', order='permuted',
                      permutation_seed=3).adapt(batch, 'sequence')
  np.testing.assert_array_equal(x1, x2)
  np.testing.assert_array_equal(np.asarray(x1)[:, :, 0], np.asarray(seq)[:, perm, 0])


@pytest.mark.parametrize('kwargs,kind,message', [
    (dict(reading='pixels'), 'image', "model 'm' reads image input but task digits with "
     "reading='pixels' gives sequences"),
    (dict(reading='image'), 'sequence', "model 'm' reads sequence input but task digits with "
     "reading='image' gives images; use reading='rows' or 'pixels'"),
    (dict(reading='auto', order='permuted'), 'image', 'no step order to permute'),
])
def test_pairs_that_cannot_work_are_refused(kwargs, kind, message):
  task = tasks.build('digits', **kwargs)
  with pytest.raises(ConfigError, match=message):
    task.check_input_kind(kind, 'm')


def test_unknown_task_fields_and_values_are_refused():
  with pytest.raises(ConfigError, match="task 'digits' has no field 'colour'"):
    tasks.build('digits', colour=True)
  with pytest.raises(ConfigError, match="task 'digits' field reading must be one of 'auto', "
                     "'image', 'rows', 'pixels', not 'columns'"):
    tasks.build('digits', reading='columns')
  with pytest.raises(ConfigError, match="unknown task 'imagenet'"):
    tasks.build('imagenet')


def test_training_stream_is_a_function_of_the_step():
  split = digits.load_splits()['train']
  a = pipeline.EpochSampler(split, 64, seed=5)
  b = pipeline.EpochSampler(split, 64, seed=5)
  later = [a.batch(s)['label'] for s in range(0, 40)]
  # b jumps straight to step 37, as a resumed run does
  np.testing.assert_array_equal(b.batch(37)['label'], later[37])
  # one epoch visits distinct examples
  idx = np.concatenate([a.indices(s) for s in range(a.steps_per_epoch)])
  assert len(np.unique(idx)) == len(idx) == a.steps_per_epoch * 64


def test_eval_batches_count_every_example_once():
  split = digits.load_splits()['test']
  batches = list(pipeline.eval_batches(split, 64))
  assert all(len(b['label']) == 64 for b in batches)
  total = sum(b['weight'].sum() for b in batches)
  assert total == len(split['label'])
  labels = np.concatenate([b['label'][b['weight'] > 0] for b in batches])
  np.testing.assert_array_equal(labels, split['label'])


def _rows(split):
  return [img.tobytes() for img in split['inputs']]


def test_train_subset_is_a_nested_stratified_part_of_train_only():
  whole = tasks.build('digits').splits()
  per_class = np.bincount(whole['train']['label'], minlength=10)
  previous = None
  for fraction in (0.125, 0.25, 0.5):
    part = tasks.build('digits', train_subset=fraction).splits()
    counts = np.bincount(part['train']['label'], minlength=10)
    # stratified: every class keeps its share, to the nearest example
    assert np.all(np.abs(counts - per_class * fraction) <= 0.5), (fraction, counts)
    assert abs(len(part['train']['label']) - fraction * len(whole['train']['label'])) <= 5
    # a subset of the training rows, labels kept with their images
    train = dict(zip(_rows(whole['train']), whole['train']['label']))
    assert all(train[r] == y for r, y in zip(_rows(part['train']), part['train']['label']))
    for split in ('validation', 'test'):  # untouched: metrics stay comparable
      for key in ('inputs', 'label'):
        np.testing.assert_array_equal(part[split][key], whole[split][key])
    # the same (split_seed, fraction) gives the same rows; a smaller fraction's lie inside
    again = tasks.build('digits', train_subset=fraction).splits()
    np.testing.assert_array_equal(again['train']['inputs'], part['train']['inputs'])
    if previous is not None:
      assert set(previous) <= set(_rows(part['train'])) and len(previous) < len(part['train'][
          'label'])
    previous = _rows(part['train'])
  other = tasks.build('digits', train_subset=0.5, split_seed=1).splits()['train']
  assert set(_rows(other)) != set(previous)  # another split seed, another subset
  assert len(tasks.build('digits', train_subset=1.0).splits()['train']['label']) == \
      per_class.sum()


@pytest.mark.parametrize('value,message', [
    (0.0, 'task \'digits\' field train_subset must be at least 0.01, not 0.0'),
    (1.5, 'task \'digits\' field train_subset must be at most 1.0, not 1.5'),
    (-0.25, 'must be at least 0.01'),
    ('half', 'task \'digits\' field train_subset must be a finite number'),
])
def test_bad_train_subsets_are_one_config_error(value, message):
  with pytest.raises(ConfigError, match=message):
    tasks.build('digits', train_subset=value)
