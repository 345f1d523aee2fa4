"""Box overlap, non-maximum suppression and mean average precision, in NumPy.

Boxes are ``(y0, x0, y1, x1)`` in continuous pixel coordinates with the ends exclusive (a box
covering pixel rows 2..5 is ``y0=2, y1=6``), so a box's area is ``(y1 - y0) * (x1 - x0)``: no
"+1" as in the integer-coordinate convention of the old PASCAL VOC code.

`mean_average_precision` is the PASCAL VOC procedure (VOC2010 and later, all-point
interpolation), as in the VOC development kit's ``VOCevaldet``:

1. per class, the detections of every image of the split are sorted by score, highest first;
2. each detection, in that order, is compared with the ground-truth boxes of its class in its
   image; the one with the highest IoU is its match if that IoU is ``>= iou_threshold`` (the
   kit's ``ovmax >= minoverlap``). A match not yet taken makes it a true positive and takes the
   ground truth; a match already taken (a duplicate detection), or no match, makes it a false
   positive;
3. precision and recall after each detection; AP is the area under the precision-recall curve
   after precision is made monotonically decreasing (each point's precision replaced by the
   highest precision at any recall at least as large), summed over the recall steps;
4. mAP is the mean AP over the classes that have ground truth in the split (a class without
   ground truth has no recall and is left out; its detections affect nothing). A class with
   ground truth and no detections has AP 0.

Detections and ground truth are lists with one entry per image: ``{'boxes': [K, 4], 'labels':
[K], 'scores': [K]}`` (no scores for ground truth), the format `comparenets.figures.detections`
draws.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

Boxes = Mapping[str, np.ndarray]


def area(boxes: np.ndarray) -> np.ndarray:
  """Areas of boxes ``[..., 4]``; a box with y1 <= y0 or x1 <= x0 has area 0."""
  boxes = np.asarray(boxes, np.float64)
  return (np.clip(boxes[..., 2] - boxes[..., 0], 0, None) *
          np.clip(boxes[..., 3] - boxes[..., 1], 0, None))


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Intersection over union of every pair: ``a [..., M, 4]`` and ``b [..., K, 4]`` give
  ``[..., M, K]`` (leading axes broadcast). Pairs whose union is empty have IoU 0."""
  a = np.asarray(a, np.float64)[..., :, None, :]
  b = np.asarray(b, np.float64)[..., None, :, :]
  dy = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
  dx = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
  inter = dy * dx
  union = area(a) + area(b) - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
  """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

  The highest-scoring box is kept and every remaining box whose IoU with it is above
  ``iou_threshold`` (strictly, as in torchvision) is removed; repeat with what is left. Ties in
  score keep the earlier box first.
  """
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  order = np.argsort(-np.asarray(scores, np.float64), kind='stable')
  overlaps = iou(boxes, boxes)
  kept = []
  alive = np.ones(len(boxes), bool)
  for i in order:
    if not alive[i]:
      continue
    kept.append(i)
    alive &= overlaps[i] <= iou_threshold
  return np.asarray(kept, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                iou_threshold: float = 0.5) -> np.ndarray:
  """`nms` within each label separately (boxes of different classes never suppress each
  other); indices of the kept boxes, highest score first."""
  labels = np.asarray(labels).reshape(-1)
  scores = np.asarray(scores, np.float64).reshape(-1)
  kept = [np.flatnonzero(labels == c)[nms(np.asarray(boxes)[labels == c], scores[labels == c],
                                          iou_threshold)] for c in np.unique(labels)]
  kept = np.concatenate(kept) if kept else np.zeros(0, np.int64)
  return kept[np.argsort(-scores[kept], kind='stable')]


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
  """All-point interpolated AP (VOC2010+) of a precision-recall curve given detection by
  detection (recall non-decreasing)."""
  mrec = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
  mpre = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
  mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the highest precision at recall >= r
  steps = np.flatnonzero(mrec[1:] != mrec[:-1])
  return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def class_average_precision(detections: Sequence[Boxes], ground_truth: Sequence[Boxes],
                            label: int, iou_threshold: float = 0.5) -> float | None:
  """AP of one class over a split (None when the class has no ground truth)."""
  if len(detections) != len(ground_truth):
    raise ValueError(f'{len(detections)} images of detections and {len(ground_truth)} of '
                     'ground truth')
  truth = [np.asarray(g['boxes'], np.float64).reshape(-1, 4)[np.asarray(g['labels']) == label]
           for g in ground_truth]
  num_truth = sum(len(t) for t in truth)
  if num_truth == 0:
    return None
  image, boxes, scores = [], [], []
  for i, d in enumerate(detections):
    mine = np.asarray(d['labels']).reshape(-1) == label
    image.append(np.full(int(mine.sum()), i))
    boxes.append(np.asarray(d['boxes'], np.float64).reshape(-1, 4)[mine])
    scores.append(np.asarray(d['scores'], np.float64).reshape(-1)[mine])
  image, boxes, scores = np.concatenate(image), np.concatenate(boxes), np.concatenate(scores)
  order = np.argsort(-scores, kind='stable')
  taken = [np.zeros(len(t), bool) for t in truth]
  true_positive = np.zeros(len(order), bool)
  for rank, k in enumerate(order):
    candidates = truth[image[k]]
    if not len(candidates):
      continue
    overlaps = iou(boxes[k][None], candidates)[0]
    best = int(np.argmax(overlaps))
    if overlaps[best] >= iou_threshold and not taken[image[k]][best]:
      taken[image[k]][best] = True
      true_positive[rank] = True
  tp = np.cumsum(true_positive)
  recall = tp / num_truth
  precision = tp / np.arange(1, len(order) + 1)
  return average_precision(recall, precision)


def mean_average_precision(detections: Sequence[Boxes], ground_truth: Sequence[Boxes],
                           iou_threshold: float = 0.5,
                           num_classes: int | None = None) -> dict[str, object]:
  """mAP over the classes with ground truth: ``{'mAP': float, 'ap': {class: AP}}``.

  ``num_classes`` (optional) checks that every label is in ``0..num_classes-1``. A split without
  any ground truth has mAP nan.
  """
  labels = [np.asarray(g['labels']).reshape(-1) for g in ground_truth]
  classes = np.unique(np.concatenate(labels)) if labels else np.zeros(0, np.int64)
  if num_classes is not None and len(classes) and (classes.min() < 0 or
                                                   classes.max() >= num_classes):
    raise ValueError(f'ground-truth labels must be in 0..{num_classes - 1}; got {classes}')
  ap = {int(c): class_average_precision(detections, ground_truth, int(c), iou_threshold)
        for c in classes}
  return {'mAP': float(np.mean(list(ap.values()))) if ap else float('nan'), 'ap': ap}
