"""Character-level language modelling with sampling: the Python standard library's own source
(embedded, split by file) or TFDS tiny_shakespeare. Causal sequence models only.

    python -m comparenets.main --config=experiments/char_lm.py:model=lstm --workdir=/tmp/lm
    python -m comparenets.main --config=experiments/char_lm.py:model=tcn,corpus=tiny_shakespeare \
        --workdir=/tmp/shakespeare

Arguments: ``model`` (tcn, rnn, lstm, gru), ``corpus`` (stdlib, tiny_shakespeare), ``quick``.
The run writes samples.txt (continuations of ``task.seed_text``) next to results.json.
"""

from comparenets.config_utils import parse_arg
from comparenets.errors import ConfigError
from comparenets.models.conv import tcn_levels_for
import ml_collections

LENGTH = 128


def get_config(arg=None):
  arg = parse_arg(arg, model='lstm', corpus='stdlib', quick=False)
  models = {
      'tcn': dict(channels=256, levels=tcn_levels_for(LENGTH, 3), kernel_size=3),
      'rnn': dict(hidden=256, layers=1),
      'lstm': dict(hidden=256, layers=1),
      'gru': dict(hidden=256, layers=1),
  }
  if arg.model not in models:
    raise ConfigError(f'char_lm runs sequence models; model must be one of '
                      f'{", ".join(sorted(models))}, not {arg.model!r}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict({'name': arg.model, **models[arg.model]})
  config.task = ml_collections.ConfigDict(dict(
      name='char_lm', corpus=arg.corpus, data_dir='', length=LENGTH, embed_dim=64,
      eval_windows=512, seed_text='def ', sample_length=300, num_samples=3, temperature=0.8))
  config.head = ml_collections.ConfigDict()
  config.train = ml_collections.ConfigDict(dict(
      steps=3000, batch_size=32, eval_batch_size=128, optimizer='adam', learning_rate=2e-3,
      schedule='cosine', warmup_steps=100, weight_decay=0.0, grad_clip=1.0, parallel='jit',
      log_every=100, eval_every=1000, checkpoint_every=1000, keep_checkpoints=3,
      async_checkpoints=True, on_nonfinite='stop'))
  if arg.quick:
    config.task.update(length=32, eval_windows=64, sample_length=40, num_samples=1)
    config.model.update({'levels': tcn_levels_for(32, 3)} if arg.model == 'tcn' else {})
    config.train.update(steps=40, warmup_steps=5, eval_batch_size=64, log_every=10,
                        eval_every=20, checkpoint_every=20)
  return config
