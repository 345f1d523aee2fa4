"""Edge-detection scores in the style of the BSDS boundary benchmark, and two classic baselines.

For each threshold t of a fixed grid, the predicted edge pixels of an image are the pixels whose
edge probability is >= t, thinned to one-pixel-wide lines (``skimage.morphology.thin`` to
convergence, as BSDS thins each thresholded map with ``bwmorph(..., 'thin', inf)``). Then:

* a predicted pixel is *correct* if a true edge pixel lies within ``tolerance`` pixels of it;
* a true edge pixel is *recalled* if a predicted pixel lies within ``tolerance`` pixels of it;

"within" is Euclidean distance <= ``tolerance`` between pixel centres (0: the same pixel; 1: the
pixel or its four neighbours). The four counts (correct, predicted, recalled, true) are summed
over the images of a split per threshold, giving precision P = correct / predicted, recall
R = recalled / true and F = 2PR / (P + R) per threshold (each 0 when its denominator is 0, as
in BSDS). Scores (`scores`):

* ODS (optimal dataset scale): the best F over the thresholds, one threshold for the whole split;
* OIS (optimal image scale): each image at its own best threshold, counts summed, then F;
* AP: the area under the grid's precision-recall points from the highest threshold down, as
  scikit-learn's average precision (no interpolation; BSDS interpolates along the curve). A
  thresholded map that is nearly all on thins to a sparse skeleton, so recall can fall again
  at the lowest thresholds (in BSDS too); such points add nothing to AP.

This is the tolerance-band approximation of BSDS's ``correspondPixels``, which matches
predicted and true pixels one to one (a bipartite assignment within the distance); here one
true pixel may vouch for several predicted ones and the other way round, which thinning keeps
close to one to one. BSDS also interpolates F between thresholds; here the grid is used as is.

Baselines scored by the same code: the Sobel gradient magnitude (`sobel_maps`, each image's map
divided by its maximum) over the same threshold grid, and Canny (`canny_maps`), binary maps
whose setting (Gaussian sigma, high threshold; low threshold 0.4 of it) `select_canny` picks on
one split for use on another.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from scipy import ndimage

THRESHOLDS = np.round(np.linspace(0.02, 0.98, 25), 4)
CANNY_SIGMAS = (1.0, 1.5, 2.0, 3.0)
CANNY_HIGH = tuple(np.round(np.geomspace(0.02, 0.4, 10), 4))
CANNY_LOW_FRACTION = 0.4
# The columns of `match_counts`.
CORRECT, PREDICTED, RECALLED, TRUE = range(4)


@functools.lru_cache(maxsize=None)
def disk(tolerance: float) -> np.ndarray:
  """The offsets within Euclidean ``tolerance`` as a ``[1, k, k]`` structuring element (the
  leading 1 keeps images of a stack apart)."""
  r = int(np.floor(tolerance))
  y, x = np.mgrid[-r:r + 1, -r:r + 1]
  return (y * y + x * x <= tolerance * tolerance + 1e-9)[None]


def near(masks: np.ndarray, tolerance: float) -> np.ndarray:
  """``[N, H, W]`` bool: the pixels within ``tolerance`` of a True pixel of their own image."""
  masks = np.asarray(masks, bool)
  if tolerance < 1:
    return masks.copy()
  return ndimage.binary_dilation(masks, structure=disk(float(tolerance)))


def thin(masks: np.ndarray) -> np.ndarray:
  """Each ``[H, W]`` mask of a stack thinned to one-pixel-wide lines."""
  # scikit-image's modules are imported where used here: each takes a while to load
  from skimage import morphology  # pylint: disable=g-import-not-at-top
  out = np.zeros_like(masks, dtype=bool)
  for i, mask in enumerate(masks):
    if mask.any():
      out[i] = morphology.thin(mask)
  return out


def match_counts(probs: np.ndarray, edges: np.ndarray, tolerance: float,
                 thresholds: Sequence[float] = THRESHOLDS,
                 thinning: bool = True) -> np.ndarray:
  """int64 ``[N, T, 4]``: per image and threshold, the counts (correct predicted pixels,
  predicted pixels, recalled true pixels, true pixels) of the module docstring.

  ``probs``: edge probabilities ``[N, H, W]`` (a trailing axis of 1 is dropped); ``edges``:
  the true edge pixels, same shape, bool or 0/1.
  """
  probs = np.asarray(probs, np.float32)
  if probs.ndim == 4:
    probs = probs[..., 0]
  edges = np.asarray(edges).astype(bool)
  if probs.shape != edges.shape:
    raise ValueError(f'edge probabilities {probs.shape} and true edges {edges.shape} differ')
  near_truth = near(edges, tolerance)
  counts = np.zeros((len(probs), len(thresholds), 4), np.int64)
  counts[:, :, TRUE] = edges.sum(axis=(1, 2))[:, None]
  for j, t in enumerate(thresholds):
    predicted = probs >= t
    if thinning:
      predicted = thin(predicted)
    counts[:, j, CORRECT] = (predicted & near_truth).sum(axis=(1, 2))
    counts[:, j, PREDICTED] = predicted.sum(axis=(1, 2))
    counts[:, j, RECALLED] = (edges & near(predicted, tolerance)).sum(axis=(1, 2))
  return counts


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def precision_recall_f(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """P, R and F of counts ``[..., 4]`` (each 0 where undefined)."""
  p = _ratio(counts[..., CORRECT], counts[..., PREDICTED])
  r = _ratio(counts[..., RECALLED], counts[..., TRUE])
  return p, r, _ratio(2 * p * r, p + r)


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
  """Area under the precision-recall points taken from the highest threshold down (the points
  in that order): the sum of precision x the recall each point adds beyond the most recall of
  the points before it, from recall 0 (scikit-learn's ``average_precision_score`` when recall
  only grows; a point that adds no recall, e.g. a very low threshold whose thinned map lost
  some, adds nothing)."""
  recall = np.asarray(recall, np.float64)
  gained = np.diff(np.maximum.accumulate(recall), prepend=0.0)
  return float((gained * np.asarray(precision, np.float64)).sum())


def scores(counts: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> dict[str, float]:
  """ODS F (with its threshold, precision and recall), OIS F and AP of `match_counts`."""
  p, r, f = precision_recall_f(counts.sum(axis=0))
  best = int(np.argmax(f))  # the lowest threshold among equals
  _, _, per_image = precision_recall_f(counts)
  own = np.argmax(per_image, axis=1)
  _, _, ois = precision_recall_f(counts[np.arange(len(counts)), own].sum(axis=0))
  return {'ods_f': float(f[best]), 'ods_threshold': float(thresholds[best]),
          'ods_precision': float(p[best]), 'ods_recall': float(r[best]), 'ois_f': float(ois),
          'ap': average_precision(p[::-1], r[::-1])}


def evaluate(probs: np.ndarray, edges: np.ndarray, tolerance: float,
             thresholds: Sequence[float] = THRESHOLDS, thinning: bool = True
             ) -> dict[str, float]:
  """`scores` of edge probabilities against true edges (the whole module in one call)."""
  return scores(match_counts(probs, edges, tolerance, thresholds, thinning), thresholds)


def _gray(images: np.ndarray) -> np.ndarray:
  images = np.asarray(images, np.float32)
  return images[..., 0] if images.ndim == 4 else images


def sobel_maps(images: np.ndarray) -> np.ndarray:
  """``[N, H, W]``: the Sobel gradient magnitude of each grey image (``[N, H, W(, 1)]``),
  divided by the image's own maximum so that one threshold grid in [0, 1] fits every image."""
  from skimage import filters  # pylint: disable=g-import-not-at-top
  maps = np.stack([filters.sobel(image) for image in _gray(images)]).astype(np.float32)
  peak = maps.max(axis=(1, 2), keepdims=True)
  return maps / np.where(peak > 0, peak, 1.0)


