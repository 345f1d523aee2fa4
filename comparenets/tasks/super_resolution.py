"""Single-image super-resolution (x2, x3, x4) of real photographs, against bicubic upscaling.

Data (``dataset``):

* 'skimage' (default, no download): the photographs bundled with scikit-image
  (`comparenets.data.photos`). Whole photos are held out: ``test_photos`` for the test split,
  ``validation_photos`` for validation; training draws patches from every other photo.
* 'div2k': TFDS ``div2k/bicubic_x{scale}`` (its own bicubic LR images) when prepared in
  ``data_dir``: training patches from its train split less its last ``div2k_validation_images``
  images (the validation split); the test split is DIV2K's validation set (its 100 images,
  or the first ``max_test_images``).

Like SRCNN and ESPCN the task works on luminance: every image becomes its ITU-R BT.601 Y
channel ``[H, W, 1]``. The high-resolution (HR) image is cropped to a multiple of ``scale``; the
low-resolution (LR) input is its antialiased bicubic downscaling (`downscale`, skimage only).

The network reads the LR image (minus 0.5) and, through `SubPixelHead` (ESPCN's sub-pixel
convolution), outputs a residual at HR that the task adds to the bicubic upscaling of its input
(`upscale`, ``jax.image.resize``; VDSR's global residual): with a zero head the prediction *is*
bicubic. Everything is convolutional, so the model trained on ``patch``-pixel crops applies to
whole images of any size. It needs a backbone that keeps the resolution: ``cnn`` with
``pool='none'``.

Training batches are random aligned (LR, HR) patch pairs (``patch`` HR pixels a side) under a
random flip / 90-degree rotation, a pure function of (seed, step); in a run of several
processes each process reads (DIV2K: decodes) only the images of its rows of the global batch
(`random_patches`). The loss is the MSE on Y.

Evaluation: the train loop sums 'loss' (and 'bicubic_loss') over fixed-size tiles of the
held-out images, and `split_metrics` measures each held-out *whole* image (one at a time, so
sizes may differ) after cropping ``scale`` pixels off each side, as the SR literature does:
'psnr' and 'ssim' of the model, 'bicubic_psnr' and 'bicubic_ssim' of bicubic upscaling by the
same code, 'psnr_gain' (dB) and 'ssim_gain', each the mean over the split's images. In a run of
several processes each process reads only its share of the held-out images, sums the loss over
their tiles and measures them; the per-image metrics are gathered (`splits`, `split_metrics`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from comparenets import figures
from comparenets import parallel
from comparenets.data import photos
from comparenets.data import pipeline
from comparenets.data import tfds_source
from comparenets.errors import ConfigError
from comparenets.metrics import images as image_metrics
from comparenets.models.heads import SubPixelHead
from comparenets.tasks.base import Task, make_predict

DATASETS = ('skimage', 'div2k')
# Photos the skimage dataset holds out by default; training uses all the others.
TEST_PHOTOS = 'astronaut,camera,chelsea'
VALIDATION_PHOTOS = 'coffee'
# div2k: patches drawn from each image read in a step (decoding a 2K PNG is the slow part).
DIV2K_PATCHES_PER_IMAGE = 8
HELD_OUT = ('validation', 'test')
READ_CHUNK = 8  # held-out images read at once by process 0 for the per-image results


def upscale(lr, scale: int):
  """Bicubic upscaling (Keys, a = -0.5; half-pixel centres) of ``[..., h, w, C]`` by ``scale``:
  the baseline, and what the network's residual is added to."""
  *lead, h, w, c = lr.shape
  return jax.image.resize(lr, (*lead, h * scale, w * scale, c), 'cubic')


