"""Image-quality metrics as the super-resolution literature reports them, in NumPy (float64).

* ``luminance(rgb)``: ITU-R BT.601 luma Y of RGB in [0, 1], as MATLAB's ``rgb2ycbcr``:
  ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``, in [16/255, 235/255].
* ``psnr(x, y)``: ``10 log10(data_range^2 / MSE)``; infinite for identical images.
* ``ssim(x, y)``: the structural similarity of Wang, Bovik, Sheikh & Simoncelli (2004): local
  means, variances and covariance under an 11x11 Gaussian window (sigma 1.5, normalised),
  ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, the map averaged over every position where the
  window fits inside the image. This is what ``skimage.metrics.structural_similarity(
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)`` computes.
* ``crop_border(x, n)``: drops ``n`` pixels on each side, the usual ``scale``-pixel crop before
  measuring an upscaled image (its border depends on how the resizer pads).

All take single-channel images ``[H, W]`` (or ``[H, W, 1]``).
"""

from __future__ import annotations

import numpy as np

Y_OFFSET = 16.0 / 255.0
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def luminance(rgb: np.ndarray) -> np.ndarray:
  """BT.601 luma ``[..., 1]`` of RGB ``[..., 3]`` in [0, 1]; float32."""
  rgb = np.asarray(rgb, np.float64)
  if rgb.shape[-1] != 3:
    raise ValueError(f'luminance needs RGB [..., 3], not shape {rgb.shape}')
  return (Y_OFFSET + rgb @ Y_WEIGHTS)[..., None].astype(np.float32)


def _plane(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim == 3 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 2:
    raise ValueError(f'expected one image [H, W] or [H, W, 1], not shape {x.shape}')
  return x


def crop_border(x: np.ndarray, n: int) -> np.ndarray:
  """``x`` without ``n`` pixels on each side of its first two axes."""
  return x[n:x.shape[0] - n, n:x.shape[1] - n] if n > 0 else x


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
  """Peak signal-to-noise ratio in dB of ``x`` against the reference ``y``."""
  x, y = _plane(x), _plane(y)
  if x.shape != y.shape:
    raise ValueError(f'psnr of images of different shapes: {x.shape} and {y.shape}')
  mse = np.mean((x - y) ** 2)
  return float('inf') if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
  """The normalised 1-D Gaussian of ``size`` taps whose outer product is the SSIM window."""
  r = np.arange(size) - (size - 1) / 2
  w = np.exp(-r ** 2 / (2 * sigma ** 2))
  return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """Separable 'valid' correlation of ``x [H, W]`` with ``w`` along both axes."""
  k = len(w)
  rows = np.lib.stride_tricks.sliding_window_view(x, k, axis=0) @ w       # [H-k+1, W]
  return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ w    # [H-k+1, W-k+1]


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> float:
  """Mean structural similarity of ``x`` and ``y`` (symmetric), in [-1, 1]."""
  x, y = _plane(x), _plane(y)
  if x.shape != y.shape:
    raise ValueError(f'ssim of images of different shapes: {x.shape} and {y.shape}')
  if min(x.shape) < window:
    raise ValueError(f'ssim needs images of at least {window}x{window}, not {x.shape}')
  w = gaussian_window(window, sigma)
  f = lambda a: _filter_valid(a, w)
  mx, my = f(x), f(y)
  vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
  return float(s.mean())
