"""Sentiment of IMDB movie reviews (TFDS imdb_reviews), sequence models over word embeddings.

    python -m comparenets.main --config=experiments/sentiment.py:model=lstm --workdir=/tmp/imdb

The dataset must be prepared in the array_record format (the error message says how when it is
not); ``--config.task.data_dir=DIR`` points at it. Arguments: ``model`` (tcn, rnn, lstm, gru),
``quick`` (2,000 training reviews, 64 tokens).
"""

from comparenets.config_utils import parse_arg
from comparenets.errors import ConfigError
from comparenets.models.conv import tcn_levels_for
import ml_collections

MAX_LENGTH = 256


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', quick=False)
  models = {
      'tcn': dict(channels=64, levels=tcn_levels_for(MAX_LENGTH, 3), kernel_size=3, dropout=0.1),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  if arg.model not in models:
    raise ConfigError(f'sentiment runs sequence models; model must be one of '
                      f'{", ".join(sorted(models))}, not {arg.model!r}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict({'name': arg.model, **models[arg.model]})
  config.task = ml_collections.ConfigDict(dict(
      name='sentiment', dataset='imdb_reviews', data_dir='', vocab_size=20000,
      max_length=MAX_LENGTH, embed_dim=64, validation_fraction=0.1, split_seed=0,
      max_train_examples=0))
  config.head = ml_collections.ConfigDict(dict(hidden=(), dropout=0.0))
  config.train = ml_collections.ConfigDict(dict(
      steps=4000, batch_size=64, eval_batch_size=500, optimizer='adamw', learning_rate=1e-3,
      schedule='cosine', warmup_steps=200, weight_decay=1e-4, grad_clip=1.0, parallel='jit',
      log_every=100, eval_every=1000, checkpoint_every=1000, keep_checkpoints=3,
      async_checkpoints=True, on_nonfinite='stop'))
  if arg.quick:
    config.task.update(max_train_examples=2000, max_length=64, vocab_size=5000)
    config.model.update({'levels': tcn_levels_for(64, 3)} if arg.model == 'tcn' else {})
    config.train.update(steps=40, warmup_steps=5, eval_batch_size=200, log_every=10,
                        eval_every=20, checkpoint_every=20)
  return config
