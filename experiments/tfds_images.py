"""MNIST, Fashion-MNIST or CIFAR-10 from TFDS with any backbone.

    python -m comparenets.main --config=experiments/tfds_images.py:model=cnn,dataset=mnist \
        --workdir=/tmp/mnist_cnn
    python -m comparenets.main \
        --config=experiments/tfds_images.py:model=lstm,dataset=mnist,reading=pixels,order=permuted \
        --workdir=/tmp/pmnist_lstm

The dataset must be prepared in the array_record format (the error message says how when it is
not); ``--config.task.data_dir=DIR`` points at it. Arguments: ``model``, ``dataset`` (mnist,
fashion_mnist, cifar10), ``reading`` (auto, rows, pixels), ``order`` (sequential, permuted),
``quick`` (a short run on 2,000 training images).
"""

from comparenets.config_utils import parse_arg
from comparenets.errors import ConfigError
import ml_collections

MODELS = {
    'cnn': dict(widths=(32, 64, 128), convs_per_block=2, kernel_size=3, pool='max',
                norm='batch', dropout=0.0),
    'tcn': dict(channels=64, levels=8, kernel_size=7, dropout=0.0),  # receptive field 1531
    'rnn': dict(hidden=128, layers=1),
    'lstm': dict(hidden=128, layers=1),
    'gru': dict(hidden=128, layers=1),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='cnn', dataset='mnist', reading='auto', order='sequential',
                  quick=False)
  if arg.model not in MODELS:
    raise ConfigError(f'unknown model {arg.model!r}; choose one of {", ".join(sorted(MODELS))}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict({'name': arg.model, **MODELS[arg.model]})
  config.task = ml_collections.ConfigDict(dict(
      name='tfds_images', dataset=arg.dataset, data_dir='', reading=arg.reading,
      order=arg.order, permutation_seed=0, validation_fraction=0.1, split_seed=0,
      max_train_examples=0))
  config.head = ml_collections.ConfigDict(dict(hidden=(256,), dropout=0.0))
  config.train = ml_collections.ConfigDict(dict(
      steps=10000, batch_size=128, eval_batch_size=512, optimizer='adamw', learning_rate=1e-3,
      schedule='cosine', warmup_steps=500, weight_decay=1e-4, grad_clip=1.0, parallel='jit',
      log_every=100, eval_every=1000, checkpoint_every=1000, keep_checkpoints=3,
      async_checkpoints=True, on_nonfinite='stop'))
  if arg.quick:
    config.task.max_train_examples = 2000
    config.train.update(steps=40, warmup_steps=5, batch_size=64, eval_batch_size=128,
                        log_every=10, eval_every=20, checkpoint_every=20)
  return config
