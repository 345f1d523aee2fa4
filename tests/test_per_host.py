"""Data per host (issue 17, item 3), with two processes x 4 CPU devices joined over 127.0.0.1.

IMDB sentiment, on the real array_record files of tests/data/tfds (24 training and 24 test
reviews of random words): the vocabulary and the splits are those of the former whole-split
build (`_whole_split_build`, the code this replaced), and each process reads only its share at
start and only its rows of each batch, which tile the one process's batches.

Super-resolution on DIV2K (`tfds.testing.mock_data`): each process reads and decodes only its
share of the held-out whole images, sums the tile loss over their tiles and measures them, and
every process gets the one process's validation and test metrics through the train loop's
`evaluate`; process 0 still writes the per-image results of every test image.
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

import pytest
import tensorflow_datasets as tfds

from comparenets.tasks import super_resolution as sr

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


def _two_processes(tmp_path, function: str, count: int = 2) -> list[dict]:
  """Runs ``function(index, port, out)`` of this module in two processes joined as one run
  (4 CPU devices each), or with ``count=1`` in one process of 8 devices (port None); returns
  what each wrote to ``out/<index>.json``."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1] if count == 2 else None
  os.makedirs(tmp_path, exist_ok=True)
  tests = os.path.dirname(os.path.abspath(__file__))
  code = (f'import sys; sys.path[:0] = [{tests!r}, {faults.ROOT!r}]; import test_per_host '
          f'as t; t.{function}(int(sys.argv[1]), {port}, {str(tmp_path)!r})')
  procs = [subprocess.Popen([sys.executable, '-c', code, str(i)], cwd=faults.ROOT,
                            env=faults.environment(8 // count), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True) for i in range(count)]
  for p in procs:
    assert p.wait(timeout=150) == 0, p.stderr.read()[-3000:]
  return [json.load(open(tmp_path / f'{i}.json')) for i in range(count)]


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
  # a training batch reads this process's rows (4 of 8) and nothing more, each record once a
  # process: a review read in an earlier epoch is kept encoded (SourceSplit keep=True)
  train_keys = one.splits()['train'].indices
  for i, g in enumerate(got):
    assert len(g['batch_reads']) == STEPS
    seen = set()
    for step, keys in enumerate(g['batch_reads']):
      mine = {int(k) for k in train_keys[sampler.indices(step)[pipeline.process_rows(BATCH, i,
                                                                                       2)]]}
      assert len(mine) == BATCH // 2
      assert sorted(keys) == sorted(mine - seen), step
      seen |= mine
    assert sum(map(len, g['batch_reads'])) < STEPS * BATCH // 2  # later epochs read less
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
  pairs = task._own_pairs(test)  # one process: every measurable image
  assert len(pairs) >= 4  # the mock's images big enough to measure
  # as before: the mean over every image, measured in one process
  per_image = task.measure(predict, pairs)
  for key in ('psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim'):
    assert metrics[key] == float(np.mean([m[key] for m in per_image.values()]))
  assert metrics['psnr'] != metrics['bicubic_psnr']  # the residual changes what is measured
  assert got[0]['metrics'] == got[1]['metrics'] == metrics
  # each measured the measurable images of its half of the 12 test images (those it read)
  with tfds.testing.mock_data(num_examples=16):
    every = list(task.data()['test'])
  halves = [[[1, *p.lr.shape] for p in every[part] if task._measurable(p)]
            for part in (slice(0, 6), slice(6, 12))]
  assert [g['measured'] for g in got] == halves and all(halves)
  assert [m for half in halves for m in half] == [[1, *p.lr.shape] for p in pairs]


def test_a_process_split_batches_each_processs_own_examples_padded_to_one_count():
  sizes = [5, 0, 3]
  starts = np.cumsum([0] + sizes)
  splits = [pipeline.ProcessSplit({'x': np.arange(starts[i], starts[i + 1], dtype=np.float32)},
                                  sizes, i, 3) for i in range(3)]
  assert [pipeline.split_size(s) for s in splits] == [8] * 3
  batches = [list(pipeline.eval_batches(s, 6, i, 3)) for i, s in enumerate(splits)]
  assert [len(b) for b in batches] == [3, 3, 3]  # the most any process needs: ceil(5 / 2)
  weights = [[list(b['weight']) for b in part] for part in batches]
  assert weights == [[[1, 1], [1, 1], [1, 0]], [[0, 0]] * 3, [[1, 1], [1, 0], [0, 0]]]
  real = [b['x'][b['weight'] > 0] for part in batches for b in part]
  np.testing.assert_array_equal(np.sort(np.concatenate(real)), np.arange(8))
  assert all(b['x'].dtype == np.float32 and b['x'].shape == (2,) for p in batches for b in p)
  with pytest.raises(ValueError, match='holds the examples of process 2 of 3'):
    next(pipeline.eval_batches(splits[2], 6, 0, 3))


def test_one_process_tiles_every_div2k_image_as_before():
  """In one process the held-out splits are the tiles of every measurable image, as the code
  before per-process reading made them (written out here: every image read and decoded)."""
  with tfds.testing.mock_data(num_examples=16):
    task = tasks.build('super_resolution', **DIV2K)
    splits = task.splits()
    for name, source, keys, prefix in (('validation', 'train', range(12, 16), 'train/'),
                                       ('test', 'validation', range(12), 'validation/')):
      records = pipeline.read_records(
          tfds_source.open_split('div2k/bicubic_x2', source), keys)
      pairs = [sr.div2k_pair(f'{prefix}{k}', r, 2) for k, r in zip(keys, records)]
      pairs = [p for p in pairs if min(p.hr.shape[:2]) >= 11 + 2 * 2]
      assert type(splits[name]) is dict  # pylint: disable=unidiomatic-typecheck
      _same(splits[name], sr.tiles(pairs, 2, DIV2K['eval_tile']))
      assert [p.name for p in task._own_pairs(splits[name])] == [p.name for p in pairs]


EVAL = dict(DIV2K, eval_tile=12)
EVAL_BATCH = 16


def _div2k_evaluation() -> dict:
  """Mock DIV2K evaluated by the train loop's `evaluate` (validation and test, with their
  whole-image metrics), a fixed model whose head is not zero; the images decoded while the
  splits are made, while evaluating and while process 0 writes its artifacts and figures; the
  number of evaluation batches. Every process of a run must call it (collectives)."""
  decoded, batches = [], []
  pair, eval_batches = sr.div2k_pair, pipeline.eval_batches

  def recording_pair(name, example, scale):
    decoded.append(name)
    return pair(name, example, scale)

  def counting_batches(*args):  # the train loop's batches (predict's have no process)
    for batch in eval_batches(*args):
      batches[-1] += len(args) == 4
      yield batch

  sr.div2k_pair, pipeline.eval_batches = recording_pair, counting_batches
  try:
    return _evaluated(decoded, batches)
  finally:
    sr.div2k_pair, pipeline.eval_batches = pair, eval_batches


def _evaluated(decoded: list, batches: list) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from comparenets import parallel as parallels  # pylint: disable=g-import-not-at-top
  from comparenets import train  # pylint: disable=g-import-not-at-top
  from comparenets.experiment import load_config  # pylint: disable=g-import-not-at-top
  config = load_config('super_resolution.py', 'quick,dataset=div2k',
                       {**{f'task.{k}': v for k, v in EVAL.items()},
                        'train.eval_batch_size': EVAL_BATCH, 'train.parallel': 'jit'})
  out = {'decoded': {}, 'metrics': {}, 'batches': {}}
  with tfds.testing.mock_data(num_examples=16):
    setup = train.build_setup(config)
    splits = setup.task.splits()
    out['decoded']['splits'], decoded[:] = list(decoded), []
    t = EVAL['eval_tile']
    state = train.create_state(setup, jax.random.PRNGKey(0),
                               {'inputs': np.zeros((1, t // 2, t // 2, 1), np.float32),
                                'target': np.zeros((1, t, t, 1), np.float32)})
    state = state.replace(params=jax.tree.map(  # a head that is not zero: the model != bicubic
        lambda p: p + 0.02 * np.cos(np.arange(p.size, dtype=np.float32)).reshape(p.shape),
        state.params))
    parallel = train.make_parallel(setup)
    placed = parallel.place(state)
    apply = train._split_metrics_apply(setup)  # pylint: disable=protected-access
    for name in ('validation', 'test'):
      batches.append(0)
      out['metrics'][name] = train.evaluate(parallel, placed, setup.task, splits[name],
                                            EVAL_BATCH, apply)
      out['batches'][name] = batches[-1]
      out['examples'] = {**out.get('examples', {}), name: pipeline.split_size(splits[name])}
    out['decoded']['evaluate'], decoded[:] = list(decoded), []
    if parallels.this_process()[0] == 0:
      variables = {'params': state.params, **state.model_state}
      out['test_images'] = setup.task.write_artifacts(setup.model, variables, '', None)[
          'test_images']
      figure = setup.task.figures(tasks.make_predict(setup.task, setup.model, 'image',
                                                     variables, batch_size=1))
      out['figure'] = figure['super_resolution']._suptitle.get_text()  # pylint: disable=protected-access
      out['decoded']['artifacts'] = list(decoded)
  return out


def div2k_eval_process(index: int, port: int | None, out: str) -> None:
  """Process ``index`` of 2 (of 1 without a port): writes `_div2k_evaluation`'s results to
  ``out``."""
  if port is not None:
    _start(index, port)
  with open(os.path.join(out, f'{index}.json'), 'w') as f:
    json.dump(_div2k_evaluation(), f)


def test_two_processes_read_their_div2k_images_and_evaluate_as_one_process(tmp_path):
  got = _two_processes(tmp_path / 'two', 'div2k_eval_process')
  # one process of 8 devices, started as they are: the model's outputs in the test process,
  # under other XLA CPU settings (conftest), differ in the ninth digit
  (one,) = _two_processes(tmp_path / 'one', 'div2k_eval_process', count=1)
  # at start each decoded its half of each held-out split; evaluating decoded nothing
  validation = [f'train/{i}' for i in range(12, 16)]
  test = [f'validation/{i}' for i in range(12)]
  assert sorted(one['decoded']['splits']) == sorted(validation + test)
  assert [sorted(g['decoded']['splits']) for g in got] == [
      sorted(validation[:2] + test[:6]), sorted(validation[2:] + test[6:])]
  assert one['decoded']['evaluate'] == got[0]['decoded']['evaluate'] == \
      got[1]['decoded']['evaluate'] == []
  # process 0 read the other test images for the per-image results (and nothing else)
  assert one['decoded']['artifacts'] == []
  assert sorted(set(got[0]['decoded']['artifacts'])) == sorted(test[6:])
  assert got[0]['test_images'] == one['test_images'] and len(one['test_images']) >= 4
  assert got[0]['figure'] == one['figure']
  for name in ('validation', 'test'):
    # the same number of batches on both processes; each tile once: the same count
    assert got[0]['batches'][name] == got[1]['batches'][name] >= one['batches'][name] >= 1
    assert got[0]['examples'][name] == got[1]['examples'][name] == one['examples'][name]
    want = one['metrics'][name]
    assert want['psnr'] != want['bicubic_psnr'] and want['loss'] != want['bicubic_loss']
    for g in got:
      assert set(g['metrics'][name]) == set(want)
      for key, value in want.items():
        if key.endswith('loss'):  # a sum over tiles in other batches: rounding apart
          assert g['metrics'][name][key] == pytest.approx(value, rel=1e-6, abs=0), key
        else:  # whole-image metrics, gathered in image order: exactly one process's
          assert g['metrics'][name][key] == value, key


def test_a_kept_split_converts_each_example_once_and_gives_the_same_rows():
  source = tfds_source.open_split('imdb_reviews', 'train', FIXTURE)
  converted = []

  def convert(example):
    converted.append(int(example['label']))
    return {'label': np.asarray(example['label'], np.int32), 'n': np.asarray(len(converted))}

  plain = pipeline.SourceSplit(source, lambda e: {'label': np.asarray(e['label'], np.int32)},
                               ('label',), np.arange(3, 20))
  kept = pipeline.SourceSplit(source, convert, ('label', 'n'), np.arange(3, 20), keep=True)
  first = kept.take(np.array([4, 0, 4, 9]))
  assert len(converted) == 3  # 4, 0 and 9: a repeated position is converted once
  again = kept.take(np.array([9, 1, 0]))
  assert len(converted) == 4  # only 1 is new
  np.testing.assert_array_equal(first['label'], plain.take(np.array([4, 0, 4, 9]))['label'])
  np.testing.assert_array_equal(again['label'], plain.take(np.array([9, 1, 0]))['label'])
  # the kept rows are the first conversions, not new ones
  np.testing.assert_array_equal(again['n'][[0, 2]], first['n'][[3, 1]])
