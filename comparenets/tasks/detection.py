"""Object detection on digit canvases (`comparenets.data.digit_canvas`): find every digit, its
box and its class. Image backbones only.

The detector is CenterNet (Zhou et al., 2019, "Objects as Points"): on the backbone's last
feature map (output stride s, read from the shapes of the input and of the map, so the task
never knows which backbone ran) the head (`comparenets.models.heads.CenterHead`) predicts per
cell

* one heatmap logit per class: is a box centre of that class in this cell? The target is an
  elliptical Gaussian around each centre cell, sigma = 0.54 * box side / 6 (TTFNet's choice),
  exactly 1 at the centre cell; the loss is CenterNet's penalty-reduced focal loss (alpha 2,
  beta 4);
* the box height and width, in cells, and the sub-cell offset of the centre (L1 losses, at the
  centre cells only).

Losses are per example and normalised by its number of objects. Decoding: the heatmap's local
maxima (with ``peak_window=3``, a 3x3 max-pool keeps a cell only if it is the largest of its
neighbourhood: CenterNet's replacement for NMS; with 1 every cell is a candidate), the `TOP_K`
best, boxes from the size and offset at each, then classic greedy IoU non-maximum suppression
per class (`comparenets.metrics.detection.nms`). On a coarse map (48x48 canvases at stride 8
give 6x6 cells) two digits often sit in neighbouring cells and the max-pool drops the weaker
one whatever their boxes, which IoU NMS would keep: the experiment file therefore decodes with
``peak_window=1``.

Metric: mAP at IoU 0.5 over the whole split (PASCAL VOC procedure, all-point interpolation;
`comparenets.metrics.detection`), reported as ``mAP50`` for validation and test through
`Task.split_metrics`; the loss and its three parts are the per-example metrics. With
``num_classes=1`` every digit is one class 'digit' (detection without recognition).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from comparenets import figures
from comparenets.data import digit_canvas
from comparenets.data import digits as digits_data
from comparenets.data.pipeline import GeneratedSampler
from comparenets.errors import ConfigError
from comparenets.metrics import detection as detection_metrics
from comparenets.models.heads import CenterHead
from comparenets.tasks.base import Task

GAUSSIAN_ALPHA = 0.54  # heatmap sigma = alpha * side / 6 (TTFNet)
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0  # CenterNet's focal loss exponents
TOP_K = 20  # peaks decoded per image
MIN_SCORE = 0.01  # peaks below this are not detections
FIGURE_SCORE = 0.3  # detections drawn in the figure


def output_stride(image_shape: Sequence[int], map_shape: Sequence[int]) -> tuple[float, float]:
  """Pixels per feature-map cell along y and x, from ``[B, H, W, ...]`` and ``[B, h, w, ...]``."""
  return image_shape[1] / map_shape[1], image_shape[2] / map_shape[2]


def encode(boxes, labels, valid, grid: tuple[int, int], stride: tuple[float, float],
           num_classes: int) -> dict[str, Any]:
  """CenterNet targets for boxes ``[B, M, 4]`` (pixels), labels ``[B, M]`` and the mask of real
  objects ``valid [B, M]`` on a ``grid = (h, w)`` of cells of ``stride`` pixels (jnp; works in
  a compiled loss and on NumPy input).

  Returns ``heatmap [B, h, w, C]`` (Gaussians, 1 at each centre cell, max where they meet),
  ``positive [B, h, w, C]`` (1 at the centre cells), ``cell [B, M]`` (flat index of the centre
  cell), ``size [B, M, 2]`` (height and width in cells) and ``offset [B, M, 2]`` (centre minus
  its cell's corner, in cells, in [0, 1)).
  """
  h, w = grid
  boxes = jnp.asarray(boxes, jnp.float32)
  valid = jnp.asarray(valid).astype(jnp.float32)
  scale = jnp.asarray([stride[0], stride[1]], jnp.float32)
  centre = (boxes[..., :2] + boxes[..., 2:]) / 2 / scale  # [B, M, 2] in cells
  size = (boxes[..., 2:] - boxes[..., :2]) / scale
  limit = jnp.asarray([h - 1, w - 1], jnp.float32)
  corner = jnp.clip(jnp.floor(centre), 0, limit)
  offset = centre - corner
  sigma = jnp.maximum(GAUSSIAN_ALPHA * size / 6, 1e-3)
  iy, ix = corner[..., 0], corner[..., 1]
  dy = (jnp.arange(h, dtype=jnp.float32) - iy[..., None]) / sigma[..., 0:1]  # [B, M, h]
  dx = (jnp.arange(w, dtype=jnp.float32) - ix[..., None]) / sigma[..., 1:2]  # [B, M, w]
  gauss = jnp.exp(-0.5 * (dy[..., :, None] ** 2 + dx[..., None, :] ** 2))  # [B, M, h, w]
  onehot = jax.nn.one_hot(labels, num_classes) * valid[..., None]  # [B, M, C]
  heatmap = (gauss[..., None] * onehot[:, :, None, None, :]).max(1)
  at_centre = ((dy[..., :, None] == 0) & (dx[..., None, :] == 0)).astype(jnp.float32)
  positive = (at_centre[..., None] * onehot[:, :, None, None, :]).max(1)
  cell = (iy * w + ix).astype(jnp.int32)
  return {'heatmap': heatmap, 'positive': positive, 'cell': cell, 'size': size,
          'offset': offset}


def _max_pool(x: np.ndarray, window: int) -> np.ndarray:
  """``window`` x ``window`` max over the cells of ``x [B, h, w, C]`` (odd window, stride 1,
  edges padded with -inf)."""
  b, h, w, c = x.shape
  r = window // 2
  padded = np.full((b, h + 2 * r, w + 2 * r, c), -np.inf, x.dtype)
  padded[:, r:r + h, r:r + w] = x
  return np.max([padded[:, i:i + h, j:j + w] for i in range(window) for j in range(window)],
                axis=0)


def decode(outputs: np.ndarray, num_classes: int, image_size: tuple[int, int],
           top_k: int = TOP_K, min_score: float = MIN_SCORE,
           nms_iou: float | None = 0.5, peak_window: int = 3) -> list[dict[str, np.ndarray]]:
  """Detections from the head's outputs ``[N, h, w, num_classes + 4]`` (NumPy), one dict
  ``{'boxes': [K, 4] (y0, x0, y1, x1) pixels, 'labels': [K], 'scores': [K]}`` per image,
  highest score first. A cell is a candidate for a class only if its score is the highest in
  the ``peak_window`` x ``peak_window`` cells around it (CenterNet's 3x3 max-pool; 1 makes every
  cell a candidate); ``nms_iou=None`` skips the IoU non-maximum suppression."""
  outputs = np.asarray(outputs, np.float32)
  n, h, w, _ = outputs.shape
  sy, sx = image_size[0] / h, image_size[1] / w
  heat = 1.0 / (1.0 + np.exp(-outputs[..., :num_classes]))
  if peak_window > 1:
    heat = np.where(heat == _max_pool(heat, peak_window), heat, 0.0)
  peaks = heat.reshape(n, -1)
  k = min(top_k, peaks.shape[1])
  best = np.argsort(-peaks, axis=1, kind='stable')[:, :k]  # [n, k] flat (y, x, class)
  scores = np.take_along_axis(peaks, best, 1)
  cell, label = np.divmod(best, num_classes)
  iy, ix = np.divmod(cell, w)
  regression = outputs[..., num_classes:].reshape(n, h * w, -1)
  reg = np.take_along_axis(regression, cell[..., None], 1)  # [n, k, 4]
  height, width = np.maximum(reg[..., 0], 0) * sy, np.maximum(reg[..., 1], 0) * sx
  cy, cx = (iy + reg[..., 2]) * sy, (ix + reg[..., 3]) * sx
  boxes = np.stack([cy - height / 2, cx - width / 2, cy + height / 2, cx + width / 2], -1)
  boxes = np.clip(boxes, 0, [image_size[0], image_size[1]] * 2)
  result = []
  for i in range(n):
    keep = np.flatnonzero(scores[i] >= min_score)
    if nms_iou is not None:
      keep = keep[detection_metrics.batched_nms(boxes[i, keep], scores[i, keep], label[i, keep],
                                                nms_iou)]
    result.append({'boxes': boxes[i, keep].astype(np.float32), 'labels': label[i, keep],
                   'scores': scores[i, keep].astype(np.float32)})
  return result


def ground_truth(split: Mapping[str, np.ndarray], num_classes: int = 10
                 ) -> list[dict[str, np.ndarray]]:
  """The real boxes of each canvas of a split, in `decode`'s format (no scores)."""
  boxes, labels = np.asarray(split['boxes']), np.asarray(split['labels'])
  valid = np.asarray(split['valid']).astype(bool)
  if num_classes == 1:
    labels = np.zeros_like(labels)
  return [{'boxes': boxes[i][valid[i]], 'labels': labels[i][valid[i]]}
          for i in range(len(boxes))]


@dataclasses.dataclass
class DigitDetection(Task):
  """Detect the 1..``max_objects`` digits of each ``canvas`` x ``canvas`` image.

  Training canvases are generated on the fly from the training digits (batch of step s from
  ``default_rng([seed, s])``); the validation and test canvases are fixed sets drawn from the
  validation and test digits (`comparenets.data.digits.load_splits` with ``split_seed``), so
  test digits are never seen in training.

  Fields: the canvases (``canvas``, ``min_size``, ``max_size``, ``max_objects``, ``max_overlap``,
  ``noise``: see `comparenets.data.digit_canvas.generate`), ``num_classes`` (10 digits, or 1:
  'digit'), the fixed sets' sizes and seeds, the weights of the size and offset losses against
  the heatmap loss, and the decoding (``peak_window``, ``nms_iou``: see `decode`).
  """
  canvas: int = 48
  min_size: float = 12.0
  max_size: float = 24.0
  max_objects: int = 3
  max_overlap: float = 0.2
  noise: float = 0.0
  num_classes: int = 10
  validation_size: int = 500
  test_size: int = 1000
  data_seed: int = 0
  split_seed: int = 0
  size_weight: float = 1.0
  offset_weight: float = 1.0
  nms_iou: float = 0.5
  peak_window: int = 3

  name = 'detection'
  input_kinds = ('image',)
  target_metric = 'mAP50'
  higher_is_better = True
  config_rules = {
      'canvas': {'min': 8},
      'min_size': {'min': 1.0},
      'max_size': {'min': 1.0},
      'max_overlap': {'max': 1.0},
      'num_classes': {'choices': (1, 10)},
      'data_seed': {'min': 0},
      'split_seed': {'min': 0},
      'nms_iou': {'max': 1.0},
      'peak_window': {'choices': (1, 3, 5)},
  }
  head_rules = {'hidden': {'min': 0}}

  def __post_init__(self):
    if not self.min_size <= self.max_size <= self.canvas:
      raise ConfigError(f'task {self.name!r} needs min_size <= max_size <= canvas; got '
                        f'{self.min_size}, {self.max_size} and {self.canvas}')

  def _generate(self, split: str, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    if not hasattr(self, '_digits'):
      # pylint: disable-next=attribute-defined-outside-init
      self._digits = digits_data.load_splits(self.split_seed)
    pool = self._digits[split]
    return digit_canvas.generate(
        pool['inputs'], pool['label'], rng, n, canvas=self.canvas, min_size=self.min_size,
        max_size=self.max_size, max_objects=self.max_objects, max_overlap=self.max_overlap,
        noise=self.noise)

  def train_sampler(self, batch_size, seed):
    return GeneratedSampler(lambda rng, n: self._generate('train', rng, n), batch_size, seed)

  def splits(self):
    if not hasattr(self, '_splits'):
      # Spawn keys that no training batch uses (those are default_rng([seed, step])).
      rng = lambda key: np.random.default_rng(
          np.random.SeedSequence(self.data_seed, spawn_key=(key,)))
      self._splits = {  # pylint: disable=attribute-defined-outside-init
          'validation': self._generate('validation', rng(1), self.validation_size),
          'test': self._generate('test', rng(2), self.test_size)}
    return self._splits

  def adapt(self, batch, kind):
    del kind  # images only (check_input_kind)
    return batch['inputs'], None

  def head(self, hidden: int = 64, kernel_size: int = 3):
    return CenterHead(self.num_classes, 4, hidden, kernel_size)

  def _labels(self, labels):
    return labels if self.num_classes > 1 else jnp.zeros_like(labels)

  def per_example(self, outputs, batch):
    c = self.num_classes
    _, h, w, _ = outputs.shape
    t = encode(batch['boxes'], self._labels(batch['labels']), batch['valid'], (h, w),
               output_stride(batch['inputs'].shape, outputs.shape), c)
    valid = batch['valid'].astype(jnp.float32)
    objects = jnp.maximum(valid.sum(-1), 1.0)
    logits = outputs[..., :c]
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    p = jnp.exp(log_p)
    pos, heat = t['positive'], t['heatmap']
    focal = -(pos * (1 - p) ** FOCAL_ALPHA * log_p +
              (1 - pos) * (1 - heat) ** FOCAL_BETA * p ** FOCAL_ALPHA * log_not_p)
    heatmap_loss = focal.sum((1, 2, 3)) / objects
    regression = outputs[..., c:].reshape(outputs.shape[0], h * w, -1)
    at_centre = jnp.take_along_axis(regression, t['cell'][..., None], 1)  # [B, M, 4]
    l1 = lambda pred, target: (jnp.abs(pred - target).sum(-1) * valid).sum(-1) / objects
    size_loss = l1(at_centre[..., :2], t['size'])
    offset_loss = l1(at_centre[..., 2:], t['offset'])
    loss = heatmap_loss + self.size_weight * size_loss + self.offset_weight * offset_loss
    return {'loss': loss, 'heatmap_loss': heatmap_loss, 'size_loss': size_loss,
            'offset_loss': offset_loss}

  def detect(self, outputs: np.ndarray, min_score: float = MIN_SCORE):
    """`decode` with this task's classes, canvas, peak window and NMS threshold."""
    return decode(outputs, self.num_classes, (self.canvas, self.canvas), min_score=min_score,
                  nms_iou=self.nms_iou, peak_window=self.peak_window)

  def split_metrics(self, predict, split):
    found = self.detect(predict(split))
    result = detection_metrics.mean_average_precision(
        found, ground_truth(split, self.num_classes), 0.5, self.num_classes)
    return {'mAP50': result['mAP']}

  def figures(self, predict):
    """Test canvases with the true boxes and the detections scoring at least `FIGURE_SCORE`,
    one per object: a detection overlapping a better one of another class (IoU above
    ``nms_iou``), which mAP counts in that class, is left out of the picture, where its label
    would cover the better one's."""
    test = self.splits()['test']
    shown = {k: v[:9] for k, v in test.items()}
    found = []
    for boxes in self.detect(predict(shown), FIGURE_SCORE):
      keep = detection_metrics.nms(boxes['boxes'], boxes['scores'], self.nms_iou)
      found.append({k: v[keep] for k, v in boxes.items()})
    truth = ground_truth(shown, self.num_classes)
    if self.num_classes == 1:
      for boxes in found:
        boxes['labels'] = None
    title = f'digit canvases, test ({self.num_classes} class{"es" * (self.num_classes > 1)})'
    # the true labels go into each image's title (drawn on the boxes they would hide the
    # predicted ones), left to right
    fig = figures.detections(shown['inputs'], found,
                           [{'boxes': t['boxes']} for t in truth], n=9, cols=3, title=title)
    if self.num_classes > 1:
      for ax, t in zip(fig.axes, truth):
        labels = t['labels'][np.argsort(t['boxes'][:, 1], kind='stable')]
        ax.set_title('true: ' + ' '.join(map(str, labels)), fontsize=8)
      fig.tight_layout()
    return {'detections': fig}
