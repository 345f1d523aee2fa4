"""Sequential digits: the 8x8 digits read pixel by pixel (64 steps x 1 feature), the small
offline cousin of sequential / permuted MNIST. Sequence models only.

    python -m comparenets.main --config=experiments/seq_digits.py:model=gru --workdir=/tmp/s
    python -m comparenets.main --config=experiments/seq_digits.py:model=tcn,order=permuted \
        --workdir=/tmp/p

Arguments: ``model`` (tcn, rnn, lstm, gru), ``order`` (sequential / permuted), ``quick``.
``--config.task.train_subset`` trains on part of the training split, as in digits.py.
The TCN is deep enough (5 levels, kernel 3: receptive field 125 steps) to see all 64 pixels.
"""

from comparenets.experiment import experiment_config, parse_arg

MODELS = {
    'tcn': dict(channels=32, levels=5, kernel_size=3, dropout=0.0),
    'rnn': dict(hidden=128, layers=1),
    'lstm': dict(hidden=128, layers=1),
    'gru': dict(hidden=128, layers=1),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', order='sequential', quick=False)
  return experiment_config(
      arg, MODELS, what='seq_digits',
      task=dict(name='digits', reading='pixels', order=arg.order, permutation_seed=0,
                split_seed=0, train_subset=1.0),
      head=dict(hidden=(128,), dropout=0.0),
      train=dict(steps=3000, learning_rate=2e-3, warmup_steps=200, weight_decay=1e-4,
                 grad_clip=1.0))
