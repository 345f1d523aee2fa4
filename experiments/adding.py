"""The adding problem (Hochreiter & Schmidhuber 1997; Bai et al. 2018): sum the two marked values
of a T-step sequence. Sequence models only; MSE < 0.01 counts as solved (predicting 1: ~0.167).

    python -m comparenets.main --config=experiments/adding.py:model=lstm --workdir=/tmp/add

Arguments: ``model`` (tcn, rnn, lstm, gru), ``length`` (T, default 200), ``quick``.
The TCN's depth is chosen so that its receptive field covers T.
"""

from comparenets.config_utils import parse_arg
from comparenets.errors import ConfigError
from comparenets.models.conv import tcn_levels_for
import ml_collections


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', length=200, quick=False)
  models = {
      'tcn': dict(channels=32, levels=tcn_levels_for(arg.length, 6), kernel_size=6),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  if arg.model not in models:
    raise ConfigError(f'the adding problem runs sequence models; model must be one of '
                      f'{", ".join(sorted(models))}, not {arg.model!r}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict({'name': arg.model, **models[arg.model]})
  config.task = ml_collections.ConfigDict(dict(name='adding', length=arg.length,
                                               validation_size=1000, test_size=1000,
                                               data_seed=0))
  config.head = ml_collections.ConfigDict(dict(hidden=()))
  config.train = ml_collections.ConfigDict(dict(
      steps=4000, batch_size=64, eval_batch_size=500, optimizer='adam', learning_rate=2e-3,
      schedule='cosine', warmup_steps=100, weight_decay=0.0, grad_clip=1.0, parallel='jit',
      log_every=100, eval_every=1000, checkpoint_every=1000, keep_checkpoints=3,
      async_checkpoints=True, on_nonfinite='stop'))
  if arg.quick:
    config.task.update(validation_size=200, test_size=200)
    config.train.update(steps=40, warmup_steps=5, eval_batch_size=200, log_every=10,
                        eval_every=20, checkpoint_every=20)
  return config
