"""Copy memory (Bai et al. 2018): remember ten digits across T blank steps and repeat them after
a delimiter. Sequence models only; recall accuracy on the ten digits is the target metric
(guessing: 1/8).

    python -m comparenets.main --config=experiments/copy_memory.py:model=tcn --workdir=/tmp/copy

Arguments: ``model`` (tcn, rnn, lstm, gru), ``length`` (T, default 100), ``quick``.
The TCN's depth is chosen so that its receptive field covers all T + 20 steps.
"""

from comparenets.experiment import experiment_config, parse_arg
from comparenets.models.conv import tcn_levels_for


def get_config(arg=None):
  arg = parse_arg(arg, model='tcn', length=100, quick=False)
  models = {
      'tcn': dict(channels=32, levels=tcn_levels_for(arg.length + 20, 8), kernel_size=8),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  return experiment_config(
      arg, models, what='copy memory',
      task=dict(name='copy_memory', length=arg.length, digits=10, validation_size=1000,
                test_size=1000, data_seed=0),
      train=dict(steps=4000, eval_batch_size=512, optimizer='adam', learning_rate=2e-3,
                 warmup_steps=100, grad_clip=1.0, eval_every=1000, checkpoint_every=1000),
      quick_task=dict(validation_size=256, test_size=256),
      quick_train=dict(eval_batch_size=256))
