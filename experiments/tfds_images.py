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

from comparenets.experiment import experiment_config, parse_arg

MODELS = {
    'cnn': dict(widths=(32, 64, 128), convs_per_block=2, kernel_size=3, pool='max',
                norm='batch', dropout=0.0),
    'tcn': dict(channels=64, levels=8, kernel_size=7, dropout=0.0),  # receptive field 3061
    'rnn': dict(hidden=128, layers=1),
    'lstm': dict(hidden=128, layers=1),
    'gru': dict(hidden=128, layers=1),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='cnn', dataset='mnist', reading='auto', order='sequential',
                  quick=False)
  return experiment_config(
      arg, MODELS, what='tfds_images',
      task=dict(name='tfds_images', dataset=arg.dataset, data_dir='', reading=arg.reading,
                order=arg.order, permutation_seed=0, validation_fraction=0.1, split_seed=0,
                max_train_examples=0),
      head=dict(hidden=(256,), dropout=0.0),
      train=dict(steps=10000, batch_size=128, eval_batch_size=512, warmup_steps=500,
                 weight_decay=1e-4, grad_clip=1.0, eval_every=1000, checkpoint_every=1000),
      quick_task=dict(max_train_examples=2000),
      quick_train=dict(batch_size=64, eval_batch_size=128))
