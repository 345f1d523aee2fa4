"""Digits classification (8x8, 10 classes) with any backbone.

    python -m comparenets.main --config=experiments/digits.py:model=lstm --workdir=/tmp/d
    python -m comparenets.main --config=experiments/digits.py:model=cnn,quick --workdir=/tmp/q

Arguments: ``model`` (cnn, tcn, rnn, lstm, gru), ``reading`` (auto: the CNN reads the image,
sequence models read it row by row; or rows / pixels), ``order`` (sequential / permuted) and
``quick`` (a seconds-long run for CPU debugging). ``--config.task.train_subset=0.125``
trains on a nested, class-stratified eighth of the training split (validation and test whole).
"""

from comparenets.experiment import experiment_config, parse_arg

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
  return experiment_config(
      arg, MODELS, what='digits',
      task=dict(name='digits', reading=arg.reading, order=arg.order, split_seed=0,
                train_subset=1.0),
      head=dict(hidden=(128,), dropout=0.0),
      train=dict(steps=2000, learning_rate=2e-3, warmup_steps=100, weight_decay=1e-4,
                 grad_clip=1.0))
