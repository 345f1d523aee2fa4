"""Each process reads only its rows of every global batch, and the rows of all processes tile the
batch one process would read; the TFDS image task reads no example it was not asked for."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from comparenets import tasks
from comparenets.data import pipeline
from comparenets.data import tfds_source
from comparenets.errors import ConfigError
from comparenets.setup import build_setup
from comparenets.tasks import tfds_images


class RecordingSource:
  """A random-access source that remembers which records were read."""

  def __init__(self, source):
    self.source, self.read = source, []

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    self.read.append(i)
    return self.source[i]


class BatchedSource(RecordingSource):
  """A source that also reads many records in one call, as `tfds.data_source`'s ArrayRecord
  sources do; it remembers each call's keys."""

  def __init__(self, source):
    super().__init__(source)
    self.calls = []

  def __getitems__(self, keys):
    self.calls.append(list(keys))
    return [self.source[k] for k in keys]


def _records(n):
  return [{'x': np.full(3, i, np.float32), 'y': np.int32(i)} for i in range(n)]


def _split(n=100):
  source = RecordingSource(_records(n))
  convert = lambda e: {'inputs': e['x'], 'label': e['y']}
  return source, pipeline.SourceSplit(source, convert, ('inputs', 'label'))


def test_process_rows_of_an_epoch_batch_tile_it_and_read_only_their_rows():
  source, split = _split()
  sampler = pipeline.EpochSampler(split, 16, seed=3)
  whole = sampler.batch(5)
  source.read.clear()
  parts = [sampler.batch(5, index=i, count=4) for i in range(4)]
  assert len(source.read) == 16  # four processes, four rows each: every row read once
  for key in ('inputs', 'label'):
    np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])
  source.read.clear()
  second = sampler.batch(5, index=1, count=4)
  assert sorted(source.read) == sorted(second['label'].tolist()) and len(source.read) == 4
  assert set(source.read) == set(whole['label'][4:8].tolist())


def test_in_memory_splits_shard_the_same_way():
  split = {'inputs': np.arange(40.0).reshape(20, 2), 'label': np.arange(20)}
  sampler = pipeline.EpochSampler(split, 8, seed=0)
  for step in (0, 3):
    parts = [sampler.batch(step, i, 2)['label'] for i in range(2)]
    np.testing.assert_array_equal(np.concatenate(parts), sampler.batch(step)['label'])
  with pytest.raises(ValueError, match='a global batch of 8 does not split over 3 processes'):
    sampler.batch(0, 0, 3)


def test_generated_batches_do_not_depend_on_the_process_count():
  generate = lambda rng, n: {'x': rng.normal(size=(n, 2))}
  sampler = pipeline.GeneratedSampler(generate, 6, seed=1)
  parts = [sampler.batch(4, i, 3)['x'] for i in range(3)]
  np.testing.assert_array_equal(np.concatenate(parts), sampler.batch(4)['x'])


def test_eval_batches_per_process_cover_every_example_once():
  source, split = _split(45)
  whole = list(pipeline.eval_batches(split, 16))
  source.read.clear()
  per_process = [list(pipeline.eval_batches(split, 16, i, 2)) for i in range(2)]
  assert len(source.read) == 48  # 45 examples plus 3 rows of padding, each read once
  for b, (p0, p1) in enumerate(zip(*per_process)):
    for key in ('label', 'weight'):
      np.testing.assert_array_equal(np.concatenate([p0[key], p1[key]]), whole[b][key])
  labels = np.concatenate([p['label'][p['weight'] > 0] for ps in per_process for p in ps])
  assert sorted(labels.tolist()) == list(range(45))


@pytest.fixture
def opened(monkeypatch):
  """``{split: RecordingSource}`` of every TFDS split a task opens (`tfds_source.open_split`)."""
  sources = {}
  open_split = tfds_source.open_split

  def recording_open(name, split, data_dir=None):
    sources[split] = RecordingSource(open_split(name, split, data_dir))
    return sources[split]

  monkeypatch.setattr(tfds_source, 'open_split', recording_open)
  return sources


