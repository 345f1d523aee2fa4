"""Digit canvases for object detection: 1 to 3 of scikit-learn's 8x8 digits, each scaled to a
random size and placed at a random position on a larger blank canvas, with their boxes.

Each digit is resized by bilinear interpolation (separable: ``rows @ digit @ columns.T``, so a
whole batch is one einsum), faint interpolation fringes (below ``INK``) are cut to zero, and the
canvas is the pixel-wise maximum of the placed digits, plus optional Gaussian noise. A digit's
ground-truth box is the tight box of its own nonzero pixels on the canvas, ``(y0, x0, y1, x1)``
in pixels with the ends exclusive: pixel ``(i, j)`` is the unit square ``[i, i+1) x [j, j+1)``,
so a box's height ``y1 - y0`` is the number of rows it covers. Placements whose boxes overlap by
more than ``max_overlap`` (IoU) are drawn again, a few times; a digit that still does not fit is
left out, never the first one, so every canvas holds at least one digit.

`generate` is deterministic given its `numpy.random.Generator`; the digit images come from one
split of `comparenets.data.digits.load_splits`, so test canvases show only digits that no training
canvas contains.
"""

from __future__ import annotations

import numpy as np

from comparenets.metrics.detection import iou as box_iou

INK = 0.1  # interpolated values below this are background (cuts the bilinear fringe)
_PLACEMENT_TRIES = 8


def _interpolation(start: np.ndarray, length: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resampling weights ``[..., size, 8]``: canvas pixel i (centre i + 0.5) reads the
  8-pixel source at ``(i + 0.5 - start) * 8 / length - 0.5`` (source pixel centres at 0..7), with
  zeros outside the source."""
  centres = np.arange(size, dtype=np.float32) + 0.5
  source = (centres - start[..., None]) * (8.0 / length[..., None]) - 0.5  # [..., size]
  return np.clip(1.0 - np.abs(source[..., None] - np.arange(8, dtype=np.float32)), 0.0, None)


def _place(rng: np.random.Generator, n: int, max_objects: int, canvas: int, min_size: float,
           max_size: float, max_overlap: float):
  """Placement rectangles ``[n, M, 4]`` (y0, x0, height, width) and which ones are kept."""
  count = rng.integers(1, max_objects + 1, size=n)
  keep = np.arange(max_objects)[None, :] < count[:, None]

  def draw(shape):
    height = rng.uniform(min_size, max_size, size=shape)
    width = np.minimum(height * rng.uniform(0.8, 1.25, size=shape), canvas)
    y0 = rng.uniform(0.0, 1.0, size=shape) * (canvas - height)
    x0 = rng.uniform(0.0, 1.0, size=shape) * (canvas - width)
    return np.stack([y0, x0, height, width], -1).astype(np.float32)

  rect = draw((n, max_objects))
  corners = lambda r: np.concatenate([r[..., :2], r[..., :2] + r[..., 2:]], -1)
  for m in range(1, max_objects):
    for attempt in range(_PLACEMENT_TRIES + 1):
      iou = box_iou(corners(rect[:, m:m + 1]), corners(rect[:, :m]))[:, 0]  # [n, m]
      clash = keep[:, m] & ((iou > max_overlap) & keep[:, :m]).any(-1)
      if not clash.any():
        break
      if attempt == _PLACEMENT_TRIES:
        keep[:, m] &= ~clash
      else:
        rect[clash, m] = draw((int(clash.sum()),))
  return rect, keep


def tight_boxes(layers: np.ndarray) -> np.ndarray:
  """The tight boxes ``[..., 4]`` (y0, x0, y1, x1; ends exclusive) of the nonzero pixels of
  ``layers [..., H, W]``; all zeros for an empty layer."""
  rows, cols = layers.any(-1), layers.any(-2)
  def extent(hit):
    size = hit.shape[-1]
    first = np.argmax(hit, -1)
    last = size - np.argmax(hit[..., ::-1], -1)
    empty = ~hit.any(-1)
    return np.where(empty, 0, first), np.where(empty, 0, last)
  y0, y1 = extent(rows)
  x0, x1 = extent(cols)
  return np.stack([y0, x0, y1, x1], -1).astype(np.float32)


def generate(digit_images: np.ndarray, digit_labels: np.ndarray, rng: np.random.Generator,
             n: int, *, canvas: int = 48, min_size: float = 12.0, max_size: float = 24.0,
             max_objects: int = 3, max_overlap: float = 0.2,
             noise: float = 0.0) -> dict[str, np.ndarray]:
  """``n`` canvases from the digits ``digit_images [N, 8, 8(, 1)]`` with labels ``[N]``.

  Args:
    rng: the only source of randomness (same generator state, same canvases).
    canvas: side of the square canvases in pixels.
    min_size, max_size: range of a placed digit's height in pixels (its 8 rows scaled to it); the
      width is the height times a random aspect ratio in [0.8, 1.25]. The tight box of the ink is
      smaller (the 8x8 digits have blank margins).
    max_objects: digits per canvas are uniform in 1..max_objects.
    max_overlap: largest IoU allowed between two boxes of one canvas.
    noise: standard deviation of Gaussian noise added to every pixel (then clipped to [0, 1]).

  Returns:
    ``{'inputs': float32 [n, canvas, canvas, 1] in [0, 1], 'boxes': float32 [n, M, 4],
    'labels': int32 [n, M], 'valid': bool [n, M]}`` with ``M = max_objects``; the real objects
    come first, padding has box 0 and label 0.
  """
  if not 0 < min_size <= max_size <= canvas:
    raise ValueError(f'need 0 < min_size <= max_size <= canvas; got {min_size}, {max_size}, '
                     f'{canvas}')
  digit_images = np.asarray(digit_images, np.float32).reshape(-1, 8, 8)
  rect, keep = _place(rng, n, max_objects, canvas, min_size, max_size, max_overlap)
  pick = rng.integers(0, len(digit_images), size=(n, max_objects))
  rows = _interpolation(rect[..., 0], rect[..., 2], canvas)  # [n, M, canvas, 8]
  cols = _interpolation(rect[..., 1], rect[..., 3], canvas)
  layers = np.einsum('nmia,nmab,nmjb->nmij', rows, digit_images[pick], cols, optimize=True)
  layers = np.where((layers >= INK) & keep[..., None, None], np.minimum(layers, 1.0), 0.0)
  boxes = tight_boxes(layers > 0)
  keep &= boxes[..., 2] > boxes[..., 0]
  # The ink's boxes differ from the placements (blank margins, the interpolation's fringe) and
  # may overlap more than they did: drop the later digit of any pair still above the limit.
  iou = box_iou(boxes, boxes)
  for m in range(1, max_objects):
    keep[:, m] &= ~((iou[:, m, :m] > max_overlap) & keep[:, :m]).any(-1)
  layers *= keep[..., None, None]
  image = layers.max(1)
  if noise > 0:
    image = np.clip(image + rng.normal(0.0, noise, size=image.shape), 0.0, 1.0)
  order = np.argsort(~keep, axis=1, kind='stable')  # kept objects first
  take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), 1)
  keep = take(keep)
  return {'inputs': image[..., None].astype(np.float32),
          'boxes': np.where(keep[..., None], take(boxes), 0.0).astype(np.float32),
          'labels': np.where(keep, take(np.asarray(digit_labels)[pick]), 0).astype(np.int32),
          'valid': keep}
