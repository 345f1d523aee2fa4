"""Sentiment of IMDB movie reviews (TFDS imdb_reviews), sequence models over word embeddings.

    python -m comparenets.main --config=experiments/sentiment.py:model=lstm --workdir=/tmp/imdb

The dataset must be prepared in the array_record format (the error message says how when it is
not); ``--config.task.data_dir=DIR`` points at it. Arguments: ``model`` (tcn, rnn, lstm, gru),
``quick`` (2,000 training reviews, 64 tokens).
"""

from comparenets.experiment import experiment_config, parse_arg
from comparenets.models.conv import tcn_levels_for

MAX_LENGTH = 256
QUICK_LENGTH = 64


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', quick=False)
  length = QUICK_LENGTH if arg.quick else MAX_LENGTH
  models = {
      'tcn': dict(channels=64, levels=tcn_levels_for(length, 3), kernel_size=3, dropout=0.1),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  return experiment_config(
      arg, models, what='sentiment',
      task=dict(name='sentiment', dataset='imdb_reviews', data_dir='', vocab_size=20000,
                max_length=length, embed_dim=64, validation_fraction=0.1, split_seed=0,
                max_train_examples=0),
      head=dict(hidden=(), dropout=0.0),
      train=dict(steps=4000, eval_batch_size=512, warmup_steps=200, weight_decay=1e-4,
                 grad_clip=1.0, eval_every=1000, checkpoint_every=1000),
      quick_task=dict(max_train_examples=2000, vocab_size=5000),
      quick_train=dict(eval_batch_size=256))