def test_tfds_images_read_only_the_examples_of_this_process(opened):
  with tfds.testing.mock_data(num_examples=100):
    task = tasks.build('tfds_images', dataset='mnist', validation_fraction=0.2)
    splits = task.splits()
    assert not opened['train'].read and not opened['test'].read  # nothing read up front
    sampler = task.train_sampler(16, seed=0)
    local = sampler.batch(2, index=1, count=2)
    assert len(opened['train'].read) == 8  # its 8 of the 16 rows, nothing else
    assert set(opened['train'].read) <= set(splits['train'].indices.tolist())
    opened['train'].read.clear()
    whole = sampler.batch(2)
    for key in ('inputs', 'label'):
      np.testing.assert_array_equal(local[key], whole[key][8:])
    assert local['inputs'].shape == (8, 28, 28, 1) and local['inputs'].dtype == np.float32
    next(pipeline.eval_batches(splits['test'], 32, 0, 2))
    assert len(opened['test'].read) == 16


def test_index_holdout_is_seeded_and_disjoint():
  kept, held = tfds_images.index_holdout(1000, 0.1, seed=4)
  assert len(held) == 100 and not set(kept) & set(held)
  assert sorted(np.concatenate([kept, held]).tolist()) == list(range(1000))
  np.testing.assert_array_equal(held, tfds_images.index_holdout(1000, 0.1, seed=4)[1])
  assert not np.array_equal(held, tfds_images.index_holdout(1000, 0.1, seed=5)[1])


def test_global_batch_must_divide_over_all_devices():
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'experiments', 'digits.py')
  spec = importlib.util.spec_from_file_location('digits_experiment', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('model=lstm,quick')
  config.train.update(parallel='jit', batch_size=12)
  with pytest.raises(ConfigError, match=r"train.batch_size=12 does not divide over the 8 devices "
                     r"of train.parallel='jit'; use a multiple of 8 \(it is the global batch"):
    build_setup(config)


def test_a_source_that_reads_batches_is_asked_in_chunks_in_order(monkeypatch):
  """`SourceSplit.take` asks a source with ``__getitems__`` for its records in chunks (ArrayRecord
  then reads them in parallel) and returns what reading them one at a time returns."""
  monkeypatch.setattr(pipeline, 'READ_CHUNK', 4)
  source = BatchedSource(_records(20))
  split = pipeline.SourceSplit(source, lambda e: {'inputs': e['x'], 'label': e['y']},
                               ('inputs', 'label'), indices=np.arange(19, -1, -1))
  got = split.take(np.array([0, 5, 3, 3, 9, 1, 2, 8, 7, 6]))
  want = [19, 14, 16, 16, 10, 18, 17, 11, 12, 13]
  assert source.calls == [want[:4], want[4:8], want[8:]] and source.read == []
  np.testing.assert_array_equal(got['label'], want)
  np.testing.assert_array_equal(got['inputs'][:, 0], np.array(want, np.float32))


def test_mock_data_sources_are_read_one_record_at_a_time():
  """`tfds.testing.mock_data`'s ArrayRecord stand-in fails in ``__getitems__`` (it is called
  without its self), so its sources are read by index; a batch equals the records read alone."""
  with tfds.testing.mock_data(num_examples=30):
    source = tfds_source.open_split('mnist', 'train')
    with pytest.raises(TypeError):
      source.__getitems__([0, 1])
    got = pipeline.read_records(source, [4, 2, 9])
    for record, key in zip(got, [4, 2, 9]):
      np.testing.assert_array_equal(record['image'], source[key]['image'])


def test_div2k_patches_read_only_the_images_of_this_process(opened):
  """A DIV2K training batch of 32 patches is cut from 4 images, 8 consecutive rows each: each of
  two processes reads and decodes only the 2 images of its 16 rows, and its rows equal those of
  the batch one process cuts."""
  with tfds.testing.mock_data(num_examples=12):
    task = tasks.build('super_resolution', dataset='div2k', scale=2, patch=8,
                       div2k_validation_images=3)
    sampler = task.train_sampler(32, seed=5)
    assert not opened['train'].read  # nothing read up front
    whole = sampler.batch(3)
    # the images the batch draws: its generator's first draw, with the task's uniform weights
    chosen = np.random.default_rng([5, 3]).choice(9, size=4, p=np.ones(9) / 9)
    assert sorted(opened['train'].read) == sorted(set(chosen.tolist()))
    for i in range(2):
      opened['train'].read.clear()
      part = sampler.batch(3, index=i, count=2)
      assert sorted(opened['train'].read) == sorted(set(chosen[2 * i:2 * i + 2].tolist()))
      for key in ('inputs', 'target'):
        np.testing.assert_array_equal(part[key], whole[key][16 * i:16 * (i + 1)])