_upscale = jax.jit(upscale, static_argnums=1)


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
  """Antialiased bicubic downscaling of ``[H, W, C]`` (H, W multiples of ``scale``) by
  ``scale``, clipped to [0, 1], like MATLAB's ``imresize``; float32."""
  h, w, c = hr.shape
  if h % scale or w % scale:
    raise ValueError(f'downscale by {scale} needs sides that are multiples of it, not {h}x{w}')
  lr = jax.image.resize(jnp.asarray(hr, jnp.float32), (h // scale, w // scale, c), 'cubic',
                        antialias=True)
  return np.clip(np.asarray(lr), 0.0, 1.0)


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
  """``image`` cropped (bottom and right) to sides that are multiples of ``scale``."""
  h, w = image.shape[0] // scale * scale, image.shape[1] // scale * scale
  return image[:h, :w]


@dataclasses.dataclass(frozen=True)
class Pair:
  """One image: its name, LR luminance ``[h, w, 1]`` and HR luminance ``[h*s, w*s, 1]``."""
  name: str
  lr: np.ndarray
  hr: np.ndarray


def photo_pair(name: str, rgb: np.ndarray, scale: int) -> Pair:
  hr = mod_crop(image_metrics.luminance(rgb), scale)
  return Pair(name, downscale(hr, scale), hr)


def div2k_pair(name: str, example: Mapping[str, Any], scale: int) -> Pair:
  """A DIV2K record's own (LR, HR), cropped to the region where they correspond (real DIV2K
  LR images are the HR ones downscaled, so this only drops the HR's last rows/columns that do
  not fill an LR pixel)."""
  hr_rgb = np.asarray(example['hr'], np.float32) / 255.0
  lr_rgb = np.asarray(example['lr'], np.float32) / 255.0
  h = min(lr_rgb.shape[0], hr_rgb.shape[0] // scale)
  w = min(lr_rgb.shape[1], hr_rgb.shape[1] // scale)
  return Pair(name, image_metrics.luminance(lr_rgb[:h, :w]),
              image_metrics.luminance(hr_rgb[:h * scale, :w * scale]))


def tiles(pairs: Sequence[Pair], scale: int, tile: int) -> dict[str, np.ndarray]:
  """Every non-overlapping ``tile``-pixel HR tile (and its LR) of every image: 'inputs' LR,
  'target' HR, 'image' (index into ``pairs``) and 'origin' (HR row, column). ``tile`` is first
  shrunk to fit the smallest image and rounded down to a multiple of ``scale``. No images: no
  tiles, in arrays of the fields' shapes."""
  tile = min([tile] + [min(p.hr.shape[:2]) for p in pairs]) // scale * scale
  t = tile // scale
  if not pairs:
    return {'inputs': np.zeros((0, t, t, 1), np.float32),
            'target': np.zeros((0, tile, tile, 1), np.float32),
            'image': np.zeros((0,), np.int32), 'origin': np.zeros((0, 2), np.int32)}
  out: dict[str, list[Any]] = {'inputs': [], 'target': [], 'image': [], 'origin': []}
  for i, p in enumerate(pairs):
    for y in range(0, p.lr.shape[0] - t + 1, t):
      for x in range(0, p.lr.shape[1] - t + 1, t):
        out['inputs'].append(p.lr[y:y + t, x:x + t])
        out['target'].append(p.hr[y * scale:(y + t) * scale, x * scale:(x + t) * scale])
        out['image'].append(i)
        out['origin'].append((y * scale, x * scale))
  return {'inputs': np.stack(out['inputs']).astype(np.float32),
          'target': np.stack(out['target']).astype(np.float32),
          'image': np.asarray(out['image'], np.int32),
          'origin': np.asarray(out['origin'], np.int32)}


class Images(Sequence):
  """A held-out split's whole DIV2K images, read and decoded only when asked for and not kept
  (each process of a run reads its share, `SuperResolution.splits`): ``take(indices)`` reads
  those records in one batched read (`pipeline.read_records`)."""

  def __init__(self, source: Sequence[Any], keys: Sequence[int], names: Sequence[str],
               scale: int):
    self.source, self.keys, self.names, self.scale = source, list(keys), list(names), scale

  def __len__(self):
    return len(self.keys)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return self.take(range(len(self))[i])
    return self.take([range(len(self))[i]])[0]

  def take(self, indices) -> list[Pair]:
    indices = [int(i) for i in indices]
    records = pipeline.read_records(self.source, [self.keys[i] for i in indices])
    return [div2k_pair(self.names[i], r, self.scale) for i, r in zip(indices, records)]


def _take(images: Sequence[Pair], indices) -> list[Pair]:
  """The images ``indices`` of a held-out split (an `Images` view reads them in one batch)."""
  if isinstance(images, Images):
    return images.take(indices)
  return [images[i] for i in indices]


def random_patches(rng: np.random.Generator, read: Callable[[int], Pair], weights: np.ndarray,
                   batch_size: int, scale: int, patch: int, patches_per_image: int = 1,
                   rows: slice | None = None) -> dict[str, np.ndarray]:
  """Rows ``rows`` (all by default) of a batch of ``batch_size`` aligned (LR, HR) patch pairs:
  consecutive runs of ``patches_per_image`` rows come from one image, drawn with probability
  ``weights`` (0 for images smaller than the patch), each patch under one of the 8
  flips/rotations.

  Every random number of the whole batch is drawn first, and none depends on an image's size
  (a patch's corner is a uniform fraction of the room its image leaves), so ``rows`` reads
  only the images of those rows (one process's share of a global batch) and gives exactly
  those rows of the whole batch."""
  p = patch // scale
  n_images = -(-batch_size // patches_per_image)
  chosen = rng.choice(len(weights), size=n_images, p=weights / weights.sum())
  corners = rng.random((batch_size, 2))
  turns = rng.integers(8, size=batch_size)
  rows = range(batch_size)[rows if rows is not None else slice(None)]
  image = lambda j: int(chosen[j // patches_per_image])
  pairs = {i: read(i) for i in sorted({image(j) for j in rows})}
  lrs, hrs = [], []
  for j in rows:
    pair = pairs[image(j)]
    y, x = (int(u * (n - p + 1)) for u, n in zip(corners[j], pair.lr.shape[:2]))
    lr = pair.lr[y:y + p, x:x + p]
    hr = pair.hr[y * scale:(y + p) * scale, x * scale:(x + p) * scale]
    k = int(turns[j])
    lr, hr = np.rot90(lr, k % 4), np.rot90(hr, k % 4)
    if k >= 4:
      lr, hr = lr[:, ::-1], hr[:, ::-1]
    lrs.append(lr)
    hrs.append(hr)
  return {'inputs': np.stack(lrs).astype(np.float32), 'target': np.stack(hrs).astype(np.float32)}


def _names(value: str) -> list[str]:
  return [n.strip() for n in value.split(',') if n.strip()]


def _generate_batch(generate, rng, n, rows):
  """``generate``'s rows ``rows`` of a batch of ``n`` (a module-level function: grain's workers
  pickle it)."""
  return generate(rng, batch_size=n, rows=rows)


@dataclasses.dataclass
class SuperResolution(Task):
  scale: int = 2
  patch: int = 48                   # HR side of a training patch, a multiple of scale
  dataset: str = 'skimage'
  data_dir: str = ''                # div2k: '' = TFDS's default (~/tensorflow_datasets)
  test_photos: str = TEST_PHOTOS    # skimage: comma-separated names of held-out photos
  validation_photos: str = VALIDATION_PHOTOS
  eval_tile: int = 96               # HR side of the tiles whose loss evaluation sums
  div2k_validation_images: int = 10
  max_test_images: int = 0          # div2k: 0 = every image of its validation set
  read_workers: int = 0             # grain worker processes cutting training patches ahead

  name = 'super_resolution'
  input_kinds = ('image',)
  target_metric = 'psnr'
  higher_is_better = True
  config_rules = {
      'scale': {'choices': (2, 3, 4)},
      'dataset': {'choices': DATASETS},
      'max_test_images': {'min': 0},
      'read_workers': {'min': 0},
  }

  def __post_init__(self):
    if self.patch % self.scale:
      raise ConfigError(f'task super_resolution: patch={self.patch} must be a multiple of '
                        f'scale={self.scale}')
    if self.dataset == 'skimage':
      held = _names(self.test_photos) + _names(self.validation_photos)
      unknown = [n for n in held if n not in photos.PHOTOS]
      if unknown or not _names(self.test_photos) or not _names(self.validation_photos):
        raise ConfigError(f'task super_resolution: test_photos and validation_photos must '
                          f'name bundled photos ({", ".join(photos.names())}), not '
                          f'{self.test_photos!r} / {self.validation_photos!r}')
      if len(set(held)) != len(held) or len(held) >= len(photos.PHOTOS):
        raise ConfigError('task super_resolution: test_photos and validation_photos must be '
                          'distinct and leave photos to train on')

  # ------------------------------------------------------------------------------- data

  def data(self) -> dict[str, Any]:
    """``{'train': (read(i) -> Pair, weights, patches_per_image, train split),
    'validation': images, 'test': images}``, loaded once per task object. The held-out images
    are a list of `Pair` (skimage, in memory) or an `Images` view (div2k) that reads and
    decodes only the images asked for."""
    if not hasattr(self, '_data'):
      self._data = (  # pylint: disable=attribute-defined-outside-init
          self._load_skimage() if self.dataset == 'skimage' else self._load_div2k())
    return self._data

  def _load_skimage(self):
    test, val = _names(self.test_photos), _names(self.validation_photos)
    train = [n for n in photos.names() if n not in test + val]
    pair = lambda n: photo_pair(n, photos.load_photos([n])[n], self.scale)
    train_pairs = [pair(n) for n in train]
    weights = np.array([p.lr.shape[0] * p.lr.shape[1] if min(p.lr.shape[:2]) >= self.patch
                        // self.scale else 0 for p in train_pairs], np.float64)
    return {'train': (train_pairs.__getitem__, weights, 1,
                      tiles(train_pairs, self.scale, self.eval_tile)),
            'validation': [pair(n) for n in val], 'test': [pair(n) for n in test]}

  def _load_div2k(self):
    name = f'div2k/bicubic_x{self.scale}'
    data_dir = self.data_dir or None
    train = tfds_source.open_split(name, 'train', data_dir)
    test = tfds_source.open_split(name, 'validation', data_dir)
    n_val = self.div2k_validation_images
    if n_val >= len(train):
      raise ConfigError(f'task super_resolution: div2k_validation_images={n_val} leaves none '
                        f'of the {len(train)} DIV2K training images to train on')
    n_train = len(train) - n_val
    read = lambda i: div2k_pair(f'train/{i}', train[i], self.scale)
    n_test = len(test) if not self.max_test_images else min(self.max_test_images, len(test))
    centre = lambda example: _centre_tile(div2k_pair('', example, self.scale), self.scale,
                                          self.eval_tile)
    train_split = pipeline.SourceSplit(train, centre, ('inputs', 'target'),
                                       np.arange(n_train))
    held = range(n_train, len(train))
    return {'train': (read, np.ones(n_train), DIV2K_PATCHES_PER_IMAGE, train_split),
            'validation': Images(train, held, [f'train/{i}' for i in held], self.scale),
            'test': Images(test, range(n_test), [f'validation/{i}' for i in range(n_test)],
                           self.scale)}

  def splits(self):
    """'train': tiles of the training images (skimage) or one centre tile per image (div2k,
    read lazily); 'validation' and 'test': every tile of the held-out images big enough to
    measure (`_measurable`), with 'image' (index into those images) and 'origin'.

    In a run of several processes each process reads and decodes only its contiguous share of
    each held-out split's images (`parallel.share`), and the split is a `pipeline.ProcessSplit`
    of the tiles of its images: the evaluation sums each tile's loss exactly once, with each
    process's rows of a batch cut from its own tiles. The images' sizes are gathered
    (`parallel.gather`, so every process calls this at one point: the train loop does at
    start), for the tile size (fitted to the smallest image of the split, as in one process)
    and every process's tile count. One process: every image, and the tiles as always."""
    if not hasattr(self, '_splits'):
      data = self.data()
      index, count = parallel.this_process()
      own = {s: [p for p in _take(data[s], parallel.share(len(data[s]), index, count))
                 if self._measurable(p)] for s in HELD_OUT}
      # (HR height, HR width, LR height, LR width) of every measurable image, by process
      sizes = parallel.gather({s: [[*p.hr.shape[:2], *p.lr.shape[:2]] for p in own[s]]
                               for s in HELD_OUT})
      # pylint: disable=attribute-defined-outside-init
      self._own, self._tile = own, {}
      splits = {'train': data['train'][3]}
      for s in HELD_OUT:
        parts = [part[s] for part in sizes]
        every = [size for part in parts for size in part]
        if not every:
          raise ConfigError(f'task super_resolution: no {s} image is at least '
                            f'{self._min_side} pixels a side')
        tile = min([self.eval_tile] + [min(h, w) for h, w, _, _ in every]) // self.scale \
            * self.scale
        self._tile[s] = tile
        mine = tiles(own[s], self.scale, tile)
        if count == 1:
          splits[s] = mine
          continue
        t = tile // self.scale
        mine['image'] += sum(len(part) for part in parts[:index])  # index among all images
        splits[s] = pipeline.ProcessSplit(
            mine, [sum((lh // t) * (lw // t) for _, _, lh, lw in part) for part in parts],
            index, count)
      self._splits = splits
      # pylint: enable=attribute-defined-outside-init
    return self._splits

  @property
  def _min_side(self) -> int:
    """The smallest HR side SSIM's 11-pixel window fits once ``scale`` pixels are cropped off
    each side."""
    return 11 + 2 * self.scale

  def _measurable(self, pair: Pair) -> bool:
    """Whether the image is big enough for SSIM's window once the border is cropped (every
    real one is)."""
    return min(pair.hr.shape[:2]) >= self._min_side

  def _own_pairs(self, split: Mapping[str, np.ndarray]) -> list[Pair]:
    """This process's measurable images of a validation or test split of `splits` (every
    image in a one-process run)."""
    for name in HELD_OUT:
      if split is self.splits()[name]:
        return self._own[name]
    raise ValueError('super_resolution measures whole images of its validation or test split '
                     'only')

  def _every_pair(self, split: str) -> Iterator[Pair]:
    """Every measurable image of a held-out split, in order: this process's from memory, the
    others read a few at a time and not kept (process 0 writes the per-image results and the
    figures)."""
    self.splits()
    images = self.data()[split]
    mine = parallel.share(len(images), *parallel.this_process())

    def others(indices):
      for start in range(0, len(indices), READ_CHUNK):
        yield from (p for p in _take(images, indices[start:start + READ_CHUNK])
                    if self._measurable(p))

    yield from others(range(mine.start))
    yield from self._own[split]
    yield from others(range(mine.stop, len(images)))

  def train_sampler(self, batch_size: int, seed: int):
    read, weights, per_image, _ = self.data()['train']
    if not weights.any():
      raise ConfigError(f'task super_resolution: patch={self.patch} is larger than every '
                        f'training image; use a smaller patch')
    generate = functools.partial(random_patches, read=read, weights=weights, scale=self.scale,
                                 patch=self.patch, patches_per_image=per_image)
    return self.streamed(pipeline.GeneratedSampler(
        functools.partial(_generate_batch, generate), batch_size, seed, rows=True))

  # ------------------------------------------------------------------------------- model

  def adapt(self, batch, kind):
    del kind
    return batch['inputs'] - 0.5, None

  def head(self, kernel_size: int = 3, zero_init: bool = True):
    return SubPixelHead(self.scale, 1, kernel_size, zero_init)

  def reconstruct(self, residual, lr):
    """The model's HR prediction: bicubic upscaling of the LR input plus the head's residual."""
    base = upscale(lr, self.scale)
    if residual.shape != base.shape:
      raise ConfigError(f'task super_resolution needs a backbone that keeps the resolution '
                        f'(cnn with pool=none): the head gave {tuple(residual.shape)} for an '
                        f'upscaled input of {tuple(base.shape)}')
    return base + residual

  def per_example(self, outputs, batch):
    sr = self.reconstruct(outputs, batch['inputs'])
    mse = lambda x: jnp.mean((x - batch['target']) ** 2, axis=(1, 2, 3))
    return {'loss': mse(sr), 'bicubic_loss': mse(upscale(batch['inputs'], self.scale))}

  # ------------------------------------------------------------------------------- metrics

  def super_resolve(self, predict, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """(model, bicubic) HR predictions of one whole image, clipped to [0, 1]."""
    bicubic = np.asarray(_upscale(pair.lr[None], self.scale))[0]
    residual = predict({'inputs': pair.lr[None]})[0]
    if residual.shape != bicubic.shape:
      self.reconstruct(residual, pair.lr)  # raises the error that says why
    return np.clip(bicubic + residual, 0, 1), np.clip(bicubic, 0, 1)

  def measure(self, predict, pairs: Sequence[Pair]) -> dict[str, dict[str, float]]:
    """``{image name: {'psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim'}}`` on Y, ``scale``
    pixels cropped off each side."""
    out = {}
    crop = lambda x: image_metrics.crop_border(x, self.scale)
    for pair in pairs:
      model, bicubic = self.super_resolve(predict, pair)
      hr = crop(pair.hr)
      out[pair.name] = {
          'psnr': image_metrics.psnr(crop(model), hr),
          'ssim': image_metrics.ssim(crop(model), hr),
          'bicubic_psnr': image_metrics.psnr(crop(bicubic), hr),
          'bicubic_ssim': image_metrics.ssim(crop(bicubic), hr)}
    return out

  def split_metrics(self, predict, split):
    """The means over the split's whole images of `measure`'s metrics. Each process of a run
    measures the images it read (its contiguous share, `splits`) and the per-image values are
    gathered in image order, so every process gets the means one process computes."""
    mine = self.measure(predict, self._own_pairs(split))
    keys = ('psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim')
    rows = [row for part in parallel.gather([[float(m[k]) for k in keys] for m in mine.values()])
            for row in part]
    means = {k: float(np.mean([row[j] for row in rows])) for j, k in enumerate(keys)}
    means['psnr_gain'] = means['psnr'] - means['bicubic_psnr']
    means['ssim_gain'] = means['ssim'] - means['bicubic_ssim']
    return means

  # ------------------------------------------------------------------------------- outputs

  def write_artifacts(self, model, variables, workdir, rng):
    """Per-image test metrics, in the results as 'test_images', and the bicubic baseline
    under 'baselines' with 'beats_baselines' (as the forecasting and edge tasks report theirs),
    so that reports show it beside the model."""
    del workdir, rng
    predict = make_predict(self, model, 'image', variables, batch_size=1)
    per_image = self.measure(predict, self._every_pair('test'))
    mean = lambda key: float(np.mean([m[key] for m in per_image.values()]))
    bicubic = {'psnr': mean('bicubic_psnr'), 'ssim': mean('bicubic_ssim')}
    beats = {'bicubic': mean('psnr') > bicubic['psnr']}
    return {'test_images': per_image, 'baselines': {'bicubic': bicubic},
            'beats_baselines': beats, 'beats_baselines_everywhere': all(beats.values())}

  def figures(self, predict):
    """For each test image (up to 4), the tile where bicubic does worst: the LR input,
    bicubic, the model and the truth (luminance)."""
    self.splits()
    t = self._tile['test']
    columns: dict[str, list[np.ndarray]] = {'low resolution': [], 'bicubic': [], 'model': [],
                                            'truth': []}
    names = []
    for pair in itertools.islice(self._every_pair('test'), 4):
      own = tiles([pair], self.scale, t)  # the image's tiles of the test split
      bicubic_tiles = np.asarray(_upscale(own['inputs'], self.scale))
      errors = np.mean((bicubic_tiles - own['target']) ** 2, axis=(1, 2, 3))
      y, x = own['origin'][int(np.argmax(errors))]
      model, bicubic = self.super_resolve(predict, pair)
      s = self.scale
      columns['low resolution'].append(pair.lr[y // s:(y + t) // s, x // s:(x + t) // s])
      columns['bicubic'].append(bicubic[y:y + t, x:x + t])
      columns['model'].append(model[y:y + t, x:x + t])
      columns['truth'].append(pair.hr[y:y + t, x:x + t])
      names.append(pair.name)
    title = f'x{self.scale} super-resolution, {self.dataset} test: {", ".join(names)} (Y)'
    return {'super_resolution': figures.image_comparison(
        {k: np.stack(v) for k, v in columns.items()}, n=len(names), title=title)}


def _centre_tile(pair: Pair, scale: int, tile: int) -> dict[str, np.ndarray]:
  t = min(tile, *pair.hr.shape[:2]) // scale
  y, x = (pair.lr.shape[0] - t) // 2, (pair.lr.shape[1] - t) // 2
  return {'inputs': pair.lr[y:y + t, x:x + t],
          'target': pair.hr[y * scale:(y + t) * scale, x * scale:(x + t) * scale]}
