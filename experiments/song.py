"""Polyphonic music: next-step prediction of J. S. Bach's four-part chorales from music21's corpus
as piano rolls (53 MIDI keys, one step per eighth note), a sigmoid per key; NLL per time step
(nats, Bai et al.'s JSB Chorales metric) and frame accuracy, against the previous-frame and
per-key-frequency baselines. Causal sequence models only. The first run parses the scores
(10 s on 2 cores) into a cache under ~/.cache/comparenets (``task.cache_dir`` to choose).

    python -m comparenets.main --config=experiments/song.py:model=lstm --workdir=/tmp/song
    python -m comparenets.main --config=experiments/song.py:model=tcn,quick --workdir=/tmp/sq

Arguments: ``model`` (tcn, rnn, lstm, gru), ``quick``. Needs music21 (``pip install
'music21>=10.5,<11'``, in the package's requirements).
"""

from comparenets.experiment import experiment_config, parse_arg
from comparenets.models.conv import tcn_levels_for

LENGTH = 128       # predicted steps per training window: 16 bars of 4/4 in eighth notes
QUICK_LENGTH = 32


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', quick=False)
  length = QUICK_LENGTH if arg.quick else LENGTH
  models = {
      'tcn': dict(channels=128, levels=tcn_levels_for(length, 3), kernel_size=3),
      'rnn': dict(hidden=128, layers=1),
      'lstm': dict(hidden=128, layers=1),
      'gru': dict(hidden=128, layers=1),
  }
  return experiment_config(
      arg, models, what='song',
      task=dict(name='song', cache_dir='', steps_per_quarter=2, length=length,
                validation_fraction=0.15, test_fraction=0.15, split_seed=0),
      train=dict(steps=3000, batch_size=32, eval_batch_size=64, optimizer='adam',
                 learning_rate=2e-3, warmup_steps=100, grad_clip=1.0, eval_every=500,
                 checkpoint_every=500))
