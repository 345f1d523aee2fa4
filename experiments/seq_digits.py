"""Sequential digits: the 8x8 digits read pixel by pixel (64 steps x 1 feature), the small
offline cousin of sequential / permuted MNIST. Sequence models only.

    python -m comparenets.main --config=experiments/seq_digits.py:model=gru --workdir=/tmp/s
    python -m comparenets.main --config=experiments/seq_digits.py:model=tcn,order=permuted \
        --workdir=/tmp/p

Arguments: ``model`` (tcn, rnn, lstm, gru), ``order`` (sequential / permuted), ``quick``.
The TCN is deep enough (5 levels, kernel 3: receptive field 125 steps) to see all 64 pixels.
"""

from comparenets.config_utils import parse_arg
from comparenets.errors import ConfigError
import ml_collections

MODELS = {
    'tcn': dict(channels=32, levels=5, kernel_size=3, dropout=0.0),
    'rnn': dict(hidden=128, layers=1),
    'lstm': dict(hidden=128, layers=1),
    'gru': dict(hidden=128, layers=1),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', order='sequential', quick=False)
  if arg.model not in MODELS:
    raise ConfigError(f'seq_digits runs sequence models; model must be one of '
                      f'{", ".join(sorted(MODELS))}, not {arg.model!r}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict({'name': arg.model, **MODELS[arg.model]})
  config.task = ml_collections.ConfigDict(dict(name='digits', reading='pixels', order=arg.order,
                                               permutation_seed=0, split_seed=0))
  config.head = ml_collections.ConfigDict(dict(hidden=(128,), dropout=0.0))
  config.train = ml_collections.ConfigDict(dict(
      steps=3000, batch_size=64, eval_batch_size=256, optimizer='adamw', learning_rate=2e-3,
      schedule='cosine', warmup_steps=200, weight_decay=1e-4, grad_clip=1.0, parallel='jit',
      log_every=100, eval_every=500, checkpoint_every=500, keep_checkpoints=3,
      async_checkpoints=True))
  if arg.quick:
    config.train.update(steps=40, warmup_steps=5, log_every=10, eval_every=20,
                        checkpoint_every=20)
  return config
