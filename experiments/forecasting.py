"""Multi-step forecasting of Mackey-Glass (tau = 17) or the Lorenz-63 system, generated offline.
Sequence models only; results.json compares the model with persistence and a least-squares
linear autoregression at every horizon step.

    python -m comparenets.main --config=experiments/forecasting.py:model=gru --workdir=/tmp/mg
    python -m comparenets.main --config=experiments/forecasting.py:model=tcn,series=lorenz \
        --workdir=/tmp/lorenz

Arguments: ``model`` (tcn, rnn, lstm, gru), ``series`` (mackey_glass, lorenz), ``quick``.
"""

from comparenets.config_utils import parse_arg
from comparenets.errors import ConfigError
from comparenets.models.conv import tcn_levels_for
import ml_collections

CONTEXT = 32


def get_config(arg=None):
  arg = parse_arg(arg, model='gru', series='mackey_glass', quick=False)
  models = {
      'tcn': dict(channels=64, levels=tcn_levels_for(CONTEXT, 3), kernel_size=3),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  if arg.model not in models:
    raise ConfigError(f'forecasting runs sequence models; model must be one of '
                      f'{", ".join(sorted(models))}, not {arg.model!r}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict({'name': arg.model, **models[arg.model]})
  config.task = ml_collections.ConfigDict(dict(
      name='forecasting', series=arg.series, sample_every=0.0, length=6000, context=CONTEXT,
      horizon=12, stride=1, train_fraction=0.7, validation_fraction=0.1))
  config.head = ml_collections.ConfigDict(dict(hidden=(128,)))
  config.train = ml_collections.ConfigDict(dict(
      steps=5000, batch_size=64, eval_batch_size=500, optimizer='adam', learning_rate=2e-3,
      schedule='cosine', warmup_steps=100, weight_decay=0.0, grad_clip=1.0, parallel='jit',
      log_every=100, eval_every=1000, checkpoint_every=1000, keep_checkpoints=3,
      async_checkpoints=True, on_nonfinite='stop'))
  if arg.quick:
    config.task.length = 1500
    config.train.update(steps=40, warmup_steps=5, log_every=10, eval_every=20,
                        checkpoint_every=20)
  return config
