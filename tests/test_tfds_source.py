"""TFDS data read from real array_record files (tests/data/tfds: MNIST and IMDB of their real
builders' names, versions and features, 24 training examples each of random content, written by
`scripts/bench/prepare_tfds_reads.py --small`): records read in batches, and a bucket data_dir
copied to the host (tests/fake_gcs.py stands in for gs://)."""

import logging
import os

import numpy as np
import pytest

from comparenets import tasks
from comparenets.data import pipeline
from comparenets.data import tfds_source
from comparenets.errors import DataCopyError, DatasetNotFoundError
from fake_gcs import FakeGCS, bucket, upload  # pylint: disable=unused-import  (bucket: a fixture)

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'tfds')
BUCKET_DATA = 'gs://bucket/tfds'


class Recording:
  """A source that passes reads on and remembers how it was asked."""

  def __init__(self, source):
    self.source, self.single, self.batched = source, [], []

  def __len__(self):
    return len(self.source)

  def __getitem__(self, key):
    self.single.append(key)
    return self.source[key]

  def __getitems__(self, keys):
    self.batched.append(list(keys))
    return self.source.__getitems__(keys)


def _same(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


def test_array_record_batches_are_one_call_and_the_records_read_alone():
  source = tfds_source.open_split('mnist', 'train', FIXTURE)
  assert len(source) == 24
  recording = Recording(source)
  keys = [17, 3, 3, 0, 23, 9]
  got = pipeline.read_records(recording, keys)
  assert recording.batched == [keys] and recording.single == []
  for record, key in zip(got, keys):
    _same(record, source[key])
  texts = pipeline.read_records(tfds_source.open_split('imdb_reviews', 'train', FIXTURE),
                                range(24))
  assert len(texts) == 24 and all(t['text'] and t['label'] in (0, 1) for t in texts)


def test_tfds_images_train_on_the_real_files_through_batched_reads():
  task = tasks.build('tfds_images', dataset='mnist', data_dir=FIXTURE, validation_fraction=0.25)
  splits = task.splits()
  assert [pipeline.split_size(splits[s]) for s in ('train', 'validation', 'test')] == [18, 6, 8]
  batch = task.train_sampler(8, seed=0).batch(1)
  assert batch['inputs'].shape == (8, 28, 28, 1) and batch['inputs'].dtype == np.float32
  source = tfds_source.open_split('mnist', 'train', FIXTURE)
  rows = splits['train'].indices[task.train_sampler(8, seed=0).indices(1)]
  np.testing.assert_array_equal(batch['label'], [source[int(i)]['label'] for i in rows])


def _batches(sampler, steps, index=0, count=1):
  return [sampler.batch(s, index, count) for s in steps]


def test_grain_workers_read_the_same_batches_in_order_and_resume_mid_run():
  """Batches made ahead by grain worker processes are the in-process sampler's, step for step,
  for a process's rows too; a stray step is read here without restarting the stream."""
  task = tasks.build('tfds_images', dataset='mnist', data_dir=FIXTURE, validation_fraction=0.25)
  plain = task.train_sampler(8, seed=3)
  streamed = tasks.build('tfds_images', dataset='mnist', data_dir=FIXTURE,
                         validation_fraction=0.25, read_workers=2).train_sampler(8, seed=3)
  assert isinstance(streamed, pipeline.StreamedSampler) and streamed.batch_size == 8
  try:
    # the run's order: the sizing batch, a warm-up, then steps 0, 1, 2, ... (three epochs of 2)
    for got, want in zip(_batches(streamed, [0, 0] + list(range(7))),
                         _batches(plain, [0, 0] + list(range(7)))):
      _same(got, want)
    assert streamed._stream is not None and streamed._next == (7, 0, 1)
    _same(streamed.batch(2), plain.batch(2))  # a stray step: read here
    assert streamed._next == (7, 0, 1)        # the stream waits where it was
    _same(streamed.batch(7), plain.batch(7))
    # a resumed run of process 1 of 2: its rows only, from step 5 on
    streamed.close()
    assert streamed._stream is None
    for got, want in zip(_batches(streamed, [5, 5, 6, 7, 8], 1, 2),
                         _batches(plain, [5, 5, 6, 7, 8], 1, 2)):
      assert got['inputs'].shape == (4, 28, 28, 1)
      _same(got, want)
    assert streamed._next == (9, 1, 2)
  finally:
    streamed.close()


def test_grain_workers_cut_the_same_super_resolution_patches():
  """A generated sampler (random patches of the training photos) pickles into the workers and
  gives the batches made in this process."""
  plain = tasks.build('super_resolution', patch=24).train_sampler(4, seed=1)
  streamed = tasks.build('super_resolution', patch=24, read_workers=1).train_sampler(4, seed=1)
  try:
    for got, want in zip(_batches(streamed, range(5)), _batches(plain, range(5))):
      _same(got, want)
    assert streamed._next == (5, 0, 1)
  finally:
    streamed.close()


def test_the_bench_times_grain_workers_on_the_same_batches():
  from comparenets.analysis import bench  # pylint: disable=g-import-not-at-top
  plain = tasks.build('tfds_images', dataset='mnist', data_dir=FIXTURE).train_sampler(8, 0)
  records = list(bench.streamed_reads(plain, 8, repeats=2, run=4, workers=(1,)))
  assert [r['impl'] for r in records] == ['in_process', '1_workers']
  assert all(r['same_records'] and r['examples_per_s'] > 0 for r in records)
  assert records[0]['speedup'] == 1.0


def test_a_run_with_grain_workers_trains_as_one_without(tmp_path):
  from comparenets import train  # pylint: disable=g-import-not-at-top
  from comparenets.experiment import load_config  # pylint: disable=g-import-not-at-top
  results = []
  for workers in (0, 2):
    config = load_config('tfds_images.py', 'model=cnn,dataset=mnist',
                         {'task.data_dir': FIXTURE, 'task.validation_fraction': 0.25,
                          'task.read_workers': workers, 'train.steps': 6,
                          'train.batch_size': 8, 'train.eval_batch_size': 8,
                          'train.log_every': 3, 'train.eval_every': 0,
                          'train.checkpoint_every': 0, 'train.parallel': 'none'})
    results.append(train.train_and_evaluate(config, str(tmp_path / f'workers{workers}')))
  assert results[0]['steps'] == results[1]['steps'] == 6
  assert results[0]['test'] == results[1]['test']
  assert results[0]['validation'] == results[1]['validation']


@pytest.fixture
def bucket_data(bucket, tmp_path, monkeypatch):  # pylint: disable=redefined-outer-name
  """The fixture's datasets in the stand-in bucket, a data cache of the test's own, and a count
  of the files copied from the bucket."""
  del bucket
  upload(FIXTURE, BUCKET_DATA)
  monkeypatch.setenv('COMPARENETS_DATA_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setattr(tfds_source, '_LOCAL_DIRS', {})  # this test is a process of its own
  copied = []
  copy = tfds_source.copy_file

  def counting_copy(path, local):
    copied.append(local)
    copy(path, local)

  monkeypatch.setattr(tfds_source, 'copy_file', counting_copy)
  return copied


def _copy_root(tmp_path):
  (root,) = (tmp_path / 'cache').glob('gs_bucket_tfds-*')  # the bucket's name and its hash
  return root


def test_a_bucket_data_dir_is_copied_to_this_host_once_and_read_there(bucket_data, tmp_path):
  source = tfds_source.open_split('mnist', 'train', BUCKET_DATA)
  local = _copy_root(tmp_path) / 'mnist' / '3.0.1'
  assert sorted(os.listdir(local)) == sorted(os.listdir(os.path.join(FIXTURE, 'mnist', '3.0.1')))
  assert len(bucket_data) == 4  # dataset_info, features and the two splits' records
  want = tfds_source.open_split('mnist', 'train', FIXTURE)
  for key in (0, 11, 23):
    _same(source[key], want[key])
  tfds_source.open_split('mnist', 'test', BUCKET_DATA)  # the copy is there: nothing copied
  assert len(bucket_data) == 4
  imdb = tfds_source.open_split('imdb_reviews', 'test', BUCKET_DATA)  # a dataset with a config
  assert imdb[5]['text'] == tfds_source.open_split('imdb_reviews', 'test', FIXTURE)[5]['text']
  assert {p.name for p in _copy_root(tmp_path).iterdir()} == {'imdb_reviews', 'mnist'}


def test_a_copy_of_an_older_preparation_is_replaced(bucket_data, tmp_path):
  tfds_source.open_split('mnist', 'train', BUCKET_DATA)
  info = _copy_root(tmp_path) / 'mnist' / '3.0.1' / 'dataset_info.json'
  fresh = info.read_text()
  info.write_text(fresh.replace('"name": "mnist"', '"name": "mnist" ', 1))  # prepared again
  assert info.read_text() != fresh
  tfds_source._LOCAL_DIRS.clear()  # pylint: disable=protected-access  # a later process
  assert len(tfds_source.open_split('mnist', 'train', BUCKET_DATA)) == 24
  assert len(bucket_data) == 8 and info.read_text() == fresh
  assert sorted(p.name for p in info.parent.parent.iterdir()
                if not p.name.endswith('.lock')) == ['3.0.1']  # nothing old or temporary left


def test_a_copy_cut_short_is_never_read_and_the_next_run_copies_again(bucket_data, tmp_path,
                                                                       monkeypatch):
  copy = tfds_source.copy_file

  def failing_copy(path, local):
    if len(bucket_data) == 2:
      raise OSError('connection reset')
    copy(path, local)

  monkeypatch.setattr(tfds_source, 'copy_file', failing_copy)
  with pytest.raises(DataCopyError) as error:
    tfds_source.open_split('mnist', 'train', BUCKET_DATA)
  message = str(error.value)
  assert "TFDS dataset 'mnist' could not be copied from gs://bucket/tfds/mnist/3.0.1" in message
  assert '(connection reset); free space there or choose another cache with ' \
      'COMPARENETS_DATA_CACHE=DIR' in message
  assert [p.name for p in (_copy_root(tmp_path) / 'mnist').iterdir()
          if not p.name.endswith('.lock')] == []  # no part left
  monkeypatch.setattr(tfds_source, 'copy_file', copy)
  assert len(tfds_source.open_split('mnist', 'train', BUCKET_DATA)) == 24


def test_a_dataset_missing_from_the_bucket_names_the_bucket(bucket_data):
  with pytest.raises(DatasetNotFoundError,
                     match="'fashion_mnist' is not prepared in gs://bucket/tfds; prepare it"):
    tfds_source.open_split('fashion_mnist', 'train', BUCKET_DATA)
  assert not bucket_data


def _count_bucket_calls(monkeypatch) -> list[str]:
  """Every call of the stand-in bucket's filesystem that reads it (listing, metadata, opening a
  file), by name."""
  calls = []
  for method in ('ls', 'info', '_open', 'cat_file'):
    original = getattr(FakeGCS, method)

    def counting(self, *args, _original=original, _method=method, **kwargs):
      calls.append(_method)
      return _original(self, *args, **kwargs)

    monkeypatch.setattr(FakeGCS, method, counting)
  return calls


def _cut_off(monkeypatch) -> None:
  """The stand-in bucket can no longer be reached: every call fails as with no network."""
  def unreachable(self, *args, **kwargs):
    raise ConnectionError('network is unreachable')

  for method in ('ls', 'info', 'exists', 'isdir', 'isfile', '_open', 'cat_file'):
    monkeypatch.setattr(FakeGCS, method, unreachable)


def test_a_process_asks_the_bucket_once_per_dataset(bucket_data, monkeypatch):
  calls = _count_bucket_calls(monkeypatch)
  train = tfds_source.open_split('mnist', 'train', BUCKET_DATA)
  assert calls and len(bucket_data) == 4
  calls.clear()
  test = tfds_source.open_split('mnist', 'test', BUCKET_DATA)  # the same dataset: not asked
  assert calls == [] and len(test) == len(tfds_source.open_split('mnist', 'test', FIXTURE))
  _same(train[3], tfds_source.open_split('mnist', 'train', FIXTURE)[3])
  tfds_source.open_split('imdb_reviews', 'test', BUCKET_DATA)  # another dataset: asked
  assert calls


def test_an_unreachable_bucket_reads_this_hosts_complete_copy_with_one_warning(
    bucket_data, monkeypatch, caplog):
  tfds_source.open_split('mnist', 'train', BUCKET_DATA)  # the copy, made by an earlier run
  tfds_source._LOCAL_DIRS.clear()  # pylint: disable=protected-access  # a later process
  _cut_off(monkeypatch)
  with caplog.at_level(logging.WARNING):
    train = tfds_source.open_split('mnist', 'train', BUCKET_DATA)
    test = tfds_source.open_split('mnist', 'test', BUCKET_DATA)
  _same(train[7], tfds_source.open_split('mnist', 'train', FIXTURE)[7])
  assert len(test) == len(tfds_source.open_split('mnist', 'test', FIXTURE))
  assert len(bucket_data) == 4  # nothing copied again
  # ours only: TFDS itself may warn while decoding (e.g. that OpenCV is missing, once a process)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
              and os.path.basename(r.pathname) == 'tfds_source.py']
  assert len(warnings) == 1, warnings
  assert warnings[0].startswith('TFDS dataset mnist: the bucket gs://bucket/tfds cannot be '
                                'reached (ConnectionError: network is unreachable); reading '
                                "this host's complete copy in ")
  assert os.path.join('mnist', '3.0.1') in warnings[0]
  # a dataset this host has no copy of: the error says the bucket could not be read
  with pytest.raises(DatasetNotFoundError) as error:
    tfds_source.open_split('imdb_reviews', 'train', BUCKET_DATA)
  assert ("TFDS dataset 'imdb_reviews' cannot be read: the bucket gs://bucket/tfds cannot be "
          'reached (ConnectionError: network is unreachable) and this host has no copy of the '
          'dataset in ') in str(error.value)
  assert 'gcloud storage ls gs://bucket/tfds' in str(error.value)


def test_an_unreachable_bucket_and_a_copy_cut_short_is_the_error(bucket_data, monkeypatch,
                                                                  tmp_path):
  """A copy without its dataset_info.json (not renamed into place whole) is not used."""
  tfds_source.open_split('mnist', 'train', BUCKET_DATA)
  tfds_source._LOCAL_DIRS.clear()  # pylint: disable=protected-access
  os.remove(_copy_root(tmp_path) / 'mnist' / '3.0.1' / 'dataset_info.json')
  _cut_off(monkeypatch)
  with pytest.raises(DatasetNotFoundError, match="'mnist' cannot be read: the bucket "
                     r'gs://bucket/tfds cannot be reached \(ConnectionError'):
    tfds_source.open_split('mnist', 'train', BUCKET_DATA)


def test_the_data_cache_is_chosen_by_the_environment():
  assert tfds_source.cache_root({'COMPARENETS_DATA_CACHE': '/d'}) == '/d'
  assert tfds_source.cache_root({'XDG_CACHE_HOME': '/x'}) == '/x/comparenets/tfds'
