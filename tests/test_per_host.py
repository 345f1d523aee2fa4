"""Data per host (issue 17, item 3), with two processes x 4 CPU devices joined over 127.0.0.1.

IMDB sentiment, on the real array_record files of tests/data/tfds (24 training and 24 test
reviews of random words): the vocabulary and the splits are those of the former whole-split
build (`_whole_split_build`, the code this replaced), and each process reads only its share at
start and only its rows of each batch, which tile the one process's batches.

Super-resolution on DIV2K (`tfds.testing.mock_data`): each process measures only its share of
the held-out whole images, and every process gets the one process's metrics.
"""

import collections
import json
import os
import socket
import subprocess
import sys

import numpy as np

from comparenets import tasks
from comparenets.data import pipeline
from comparenets.data import tfds_source
from comparenets.tasks import sentiment
from comparenets.tasks.images import holdout

import tensorflow_datasets as tfds

import faults

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'tfds')
TASK = dict(data_dir=FIXTURE, vocab_size=40, max_length=24, validation_fraction=0.25)
BATCH, STEPS = 8, 6  # 18 training reviews: 2 steps an epoch, so 3 epochs


def _whole_split_build(vocab_size, max_length, validation_fraction, split_seed=0, **_):
  """The vocabulary and encoded splits as one process built them before (every review read,
  tokenized and encoded up front), written out here as the reference."""
  read = lambda split: pipeline.read_records(
      tfds_source.open_split('imdb_reviews', split, FIXTURE), range(24))
  train, test = read('train'), read('test')
  labels = np.array([int(r['label']) for r in train], np.int32)
  (kept, _), (held, _) = holdout(np.arange(24), labels, validation_fraction, split_seed)
  tokens = [sentiment.tokenize(r['text']) for r in train]
  vocab = sentiment.build_vocab([tokens[i] for i in kept], vocab_size)

  def encoded(records):
    ids, lengths = zip(*(sentiment.encode(sentiment.tokenize(r['text']), vocab, max_length)
                         for r in records))
    return {'inputs': np.stack(ids),
            'mask': np.arange(max_length)[None] < np.maximum(lengths, 1)[:, None],
            'label': np.array([int(r['label']) for r in records], np.int32)}

  return vocab, {'train': encoded([train[i] for i in kept]),
                 'validation': encoded([train[i] for i in held]), 'test': encoded(test)}


def _same(a, b):
  assert set(a) == set(b)
  for key in a:
    assert np.asarray(a[key]).dtype == np.asarray(b[key]).dtype, key
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_the_vocabulary_and_splits_are_the_whole_split_builds():
  task = tasks.build('sentiment', **TASK)
  splits = task.splits()
  vocab, reference = _whole_split_build(**TASK)
  assert task.vocab == vocab and len(vocab) == TASK['vocab_size'] - 2
  for name in ('train', 'validation', 'test'):
    assert isinstance(splits[name], pipeline.SourceSplit)  # nothing encoded up front
    _same({k: pipeline.column(splits[name], k) for k in sentiment.FIELDS}, reference[name])
  # the counts of the held-out reviews are left out: counting every review gives another one
  everything = sentiment.build_vocab(
      [sentiment.tokenize(r['text']) for r in pipeline.read_records(
          tfds_source.open_split('imdb_reviews', 'train', FIXTURE), range(24))],
      TASK['vocab_size'])
  assert everything != vocab


def _start(index: int, port: int) -> None:
  from comparenets import distributed  # pylint: disable=g-import-not-at-top  # a subprocess
  distributed.initialize(f'127.0.0.1:{port}', 2, index)


def imdb_process(index: int, port: int, out: str) -> None:
  """Process ``index`` of 2 (started by the test below): writes the records it read at start,
  its vocabulary and its rows of the training and evaluation batches to ``out``."""
  _start(index, port)
  reads = []
  original = pipeline.read_records

  def recording(source, keys):
    keys = [int(k) for k in keys]
    reads.append(keys)
    return original(source, keys)

  pipeline.read_records = recording
  task = tasks.build('sentiment', **TASK)
  splits = task.splits()
  at_start, reads[:] = list(reads), []
  sampler = task.train_sampler(BATCH, 0)
  arrays = {}
  for step in range(STEPS):
    for key, value in sampler.batch(step, index, 2).items():
      arrays[f'train/{step}/{key}'] = value
  batch_reads, reads[:] = list(reads), []
  for name in ('validation', 'test'):
    for b, batch in enumerate(pipeline.eval_batches(splits[name], BATCH, index, 2)):
      for key, value in batch.items():
        arrays[f'{name}/{b}/{key}'] = value
  np.savez(os.path.join(out, f'{index}.npz'), **arrays)
  with open(os.path.join(out, f'{index}.json'), 'w') as f:
    json.dump({'vocab': task.vocab, 'at_start': at_start, 'batch_reads': batch_reads}, f)


