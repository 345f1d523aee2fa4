"""Synthetic shapes with exact edge ground truth, generated offline from a seed.

An image is a label map of overlapping filled shapes, painted back to front on a background,
each region given its own grey level and texture, then an illumination ramp, an optional blur
and Gaussian noise. Shapes are ellipses, rotated rectangles and convex polygons (3 to 6
vertices on a rotated ellipse), tested at pixel centres, so the label map is exact and every
edge is known.

The edge ground truth (`edge_map`) is defined on the label map of *visible* regions (region 0
is the background, region k the k-th shape painted; a later shape hides an earlier one):
pixel (i, j) is an edge pixel iff its lower neighbour (i + 1, j) or its right neighbour
(i, j + 1) lies in another region. So every crack between two 4-adjacent pixels of different
regions marks exactly one pixel, the upper or left one, and edges are one pixel wide, as the
boundaries of BSDS are. (Marking both sides of each crack, the pixels whose 4-neighbourhood
holds another region, would give two-pixel-wide edges.) An edge hidden by a later shape is no
edge; the image border is none either. Two regions always differ in grey level by at least
0.7 of the spacing of the levels (`render`), so every edge has some contrast; noise,
texture and blur make the weakest ones hard to see.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

POLYGON_VERTICES = 6  # polygons have 3..6 vertices; unused slots repeat the last one
_CHUNK = 64  # images rendered at a time (bounds the [chunk, shapes, H, W] temporaries)


def edge_map(regions: np.ndarray) -> np.ndarray:
  """Edge pixels of label maps ``[..., H, W]``: the upper or left pixel of every crack between
  4-adjacent pixels of different regions (see the module docstring). Returns bool, same shape.
  """
  regions = np.asarray(regions)
  edges = np.zeros(regions.shape, bool)
  edges[..., :-1, :] |= regions[..., :-1, :] != regions[..., 1:, :]
  edges[..., :, :-1] |= regions[..., :, :-1] != regions[..., :, 1:]
  return edges


def _shape_params(rng: np.random.Generator, n: int, size: int, max_shapes: int) -> dict:
  """Every random draw of ``n`` images, made up front so that rendering in chunks does not
  change what an image looks like."""
  k = max_shapes
  count = rng.integers(1, max_shapes + 1, size=n)
  p = {
      'active': np.arange(k)[None, :] < count[:, None],
      'kind': rng.integers(0, 3, size=(n, k)),  # 0 ellipse, 1 rectangle, 2 polygon
      'centre': rng.uniform(0.15, 0.85, size=(n, k, 2)) * size,
      'radii': rng.uniform(0.08, 0.3, size=(n, k, 2)) * size,
      'angle': rng.uniform(0.0, np.pi, size=(n, k)),
      'vertices': rng.integers(3, POLYGON_VERTICES + 1, size=(n, k)),
      'jitter': rng.uniform(-0.3, 0.3, size=(n, k, POLYGON_VERTICES)),
      'phase0': rng.uniform(0.0, 2 * np.pi, size=(n, k)),
  }
  # Grey levels: a random order of K + 1 evenly spaced levels (background first), jittered
  # by at most 0.15 of the spacing, so any two regions differ by 0.7 of a spacing or more.
  spacing = 0.7 / k
  levels = 0.15 + spacing * np.argsort(rng.random((n, k + 1)), axis=1)
  p['grey'] = levels + rng.uniform(-0.15, 0.15, size=(n, k + 1)) * spacing
  # Per-region stripes: amplitude (scaled by `texture` later), frequency, orientation, phase.
  p['tex_amp'] = rng.uniform(0.0, 1.0, size=(n, k + 1))
  p['tex_freq'] = rng.uniform(0.08, 0.3, size=(n, k + 1))
  p['tex_angle'] = rng.uniform(0.0, np.pi, size=(n, k + 1))
  p['tex_phase'] = rng.uniform(0.0, 2 * np.pi, size=(n, k + 1))
  p['ramp'] = rng.uniform(-1.0, 1.0, size=n)
  p['ramp_angle'] = rng.uniform(0.0, 2 * np.pi, size=n)
  p['noise'] = rng.standard_normal((n, size, size)).astype(np.float32)
  return p


def _inside(p: dict, size: int) -> np.ndarray:
  """``[n, K, H, W]``: whether each pixel centre lies in each shape (active or not)."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  cy = p['centre'][..., 0, None, None]
  cx = p['centre'][..., 1, None, None]
  a = p['radii'][..., 0, None, None]
  b = p['radii'][..., 1, None, None]
  cos, sin = np.cos(p['angle'])[..., None, None], np.sin(p['angle'])[..., None, None]
  u = (x - cx) * cos + (y - cy) * sin  # coordinates along the shape's own axes
  v = -(x - cx) * sin + (y - cy) * cos
  ellipse = (u / a) ** 2 + (v / b) ** 2 <= 1.0
  rectangle = (np.abs(u) <= 0.8 * a) & (np.abs(v) <= 0.8 * b)
  # Convex polygon: vertices on the ellipse at increasing angles (evenly spaced plus jitter),
  # slots past the vertex count repeat the last vertex (a zero-length side tests true).
  m = p['vertices'][..., None]
  slot = np.minimum(np.arange(POLYGON_VERTICES), m - 1)
  jitter = np.take_along_axis(p['jitter'], slot, axis=-1)
  phi = p['phase0'][..., None] + 2 * np.pi * (slot + jitter) / m  # [n, K, V]
  vu, vv = a[..., 0] * np.cos(phi), b[..., 0] * np.sin(phi)  # counter-clockwise in (u, v)
  du, dv = np.roll(vu, -1, axis=-1) - vu, np.roll(vv, -1, axis=-1) - vv
  polygon = np.ones(u.shape, bool)
  for j in range(POLYGON_VERTICES):
    cross = (du[..., j, None, None] * (v - vv[..., j, None, None]) -
             dv[..., j, None, None] * (u - vu[..., j, None, None]))
    polygon &= cross >= 0.0
  kind = p['kind'][..., None, None]
  return np.where(kind == 0, ellipse, np.where(kind == 1, rectangle, polygon))


