"""Real photographs that ship inside the scikit-image wheel, so they load without a network.

``load_photos(names=None) -> {name: float32 [H, W, 3] in [0, 1]}``: RGB photographs as they
are, grayscale ones repeated over the three channels (so every photo has one layout; their
BT.601 luminance is then an affine map of the gray value). Only the images that are
photographs of real scenes are here (no drawings, masks, logos or synthetic images), and only
those bundled with scikit-image: the ones it fetches over the network (eagle, lily, ...) are
not. ``motorcycle`` is the left view of ``skimage.data.stereo_motorcycle``; ``cat`` is left
out because it is ``chelsea``.

Used by the super-resolution task (which learns on patches of some photos and tests on other,
whole photos) and by edge detection.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from comparenets.errors import ConfigError

# name -> (skimage.data function, what the photo shows); sizes are H x W.
PHOTOS = {
    'astronaut': ('astronaut', 'portrait of astronaut Eileen Collins, 512x512 RGB'),
    'camera': ('camera', 'the cameraman, 512x512 gray'),
    'chelsea': ('chelsea', 'Chelsea the cat, 300x451 RGB'),
    'coffee': ('coffee', 'a cup of coffee, 400x600 RGB'),
    'rocket': ('rocket', 'a rocket on its launch pad, 427x640 RGB'),
    'motorcycle': ('stereo_motorcycle', 'a motorcycle (left stereo view), 500x741 RGB'),
    'coins': ('coins', 'Greek coins, 303x384 gray'),
    'moon': ('moon', 'the surface of the moon, 512x512 gray'),
    'clock': ('clock', 'a wall clock in motion blur, 300x400 gray'),
    'hubble_deep_field': ('hubble_deep_field', 'the Hubble deep field, 872x1000 RGB'),
    'immunohistochemistry': ('immunohistochemistry', 'stained tissue, 512x512 RGB'),
    'brick': ('brick', 'a brick wall, 512x512 gray'),
    'grass': ('grass', 'grass, 512x512 gray'),
    'gravel': ('gravel', 'gravel, 512x512 gray'),
    'page': ('page', 'a photographed page of text, 191x384 gray'),
    'text': ('text', 'photographed text on a sign, 172x448 gray'),
}


def names() -> list[str]:
  return list(PHOTOS)


@functools.lru_cache(maxsize=None)
def _load(name: str) -> np.ndarray:
  # scikit-image's data module loads slowly: only runs that show or train on photos load it
  import skimage.data  # pylint: disable=g-import-not-at-top
  image = getattr(skimage.data, PHOTOS[name][0])()
  if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
    image = image[0]
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  image = image.astype(np.float32) / 255.0
  image.setflags(write=False)  # shared by every caller through the cache
  return image


def load_photos(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:  # pylint: disable=redefined-outer-name
  """``{name: float32 [H, W, 3] in [0, 1]}`` of the given photos (all of them by default), in
  the order asked. The arrays are read-only and shared; copy one before changing it."""
  names = list(PHOTOS) if names is None else list(names)
  unknown = [n for n in names if n not in PHOTOS]
  if unknown:
    raise ConfigError(f'unknown photo {", ".join(map(repr, unknown))}; the bundled photos are '
                      f'{", ".join(PHOTOS)}')
  return {n: _load(n) for n in names}
