"""Text tasks: character language modelling (stdlib corpus, tiny_shakespeare) and IMDB sentiment."""

import os
import sysconfig

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from comparenets import tasks
from comparenets import train
from comparenets.data import text
from comparenets.errors import ConfigError
from comparenets.tasks import char_lm, sentiment


def _config(task, model='lstm', steps=4, **model_kw):
  config = ml_collections.ConfigDict(type_safe=False)
  config.seed = 0
  config.model = {'name': model, **({'hidden': 16} if model != 'tcn' else
                                    {'channels': 8, 'levels': 3}), **model_kw}
  config.task = task
  config.head = {}
  config.train = dict(steps=steps, batch_size=8, eval_batch_size=16, parallel='none',
                      log_every=2, eval_every=0, checkpoint_every=0, async_checkpoints=False)
  return ml_collections.ConfigDict(config.to_dict(), type_safe=False)


def test_stdlib_corpus_is_split_by_whole_files():
  corpus = text.stdlib_corpus()
  assert all(len(corpus[s]) > 100_000 for s in text.SPLITS)
  directory = sysconfig.get_paths()['stdlib']
  for name in ('os.py', 'argparse.py', 'typing.py', 'random.py'):
    with open(os.path.join(directory, name), 'rb') as f:
      content = f.read()
    home = text.stdlib_split_of(name)
    for split in text.SPLITS:
      found = corpus[split].tobytes().find(content) >= 0
      assert found == (split == home), (name, split)


def test_windows_predict_the_next_character():
  task = tasks.build('char_lm', length=16, eval_windows=4)
  batch = task.train_sampler(8, seed=0).batch(3)
  assert batch['inputs'].shape == batch['target'].shape == (8, 16)
  np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['target'][:, :-1])
  val = task.splits()['validation']
  assert val['inputs'].shape == (4, 16)
  np.testing.assert_array_equal(val['inputs'][1, 0], text.stdlib_corpus()['validation'][16])


@pytest.mark.parametrize('model', ['tcn', 'lstm', 'gru', 'rnn'])
def test_no_output_depends_on_a_later_input(model):
  setup = train.build_setup(_config({'name': 'char_lm', 'length': 24}, model))
  batch = setup.task.train_sampler(2, seed=0).batch(0)
  state = train.create_state(setup, jax.random.PRNGKey(0), batch)
  apply = lambda x: setup.model.apply({'params': state.params}, x, None)
  x = jnp.asarray(batch['inputs'])
  base = apply(x)
  for k in (5, 12, 23):
    changed = apply(x.at[:, k].set((x[:, k] + 7) % 256))
    np.testing.assert_array_equal(changed[:, :k], base[:, :k])  # earlier outputs unchanged
    assert not np.allclose(changed[:, k], base[:, k])  # the changed step itself matters


def test_bidirectional_models_cannot_do_language_modelling():
  with pytest.raises(ConfigError, match="task 'char_lm' predicts what comes next, which needs "
                     "a causal model"):
    train.build_setup(_config({'name': 'char_lm'}, 'gru', bidirectional=True))


def test_generation_continues_the_seed_to_the_requested_length():
  setup = train.build_setup(_config({'name': 'char_lm', 'length': 16}, 'gru'))
  batch = setup.task.train_sampler(2, seed=0).batch(0)
  state = train.create_state(setup, jax.random.PRNGKey(0), batch)
  seed = text.encode('import os\n')
  ids = char_lm.generate(setup.model, {'params': state.params}, seed, 50, 1.0,
                         jax.random.PRNGKey(3))
  assert len(ids) == len(seed) + 50
  assert text.decode(ids).startswith('import os\n')
  again = char_lm.generate(setup.model, {'params': state.params}, seed, 50, 1.0,
                           jax.random.PRNGKey(3))
  np.testing.assert_array_equal(ids, again)  # seeded


def test_char_lm_run_saves_samples(tmp_path):
  config = _config({'name': 'char_lm', 'length': 16, 'eval_windows': 8, 'sample_length': 20,
                    'num_samples': 2, 'seed_text': 'class '}, 'tcn')
  results = train.train_and_evaluate(config, str(tmp_path))
  assert 0 < results['test']['bpc'] < 9
  samples = (tmp_path / 'samples.txt').read_text()
  assert samples.count('=== sample') == 2
  assert all(s.startswith('class ') and len(s.encode()) >= 26 for s in results['samples'])


def test_tiny_shakespeare_loads_through_tfds():
  with tfds.testing.mock_data(num_examples=2):
    corpus = text.tfds_corpus('tiny_shakespeare')
  assert set(corpus) == set(text.SPLITS) and all(len(v) > 0 for v in corpus.values())


def test_tokenize_vocab_and_padding():
  assert sentiment.tokenize(b"It's GREAT!<br />Don't miss it.") == [
      "it's", 'great', "don't", 'miss', 'it']
  vocab = sentiment.build_vocab([['a', 'b', 'a'], ['c', 'a', 'b']], size=4)
  assert vocab == {'a': 2, 'b': 3}
  ids, n = sentiment.encode(['b', 'zzz', 'a'], vocab, 5)
  np.testing.assert_array_equal(ids, [3, sentiment.UNK, 2, sentiment.PAD, sentiment.PAD])
  assert n == 3


def test_imdb_splits_from_mock_data():
  with tfds.testing.mock_data(num_examples=120):
    task = tasks.build('sentiment', vocab_size=50, max_length=20, validation_fraction=0.25)
    splits = task.splits()
  assert splits['train']['inputs'].shape[1] == 20
  assert len(splits['train']['label']) + len(splits['validation']['label']) == 120
  assert len(splits['test']['label']) == 120
  m = splits['train']['mask']
  assert m[:, 0].all() and (m.sum(1) <= 20).all()
  real = splits['train']['inputs'] != sentiment.PAD
  nonempty = real.any(1)  # an empty review keeps one (padding) step so that it has a state
  np.testing.assert_array_equal(real[nonempty], m[nonempty])
  assert splits['train']['inputs'].max() < 50


@pytest.mark.parametrize('model', ['lstm', 'tcn', 'rnn'])
def test_padding_changes_nothing(model):
  with tfds.testing.mock_data(num_examples=40):
    setup = train.build_setup(_config({'name': 'sentiment', 'vocab_size': 60,
                                       'max_length': 30}, model))
    batch = setup.task.splits()['test']
  state = train.create_state(setup, jax.random.PRNGKey(0), batch)
  apply = lambda ids, mask: setup.model.apply({'params': state.params}, ids, mask)
  ids, mask = batch['inputs'][:4], batch['mask'][:4]
  short = apply(ids, mask)
  garbage = np.random.default_rng(0).integers(2, 60, size=(4, 10)).astype(np.int32)
  longer_ids = np.concatenate([np.where(mask, ids, garbage[:, :1]), garbage], axis=1)
  longer_mask = np.concatenate([mask, np.zeros((4, 10), bool)], axis=1)
  np.testing.assert_allclose(apply(longer_ids, longer_mask), short, atol=1e-5)


def test_sentiment_trains_end_to_end_on_mock_imdb(tmp_path):
  with tfds.testing.mock_data(num_examples=64):
    results = train.train_and_evaluate(
        _config({'name': 'sentiment', 'vocab_size': 100, 'max_length': 16}, 'gru'),
        str(tmp_path))
  assert 0.0 <= results['test']['accuracy'] <= 1.0
