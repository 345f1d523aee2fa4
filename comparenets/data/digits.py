"""scikit-learn's handwritten digits (UCI optdigits test set): 1,797 8x8 grayscale images,
10 classes, shipped inside scikit-learn, so it is always there offline."""

from __future__ import annotations

import functools

import numpy as np

SPLITS = ('train', 'validation', 'test')


@functools.lru_cache(maxsize=None)
def _load() -> tuple[np.ndarray, np.ndarray]:
  # scikit-learn takes about a second to import: only runs that read the digits load it
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = (digits.images / 16.0).astype(np.float32)[..., None]  # [N, 8, 8, 1] in [0, 1]
  return images, digits.target.astype(np.int32)


def load_splits(seed: int = 0, validation_fraction: float = 0.15,
                test_fraction: float = 0.15) -> dict[str, dict[str, np.ndarray]]:
  """A fixed, seeded, stratified train/validation/test split.

  Returns ``{split: {'inputs': [N, 8, 8, 1] float32 in [0, 1], 'label': [N] int32}}``. The same
  seed and fractions give the same split on every machine (NumPy's PCG64 generator).
  """
  if not (0 < validation_fraction < 1 and 0 < test_fraction < 1
          and validation_fraction + test_fraction < 1):
    raise ValueError('validation_fraction and test_fraction must be in (0, 1) and sum to < 1; '
                     f'got {validation_fraction} and {test_fraction}')
  images, labels = _load()
  rng = np.random.default_rng(seed)
  parts = {s: [] for s in SPLITS}
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    n_val = int(round(len(idx) * validation_fraction))
    n_test = int(round(len(idx) * test_fraction))
    parts['validation'].append(idx[:n_val])
    parts['test'].append(idx[n_val:n_val + n_test])
    parts['train'].append(idx[n_val + n_test:])
  out = {}
  for split, chunks in parts.items():
    idx = np.sort(np.concatenate(chunks))
    out[split] = {'inputs': images[idx], 'label': labels[idx]}
  return out