def canny_maps(images: np.ndarray, sigma: float, high: float) -> np.ndarray:
  """``[N, H, W]`` float 0/1: Canny edges of each grey image, low threshold 0.4 of ``high``."""
  from skimage import feature  # pylint: disable=g-import-not-at-top
  return np.stack([feature.canny(image, sigma=sigma, low_threshold=CANNY_LOW_FRACTION * high,
                                 high_threshold=high)
                   for image in _gray(images)]).astype(np.float32)


def canny_scores(images: np.ndarray, edges: np.ndarray, tolerance: float, sigma: float,
                 high: float, thinning: bool = True) -> dict[str, float]:
  """Precision, recall and F of one Canny setting, by the same counting (threshold 0.5 of the
  binary maps; their F is an ODS F: one setting for the whole split)."""
  s = evaluate(canny_maps(images, sigma, high), edges, tolerance, (0.5,), thinning)
  return {'f': s['ods_f'], 'precision': s['ods_precision'], 'recall': s['ods_recall'],
          'sigma': float(sigma), 'high': float(high)}


def select_canny(images: np.ndarray, edges: np.ndarray, tolerance: float,
                 sigmas: Sequence[float] = CANNY_SIGMAS,
                 highs: Sequence[float] = CANNY_HIGH,
                 thinning: bool = True) -> dict[str, float]:
  """`canny_scores` of the setting with the best F on these images (first among equals)."""
  best = None
  for sigma in sigmas:
    for high in highs:
      s = canny_scores(images, edges, tolerance, sigma, high, thinning)
      if best is None or s['f'] > best['f']:
        best = s
  return best
