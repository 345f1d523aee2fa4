"""Moving digits: short clips of one of scikit-learn's 8x8 digits sliding across a canvas.

A clip is ``frames`` images of a ``canvas x canvas`` canvas on which the digit (upscaled by
``scale``) moves by a constant integer velocity per frame; the label is the direction of the
motion (4 or 8 compass directions, `DIRECTION_NAMES`). The motion wraps around the edges (a
torus) and the first position is uniform over the whole canvas, so the position in any single
frame is uniform whatever the direction: one frame says nothing about the label, only the order
of the frames does. Reversing a clip turns direction d into its opposite, ``(d + D/2) mod D``.

Per clip, the speed is drawn from 1..``max_speed`` pixels per frame (per axis: a diagonal step
moves one pixel in each), and with ``channels=3`` the digit and the background get random
colours (at least 0.35 apart in every channel, so the digit stays visible); colour, speed, digit
and position are drawn independently of the direction, so none of them carries the label.

Clips of the train, validation and test splits are made from the digits of the same split of
`comparenets.data.digits`, so test clips show handwritten digits no training clip showed.
"""

from __future__ import annotations

import numpy as np

from comparenets.data import digits as digits_data

SPLITS = digits_data.SPLITS
# (dy, dx) of one step in each direction, image coordinates (y grows downwards); direction d
# is d * 360 / D degrees counter-clockwise from 'right'.
DIRECTION_NAMES = {
    4: ('right', 'up', 'left', 'down'),
    8: ('right', 'up-right', 'up', 'up-left', 'left', 'down-left', 'down', 'down-right'),
}
_STEPS = {'right': (0, 1), 'up-right': (-1, 1), 'up': (-1, 0), 'up-left': (-1, -1),
          'left': (0, -1), 'down-left': (1, -1), 'down': (1, 0), 'down-right': (1, 1)}
MIN_CONTRAST = 0.35


def unit_steps(directions: int) -> np.ndarray:
  """``int64 [directions, 2]``: the (dy, dx) of one pixel-step in each direction."""
  if directions not in DIRECTION_NAMES:
    raise ValueError(f'directions must be one of {sorted(DIRECTION_NAMES)}, not {directions}')
  return np.array([_STEPS[n] for n in DIRECTION_NAMES[directions]], np.int64)


