"""The adding problem (Hochreiter & Schmidhuber 1997; Bai et al. 2018): sum the two marked values
of a T-step sequence. Sequence models only; MSE < 0.01 counts as solved (predicting 1: ~0.167).

    python -m comparenets.main --config=experiments/adding.py:model=lstm --workdir=/tmp/add

Arguments: ``model`` (tcn, rnn, lstm, gru), ``length`` (T, default 200), ``quick``.
The TCN's depth is chosen so that its receptive field covers T.
"""

from comparenets.experiment import experiment_config, parse_arg
from comparenets.models.conv import tcn_levels_for


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', length=200, quick=False)
  models = {
      'tcn': dict(channels=32, levels=tcn_levels_for(arg.length, 6), kernel_size=6),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  return experiment_config(
      arg, models, what='the adding problem',
      task=dict(name='adding', length=arg.length, validation_size=1000, test_size=1000,
                data_seed=0),
      train=dict(steps=3000, eval_batch_size=512, optimizer='adam', learning_rate=2e-3,
                 warmup_steps=100, grad_clip=1.0, eval_every=1000, checkpoint_every=1000),
      quick_task=dict(validation_size=256, test_size=256),
      quick_train=dict(eval_batch_size=256))
