"""Image classification on TFDS datasets: mnist, fashion_mnist (28x28 grayscale) and cifar10
(32x32 RGB), 10 classes each, read through `tfds.data_source` (no TensorFlow needed).

The validation split is a seeded, stratified holdout of the TFDS train split
(``validation_fraction``); the test split is TFDS's test split. Readings as in
`comparenets.tasks.images`: with ``reading='pixels'`` MNIST becomes sequential MNIST (784
steps), and with ``order='permuted'`` permuted MNIST.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from comparenets.data import tfds_source
from comparenets.tasks.images import ImageClassification, holdout

DATASETS = ('mnist', 'fashion_mnist', 'cifar10')


@dataclasses.dataclass
class TFDSImageClassification(ImageClassification):
  dataset: str = 'mnist'
  data_dir: str = ''             # '' = TFDS's default (~/tensorflow_datasets)
  validation_fraction: float = 0.1
  split_seed: int = 0
  max_train_examples: int = 0    # 0 = all; a smaller number for quick runs

  name = 'tfds_images'
  config_rules = {
      **ImageClassification.config_rules,
      'dataset': {'choices': DATASETS},
      'validation_fraction': {'min': 0.001, 'max': 0.5},
      'split_seed': {'min': 0},
      'max_train_examples': {'min': 0},
  }

  def splits(self):
    if not hasattr(self, '_splits'):  # read once per task object
      self._splits = self._load()  # pylint: disable=attribute-defined-outside-init
    return self._splits

  def _load(self):
    data_dir = self.data_dir or None
    fields = {'inputs': 'image', 'label': 'label'}
    train = tfds_source.load_arrays(tfds_source.open_split(self.dataset, 'train', data_dir),
                                    fields, self.max_train_examples)
    test = tfds_source.load_arrays(tfds_source.open_split(self.dataset, 'test', data_dir),
                                   fields)
    (x, y), (vx, vy) = holdout(train['inputs'], train['label'], self.validation_fraction,
                               self.split_seed)
    as_split = lambda x, y: {'inputs': (x.astype(np.float32) / 255.0),
                             'label': y.astype(np.int32)}
    return {'train': as_split(x, y), 'validation': as_split(vx, vy),
            'test': as_split(test['inputs'], test['label'])}