def opposite(direction: np.ndarray | int, directions: int) -> np.ndarray | int:
  """The direction of the reversed motion."""
  return (direction + directions // 2) % directions


def upscale(images: np.ndarray, scale: int) -> np.ndarray:
  """``[N, h, w]`` images with every pixel repeated into a ``scale x scale`` block."""
  return images.repeat(scale, axis=1).repeat(scale, axis=2)


def render(sprites: np.ndarray, starts: np.ndarray, velocities: np.ndarray, frames: int,
           canvas: int) -> np.ndarray:
  """Clips of sprites moving on a torus.

  Args:
    sprites: ``[N, S, S]`` intensities in [0, 1], ``S <= canvas``.
    starts: ``[N, 2]`` integer (y, x) of each sprite's top-left corner in the first frame.
    velocities: ``[N, 2]`` integer (dy, dx) added to the position at every frame.
    frames: T, the number of frames.
    canvas: side of the square canvas.

  Returns:
    ``float32 [N, T, canvas, canvas]``: frame t shows the sprite with its top-left corner at
    ``(starts + t * velocities) mod canvas``, wrapping around the edges.
  """
  n, size = sprites.shape[0], sprites.shape[1]
  if size > canvas:
    raise ValueError(f'a {size}x{size} digit does not fit on a {canvas}x{canvas} canvas')
  base = np.zeros((n, canvas, canvas), np.float32)
  base[:, :size, :size] = sprites
  positions = starts[:, None, :] + np.arange(frames)[None, :, None] * velocities[:, None, :]
  grid = np.arange(canvas)
  rows = (grid[None, None, :] - positions[..., 0:1]) % canvas  # [N, T, H]
  cols = (grid[None, None, :] - positions[..., 1:2]) % canvas  # [N, T, W]
  return base[np.arange(n)[:, None, None, None], rows[..., :, None], cols[..., None, :]]


def colourize(alpha: np.ndarray, foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
  """``[N, T, H, W]`` digit intensities blended from each clip's ``background [N, C]`` to its
  ``foreground [N, C]`` colour: ``[N, T, H, W, C]``."""
  fg = foreground[:, None, None, None, :].astype(np.float32)
  bg = background[:, None, None, None, :].astype(np.float32)
  return bg + (fg - bg) * alpha[..., None]


def make_clips(images: np.ndarray, n: int, rng: np.random.Generator, *, frames: int = 8,
               canvas: int = 16, scale: int = 1, directions: int = 8, max_speed: int = 2,
               channels: int = 1) -> dict[str, np.ndarray]:
  """``n`` clips of digits drawn (with replacement) from ``images`` ``[M, 8, 8, 1]``.

  Returns ``{'inputs': float32 [n, T, canvas, canvas, channels] in [0, 1], 'label': int32 [n]
  (the direction), 'digit': int32 [n] (which of ``images``), 'start': [n, 2], 'velocity':
  [n, 2]}``, and with 3 channels each clip's 'foreground' and 'background' colour ``[n, 3]``.
  Every draw comes from ``rng``, so the clips are a function of its seed.
  """
  if channels not in (1, 3):
    raise ValueError(f'channels must be 1 (grayscale) or 3 (RGB), not {channels}')
  steps = unit_steps(directions)
  which = rng.integers(0, len(images), size=n)
  label = rng.integers(0, directions, size=n)
  speed = rng.integers(1, max_speed + 1, size=n)
  starts = rng.integers(0, canvas, size=(n, 2))
  velocity = steps[label] * speed[:, None]
  alpha = render(upscale(images[which, ..., 0], scale), starts, velocity, frames, canvas)
  out = {'label': label.astype(np.int32), 'digit': which.astype(np.int32), 'start': starts,
         'velocity': velocity}
  if channels == 1:
    out['inputs'] = alpha[..., None]
  else:
    background = rng.uniform(0.0, 1.0, size=(n, 3))
    shift = rng.uniform(MIN_CONTRAST, 1.0 - MIN_CONTRAST, size=(n, 3))
    out['foreground'], out['background'] = (background + shift) % 1.0, background
    out['inputs'] = colourize(alpha, out['foreground'], background)
  return out


def load_splits(seed: int = 0, num_train: int = 4000, num_eval: int = 1000, *, frames: int = 8,
                canvas: int = 16, scale: int = 1, directions: int = 8, max_speed: int = 2,
                channels: int = 1, uint8: bool = False) -> dict[str, dict[str, np.ndarray]]:
  """Train, validation and test clips: ``{split: {'inputs': [N, T, H, W, C], 'label': [N]}}``.

  The digits come from `comparenets.data.digits.load_splits(seed)` (split by split), the clips
  from ``default_rng([seed, i])`` for the i-th split, so the same arguments give the same clips
  on every machine. ``num_train`` training clips, ``num_eval`` validation and test clips each.
  ``uint8``: inputs as ``uint8`` (0..255, a quarter of the memory) instead of float32 in [0, 1].
  """
  parts = digits_data.load_splits(seed)
  out = {}
  for i, split in enumerate(SPLITS):
    clips = make_clips(parts[split]['inputs'], num_train if split == 'train' else num_eval,
                       np.random.default_rng([seed, i]), frames=frames, canvas=canvas,
                       scale=scale, directions=directions, max_speed=max_speed,
                       channels=channels)
    inputs = clips['inputs']
    if uint8:
      inputs = np.rint(inputs * 255.0).astype(np.uint8)
    out[split] = {'inputs': inputs, 'label': clips['label']}
  return out
