"""Image classification on scikit-learn's 8x8 digits (embedded, always there offline).

Readings as in `comparenets.tasks.images`: the CNN reads the 8x8x1 image, sequence models read 8
rows of 8 pixels, or 64 pixels one at a time (``reading='pixels'``, optionally
``order='permuted'``): the small offline cousin of sequential / permuted MNIST.

``train_subset`` trains on a part of the training split (validation and test stay whole, so
metrics at every fraction are comparable): per class, the first ``round(n * fraction)`` of one
seeded order of that class's training examples (`images.holdout`'s held-out part). The order
depends on ``split_seed`` only, so the subset is a pure function of (split_seed, fraction) and
the subsets are nested: the 1/8 subset lies inside the 1/4 one. The claim that CNNs suit large
datasets better (2.3.2) reads runs at several fractions.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from comparenets.data import digits as digits_data
from comparenets.tasks.images import ImageClassification, holdout

# The spawn key of the training subset's order: a stream of its own, apart from the split's.
SUBSET_STREAM = 1


@dataclasses.dataclass
class DigitsClassification(ImageClassification):
  split_seed: int = 0
  validation_fraction: float = 0.15
  test_fraction: float = 0.15
  train_subset: float = 1.0

  name = 'digits'
  config_rules = {
      **ImageClassification.config_rules,
      'split_seed': {'min': 0},
      'validation_fraction': {'min': 0.01, 'max': 0.5},
      'test_fraction': {'min': 0.01, 'max': 0.5},
      # below 1 % the rarest class (about 120 training examples) would keep none
      'train_subset': {'min': 0.01, 'at_most': 1.0},
  }

  def splits(self):
    out = digits_data.load_splits(self.split_seed, self.validation_fraction,
                                  self.test_fraction)
    if self.train_subset < 1.0:
      train = out['train']
      order = np.random.SeedSequence(self.split_seed, spawn_key=(SUBSET_STREAM,))
      _, (inputs, labels) = holdout(train['inputs'], train['label'], self.train_subset, order)
      out['train'] = {'inputs': inputs, 'label': labels}
    return out