def _two_processes(tmp_path, function: str) -> list[dict]:
  """Runs ``function(index, port, out)`` of this module in two processes joined as one run
  (4 CPU devices each); returns what each wrote to ``out/<index>.json``."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  tests = os.path.dirname(os.path.abspath(__file__))
  code = (f'import sys; sys.path[:0] = [{tests!r}, {faults.ROOT!r}]; import test_per_host '
          f'as t; t.{function}(int(sys.argv[1]), {port}, {str(tmp_path)!r})')
  procs = [subprocess.Popen([sys.executable, '-c', code, str(i)], cwd=faults.ROOT,
                            env=faults.environment(4), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  for p in procs:
    assert p.wait(timeout=150) == 0, p.stderr.read()[-3000:]
  return [json.load(open(tmp_path / f'{i}.json')) for i in range(2)]


def test_two_processes_read_their_shares_and_build_one_processs_vocabulary_and_batches(
    tmp_path):
  got = _two_processes(tmp_path, 'imdb_process')
  rows = [np.load(tmp_path / f'{i}.npz') for i in range(2)]

  vocab, reference = _whole_split_build(**TASK)
  assert got[0]['vocab'] == got[1]['vocab'] == vocab
  # at start each read its half of the training records, and nothing else
  assert [sorted(k for keys in g['at_start'] for k in keys) for g in got] == [
      list(range(12)), list(range(12, 24))]

  one = tasks.build('sentiment', **TASK)
  sampler = one.train_sampler(BATCH, 0)
  for step in range(STEPS):
    whole = sampler.batch(step)
    _same(whole, {k: np.concatenate([r[f'train/{step}/{k}'] for r in rows])
                  for k in sentiment.FIELDS})
    _same(whole, {k: v[sampler.indices(step)] for k, v in reference['train'].items()})
  # a training batch read 4 records in each process: its rows, nothing more
  assert [[len(keys) for keys in g['batch_reads']] for g in got] == [[BATCH // 2] * STEPS] * 2
  for name in ('validation', 'test'):
    batches = list(pipeline.eval_batches(one.splits()[name], BATCH))
    for b, batch in enumerate(batches):
      _same(batch, {k: np.concatenate([r[f'{name}/{b}/{k}'] for r in rows]) for k in batch})
    assert f'{name}/{len(batches)}/label' not in rows[0]
    weight = np.concatenate([b['weight'] for b in batches]) > 0
    _same(reference[name], {k: np.concatenate([b[k] for b in batches])[weight]
                            for k in sentiment.FIELDS})


def test_grain_workers_tokenize_the_same_training_batches():
  """The split's reader (the source and the vocabulary) pickles into a grain worker, which
  gives the in-process batches, step for step, for a process's rows too."""
  plain = tasks.build('sentiment', **TASK).train_sampler(BATCH, seed=2)
  streamed = tasks.build('sentiment', read_workers=1, **TASK).train_sampler(BATCH, seed=2)
  assert isinstance(streamed, pipeline.StreamedSampler)
  try:
    for step in [0, 0, 1, 2, 3]:
      _same(streamed.batch(step, 1, 2), plain.batch(step, 1, 2))
    assert streamed._next == (4, 1, 2)  # steps 1 to 3 came from the worker
  finally:
    streamed.close()


DIV2K = dict(dataset='div2k', scale=2, patch=8, eval_tile=8, div2k_validation_images=4,
             max_test_images=12)


def _div2k_metrics(measured: list | None = None) -> dict:
  """The test split's metrics of a fixed, image-dependent residual (its predictions recorded
  in ``measured``), from mock DIV2K; every process must call it (a collective)."""
  with tfds.testing.mock_data(num_examples=16):
    task = tasks.build('super_resolution', **DIV2K)
    test = task.splits()['test']

  def predict(arrays):
    lr = np.asarray(arrays['inputs'])
    if measured is not None:
      measured.append(lr.shape)
    return 0.05 * np.sin(np.repeat(np.repeat(lr, 2, 1), 2, 2) * 7.0)

  return task, test, predict, task.split_metrics(predict, test)


def div2k_process(index: int, port: int, out: str) -> None:
  """Process ``index`` of 2: writes its test metrics and the images it measured to ``out``."""
  _start(index, port)
  measured = []
  metrics = _div2k_metrics(measured)[3]
  with open(os.path.join(out, f'{index}.json'), 'w') as f:
    json.dump({'metrics': metrics, 'measured': measured}, f)


def test_two_processes_measure_their_share_of_div2k_images_and_get_one_processs_metrics(
    tmp_path):
  got = _two_processes(tmp_path, 'div2k_process')
  task, test, predict, metrics = _div2k_metrics()
  pairs = task._pairs_of(test)
  assert len(pairs) >= 4  # the mock's images big enough to measure
  # as before: the mean over every image, measured in one process
  per_image = task.measure(predict, pairs)
  for key in ('psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim'):
    assert metrics[key] == float(np.mean([m[key] for m in per_image.values()]))
  assert metrics['psnr'] != metrics['bicubic_psnr']  # the residual changes what is measured
  assert got[0]['metrics'] == got[1]['metrics'] == metrics
  half = len(pairs) // 2
  assert [g['measured'] for g in got] == [[[1, *p.lr.shape] for p in pairs[:half]],
                                          [[1, *p.lr.shape] for p in pairs[half:]]]
