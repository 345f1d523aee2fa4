"""Image classification on scikit-learn's 8x8 digits (embedded, always there offline).

Readings as in `comparenets.tasks.images`: the CNN reads the 8x8x1 image, sequence models read 8
rows of 8 pixels, or 64 pixels one at a time (``reading='pixels'``, optionally
``order='permuted'``): the small offline cousin of sequential / permuted MNIST.
"""

from __future__ import annotations

import dataclasses

from comparenets.data import digits as digits_data
from comparenets.tasks.images import ImageClassification


@dataclasses.dataclass
class DigitsClassification(ImageClassification):
  split_seed: int = 0
  validation_fraction: float = 0.15
  test_fraction: float = 0.15

  name = 'digits'
  config_rules = {
      **ImageClassification.config_rules,
      'split_seed': {'min': 0},
      'validation_fraction': {'min': 0.01, 'max': 0.5},
      'test_fraction': {'min': 0.01, 'max': 0.5},
  }

  def splits(self):
    return digits_data.load_splits(self.split_seed, self.validation_fraction,
                                   self.test_fraction)