def _chunk(p: dict, lo: int, hi: int) -> dict:
  return {k: v[lo:hi] for k, v in p.items()}


def render(rng: np.random.Generator, n: int, size: int = 64, max_shapes: int = 5,
           noise: float = 0.05, texture: float = 0.04, ramp: float = 0.15,
           blur: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
  """``n`` images and their label maps.

  Each image has 1 to ``max_shapes`` shapes (centres in the middle 70%, radii 8-30% of
  ``size``). Grey levels: a random order of ``max_shapes + 1`` levels evenly spaced in
  [0.15, 0.85], each jittered by up to 0.15 of the spacing. Each region carries stripes of
  amplitude up to ``texture`` (period 3-12 pixels, any orientation); the whole image a linear
  illumination ramp of up to ``ramp`` from its centre to its border; then a Gaussian blur of
  ``blur`` pixels (0: none), Gaussian noise of standard deviation ``noise``, and clipping to
  [0, 1].

  Returns ``images`` float32 ``[n, size, size, 1]`` and ``regions`` int32 ``[n, size, size]``
  (0 background, k the k-th shape painted, later shapes in front).
  """
  p = _shape_params(rng, n, size, max_shapes)
  images = np.empty((n, size, size), np.float32)
  regions = np.empty((n, size, size), np.int32)
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  for lo in range(0, n, _CHUNK):
    c = _chunk(p, lo, min(lo + _CHUNK, n))
    inside = _inside(c, size) & c['active'][..., None, None]
    region = np.zeros(inside.shape[:1] + inside.shape[2:], np.int32)
    for k in range(max_shapes):  # back to front
      region = np.where(inside[:, k], k + 1, region)
    grey = np.take_along_axis(c['grey'], region.reshape(len(region), -1), axis=1)
    tex = c['tex_amp'][..., None, None] * np.sin(
        2 * np.pi * c['tex_freq'][..., None, None] *
        (x * np.cos(c['tex_angle'])[..., None, None] + y * np.sin(c['tex_angle'])[..., None, None])
        + c['tex_phase'][..., None, None])  # [n, K + 1, H, W]
    tex = np.take_along_axis(tex, region[:, None], axis=1)[:, 0]
    half = (size - 1) / 2
    along = ((x - half) * np.cos(c['ramp_angle'])[:, None, None] +
             (y - half) * np.sin(c['ramp_angle'])[:, None, None]) / half
    image = grey.reshape(region.shape) + texture * tex + ramp * c['ramp'][:, None, None] * along
    if blur > 0:
      image = ndimage.gaussian_filter(image, sigma=(0, blur, blur), mode='nearest')
    image = image + noise * c['noise']
    images[lo:lo + len(region)] = np.clip(image, 0.0, 1.0)
    regions[lo:lo + len(region)] = region
  return images[..., None], regions


def generate(rng: np.random.Generator, n: int, **kwargs) -> dict[str, np.ndarray]:
  """``{'inputs': float32 [n, H, W, 1], 'edges': uint8 [n, H, W]}`` (1 on edge pixels); the
  keyword arguments are those of `render`."""
  images, regions = render(rng, n, **kwargs)
  return {'inputs': images, 'edges': edge_map(regions).astype(np.uint8)}
