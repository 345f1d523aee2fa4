"""Digits classification (8x8, 10 classes) with any backbone.

    python -m comparenets.main --config=experiments/digits.py:model=lstm --workdir=/tmp/d
    python -m comparenets.main --config=experiments/digits.py:model=cnn,quick --workdir=/tmp/q

Arguments: ``model`` (cnn, tcn, rnn, lstm, gru), ``reading`` (auto: the CNN reads the image,
sequence models read it row by row; or rows / pixels), ``order`` (sequential / permuted) and
``quick`` (a seconds-long run for CPU debugging).
"""

from comparenets.config_utils import parse_arg
from comparenets.errors import ConfigError
import ml_collections

MODELS = {
    'cnn': dict(widths=(32, 64), convs_per_block=1, kernel_size=3, pool='max', norm='none',
                dropout=0.0),
    'tcn': dict(channels=64, levels=3, kernel_size=3, dropout=0.0),
    'rnn': dict(hidden=128, layers=1),
    'lstm': dict(hidden=128, layers=1),
    'gru': dict(hidden=128, layers=1),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='cnn', reading='auto', order='sequential', quick=False)
  if arg.model not in MODELS:
    raise ConfigError(f'unknown model {arg.model!r}; choose one of {", ".join(sorted(MODELS))}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict({'name': arg.model, **MODELS[arg.model]})
  config.task = ml_collections.ConfigDict(dict(name='digits', reading=arg.reading,
                                               order=arg.order, split_seed=0))
  config.head = ml_collections.ConfigDict(dict(hidden=(128,), dropout=0.0))
  config.train = ml_collections.ConfigDict(dict(
      steps=2000, batch_size=64, eval_batch_size=256, optimizer='adamw', learning_rate=2e-3,
      schedule='cosine', warmup_steps=100, weight_decay=1e-4, grad_clip=1.0, parallel='jit',
      log_every=100, eval_every=500, checkpoint_every=500, keep_checkpoints=3,
      async_checkpoints=True))
  if arg.quick:
    config.train.update(steps=40, warmup_steps=5, log_every=10, eval_every=20,
                        checkpoint_every=20)
  return config
