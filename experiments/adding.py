"""The adding problem (Hochreiter & Schmidhuber 1997; Bai et al. 2018): sum the two marked values
of a T-step sequence. Sequence models only; MSE < 0.01 counts as solved (predicting 1: ~0.167).

    python -m comparenets.main --config=experiments/adding.py:model=lstm --workdir=/tmp/add

Arguments: ``model`` (tcn, rnn, lstm, gru), ``length`` (T, default 200), ``quick``, and for
sequences of different lengths ``min_length`` (train on lengths drawn uniformly from
[min_length, length], padded and masked; 0, the default: every sequence T steps) and
``test_lengths`` (lengths joined by '+', e.g. ``10+50+150``: a test set at each, reported as
``mse_T<length>``)::

    python -m comparenets.main \\
        --config=experiments/adding.py:model=gru,length=75,min_length=25,test_lengths=10+50+150 \\
        --workdir=/tmp/add_lengths

The task section names ``min_length`` and ``test_lengths`` only when they are set, so a
fixed-length run's config is what it always was (its workdir resumes). The TCN's depth is
chosen so that its receptive field covers the longest length it trains or is tested on.
"""

from comparenets.errors import ConfigError
from comparenets.experiment import experiment_config, parse_arg
from comparenets.models.conv import tcn_levels_for


def _lengths(text: str) -> tuple[int, ...]:
  try:
    return tuple(int(t) for t in text.split('+') if t.strip())
  except ValueError:
    raise ConfigError(f"experiment argument test_lengths={text!r} must be lengths joined by '+', "
                      'e.g. 10+50+150') from None


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', length=200, quick=False, min_length=0, test_lengths='')
  test_lengths = _lengths(arg.test_lengths)
  longest = max((arg.length,) + test_lengths)
  models = {
      'tcn': dict(channels=32, levels=tcn_levels_for(longest, 6), kernel_size=6),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  lengths = {}
  if arg.min_length:
    lengths['min_length'] = arg.min_length
  if test_lengths:
    lengths['test_lengths'] = test_lengths
  return experiment_config(
      arg, models, what='the adding problem',
      task=dict(name='adding', length=arg.length, validation_size=1000, test_size=1000,
                data_seed=0, **lengths),
      train=dict(steps=3000, eval_batch_size=512, optimizer='adam', learning_rate=2e-3,
                 warmup_steps=100, grad_clip=1.0, eval_every=1000, checkpoint_every=1000),
      quick_task=dict(validation_size=256, test_size=256),
      quick_train=dict(eval_batch_size=256))
