"""Character-level language modelling with sampling: the Python standard library's own source
(embedded, split by file) or TFDS tiny_shakespeare. Causal sequence models only.

    python -m comparenets.main --config=experiments/char_lm.py:model=lstm --workdir=/tmp/lm
    python -m comparenets.main --config=experiments/char_lm.py:model=tcn,corpus=tiny_shakespeare \
        --workdir=/tmp/shakespeare

Arguments: ``model`` (tcn, rnn, lstm, gru), ``corpus`` (stdlib, tiny_shakespeare), ``length``
(characters per window, default 128; the TCN's depth follows it), ``quick``.
The run writes samples.txt (continuations of ``task.seed_text``) next to results.json.
"""

from comparenets.experiment import experiment_config, parse_arg
from comparenets.models.conv import tcn_levels_for

LENGTH = 128
QUICK_LENGTH = 32


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', corpus='stdlib', length=0, quick=False)
  length = arg.length or (QUICK_LENGTH if arg.quick else LENGTH)
  models = {
      'tcn': dict(channels=256, levels=tcn_levels_for(length, 3), kernel_size=3),
      'rnn': dict(hidden=256, layers=1),
      'lstm': dict(hidden=256, layers=1),
      'gru': dict(hidden=256, layers=1),
  }
  return experiment_config(
      arg, models, what='char_lm',
      task=dict(name='char_lm', corpus=arg.corpus, data_dir='', length=length, embed_dim=64,
                eval_windows=512, seed_text='def ', sample_length=300, num_samples=3,
                temperature=0.8),
      train=dict(steps=3000, batch_size=32, eval_batch_size=128, optimizer='adam',
                 learning_rate=2e-3, warmup_steps=100, grad_clip=1.0, eval_every=1000,
                 checkpoint_every=1000),
      quick_task=dict(eval_windows=64, sample_length=40, num_samples=1),
      quick_train=dict(eval_batch_size=64))
