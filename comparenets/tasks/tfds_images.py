"""Image classification on TFDS datasets: mnist, fashion_mnist (28x28 grayscale) and cifar10
(32x32 RGB), 10 classes each, read through `tfds.data_source` (no TensorFlow needed).

The validation split is a seeded random holdout of the TFDS train split
(``validation_fraction``), drawn from the example indices alone; the test split is TFDS's test
split. Nothing is read up front: every split is a `pipeline.SourceSplit` over the random-access
source, so a training or evaluation batch reads (and decodes) only the examples asked for, and
in a multi-process run each process reads only the rows its devices hold. Readings as in
`comparenets.tasks.images`: with ``reading='pixels'`` MNIST becomes sequential MNIST (784
steps), and with ``order='permuted'`` permuted MNIST.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from comparenets.data import pipeline
from comparenets.data import tfds_source
from comparenets.tasks.images import ImageClassification

DATASETS = ('mnist', 'fashion_mnist', 'cifar10')


@dataclasses.dataclass
class TFDSImageClassification(ImageClassification):
  dataset: str = 'mnist'
  data_dir: str = ''             # '' = TFDS's default (~/tensorflow_datasets)
  validation_fraction: float = 0.1
  split_seed: int = 0
  max_train_examples: int = 0    # 0 = all; a smaller number for quick runs
  read_workers: int = 0          # grain worker processes reading training batches ahead

  name = 'tfds_images'
  config_rules = {
      **ImageClassification.config_rules,
      'dataset': {'choices': DATASETS},
      'validation_fraction': {'min': 0.001, 'max': 0.5},
      'split_seed': {'min': 0},
      'max_train_examples': {'min': 0},
      'read_workers': {'min': 0},
  }

  def splits(self):
    if not hasattr(self, '_splits'):  # read once per task object
      self._splits = self._load()  # pylint: disable=attribute-defined-outside-init
    return self._splits

  def _load(self):
    data_dir = self.data_dir or None
    train = tfds_source.open_split(self.dataset, 'train', data_dir)
    test = tfds_source.open_split(self.dataset, 'test', data_dir)
    n = len(train) if not self.max_train_examples else min(self.max_train_examples, len(train))
    kept, held = index_holdout(n, self.validation_fraction, self.split_seed)
    split = lambda source, idx: pipeline.SourceSplit(source, convert_example, ('inputs', 'label'), idx)
    return {'train': split(train, kept), 'validation': split(train, held),
            'test': split(test, None)}


def convert_example(example) -> dict[str, np.ndarray]:
  """One TFDS image record as the split's fields: pixels in [0, 1], an int32 label."""
  return {'inputs': np.asarray(example['image'], np.float32) / 255.0,
          'label': np.asarray(example['label'], np.int32)}


def index_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(kept, held out): sorted indices of a seeded random holdout of ``n`` examples."""
  held = np.sort(np.random.default_rng(seed).permutation(n)[:int(round(n * fraction))])
  return np.setdiff1d(np.arange(n), held), held
