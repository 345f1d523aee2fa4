"""Learned edge maps (``edges``): a per-pixel edge probability for synthetic shapes with exact
edge ground truth, scored like the BSDS boundary benchmark against Sobel and Canny.

Data (`comparenets.data.shapes`): grey ``size`` x ``size`` images of overlapping filled shapes
with textured regions, an illumination ramp, blur and noise; the edges are the exact boundaries
of the visible regions of the label map, one pixel wide. Training batches are generated on the
fly (step s from ``default_rng([seed, s])``); validation and test are fixed sets from
``data_seed``.

Model: a backbone reading the image (input kind 'image' only) and `PerPositionHead(1)`: one
logit per position of ``Features.per_position``. A conv stack with ``pool='none'`` keeps the
input's resolution; one that pools gives a smaller map, whose logits are upsampled bilinearly
to the input's size (as HED upsamples its side outputs), so a pooling CNN is scored too, at
the coarseness its pooling allows.

Loss: HED's class-balanced binary cross-entropy (Xie & Tu, 2015) per image, with
beta = |non-edge pixels| / |pixels| of that image: (-beta sum_{edge} log p
- (1 - beta) sum_{non-edge} log(1 - p)) / |pixels|; averaged over pixels rather than summed,
so its scale does not depend on ``size``.

Metrics (`comparenets.metrics.edges`, via `split_metrics` at every evaluation): ODS F
('ods_f', the target), its threshold, precision and recall, OIS F and AP, with predicted
pixels thinned and matched to true ones within ``tolerance`` pixels. Baselines scored by the
same code on the same images, cached per split: 'sobel_ods_f' (with 'sobel_ods_threshold',
'sobel_ois_f', 'sobel_ap'), and 'canny_ods_f' with its precision and recall at the Canny
setting ('canny_sigma', 'canny_high') that is best on the validation split. results.json also
gets them under 'baselines' with 'beats_baselines' (the model's test ODS F above each), as the
forecasting task reports its baselines.

Figures: test images with their true edges, Sobel, Canny and the learned map; the
precision-recall curves of the test split; and the same detectors on photographs that ship
with scikit-image (`comparenets.data.photos`). The photographs have no edge ground truth here
(BSDS cannot be loaded offline), so that figure is qualitative only: it shows how what was
learned on shapes carries over to real images, and nothing on it is scored.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from comparenets import figures
from comparenets.data import photos
from comparenets.data import shapes
from comparenets.metrics import edges as edge_metrics
from comparenets.models.heads import PerPositionHead
from comparenets.tasks.base import GeneratedTask, make_predict

PHOTOS = ('camera', 'coins', 'astronaut', 'chelsea')
PHOTO_SIZE = 128  # photos are shown as grey PHOTO_SIZE x PHOTO_SIZE centre crops of a resize


def full_resolution(logits, size: tuple[int, int]):
  """Per-position logits ``[B, h, w, 1]`` as ``[B, H, W]`` for ``size`` (H, W): as they are
  when the backbone kept the resolution, else bilinearly resized (jax or NumPy arrays)."""
  if tuple(logits.shape[1:3]) != tuple(size):
    logits = jax.image.resize(logits, (logits.shape[0], *size, logits.shape[-1]), 'bilinear')
  return logits[..., 0]


def balanced_bce(logits, edges):
  """HED's class-balanced binary cross-entropy per image, averaged over its pixels.

  ``logits`` and ``edges`` (0/1) are ``[B, H, W]``; returns ``[B]``. An edge pixel weighs
  beta = the image's share of non-edge pixels, a non-edge pixel 1 - beta.
  """
  edges = edges.astype(jnp.float32)
  beta = 1.0 - edges.mean(axis=(1, 2), keepdims=True)
  weight = jnp.where(edges > 0, beta, 1.0 - beta)
  return (weight * optax.sigmoid_binary_cross_entropy(logits, edges)).mean(axis=(1, 2))


def photo_inputs(names=PHOTOS, size: int = PHOTO_SIZE) -> np.ndarray:
  """float32 ``[N, size, size, 1]``: the photos' BT.601 luminance, resized (anti-aliased) so
  that the shorter side is ``size``, centre-cropped to a square."""
  # scikit-image's transform module takes a second to import: loaded when photos are resized
  from skimage import transform  # pylint: disable=g-import-not-at-top
  out = []
  for image in photos.load_photos(names).values():
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = grey.shape
    scale = size / min(h, w)
    grey = transform.resize(grey, (max(size, round(h * scale)), max(size, round(w * scale))),
                            anti_aliasing=True)
    top, left = (grey.shape[0] - size) // 2, (grey.shape[1] - size) // 2
    out.append(grey[top:top + size, left:left + size])
  return np.stack(out).astype(np.float32)[..., None]


@dataclasses.dataclass
class EdgeDetection(GeneratedTask):
  """Fields: the images (``size``, ``max_shapes``, ``noise``, ``texture``, ``ramp``,
  ``blur``: see `shapes.render`), the split sizes, ``data_seed``, the matching ``tolerance``
  in pixels and whether thresholded maps are ``thinning``-ed before matching."""
  size: int = 64
  max_shapes: int = 5
  noise: float = 0.1
  texture: float = 0.06
  ramp: float = 0.15
  blur: float = 0.8
  tolerance: float = 1.0
  thinning: bool = True
  validation_size: int = 256
  test_size: int = 256
  data_seed: int = 0

  name = 'edges'
  input_kinds = ('image',)
  target_metric = 'ods_f'
  higher_is_better = True
  config_rules = {'size': {'min': 8}, 'data_seed': {'min': 0}, 'blur': {'max': 10.0},
                  'noise': {'max': 1.0}, 'texture': {'max': 1.0}, 'ramp': {'max': 1.0},
                  'tolerance': {'max': 10.0}}

  def generate(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return shapes.generate(rng, n, size=self.size, max_shapes=self.max_shapes,
                           noise=self.noise, texture=self.texture, ramp=self.ramp,
                           blur=self.blur)

  def adapt(self, batch, kind):
    return batch['inputs'], None

  def head(self):
    return PerPositionHead(1)

  def per_example(self, outputs, batch):
    edges = batch['edges']
    return {'loss': balanced_bce(full_resolution(outputs, edges.shape[1:]), edges)}

  @staticmethod
  def probabilities(outputs, images: np.ndarray) -> np.ndarray:
    """Edge probabilities ``[N, H, W]`` (NumPy) from the model's outputs for ``images``
    ``[N, H, W, 1]``, of this task's or any other size."""
    logits = full_resolution(np.asarray(outputs, np.float32), images.shape[1:3])
    return np.asarray(jax.nn.sigmoid(logits))

  def _split_name(self, split) -> str | None:
    return next((k for k, v in self.splits().items() if v is split), None)

  def canny_setting(self) -> dict[str, float]:
    """The Canny setting with the best F on the validation split (chosen once)."""
    if not hasattr(self, '_canny'):
      val = self.splits()['validation']
      self._canny = edge_metrics.select_canny(  # pylint: disable=attribute-defined-outside-init
          val['inputs'], val['edges'], self.tolerance, thinning=self.thinning)
    return self._canny

  def baselines(self, split: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Sobel and Canny on ``split`` by the same scoring, computed once per named split."""
    cache = self.__dict__.setdefault('_baselines', {})
    name = self._split_name(split)
    if name in cache:
      return cache[name]
    sobel_counts = edge_metrics.match_counts(edge_metrics.sobel_maps(split['inputs']),
                                             split['edges'], self.tolerance,
                                             thinning=self.thinning)
    sobel = edge_metrics.scores(sobel_counts)
    setting = self.canny_setting()
    canny = edge_metrics.canny_scores(split['inputs'], split['edges'], self.tolerance,
                                      setting['sigma'], setting['high'], self.thinning)
    result = {'sobel_ods_f': sobel['ods_f'], 'sobel_ods_threshold': sobel['ods_threshold'],
              'sobel_ois_f': sobel['ois_f'], 'sobel_ap': sobel['ap'],
              'canny_ods_f': canny['f'], 'canny_precision': canny['precision'],
              'canny_recall': canny['recall'], 'canny_sigma': canny['sigma'],
              'canny_high': canny['high']}
    if name is not None:
      cache[name] = result
      self.__dict__.setdefault('_counts', {})[('sobel', name)] = sobel_counts
    return result

  def split_metrics(self, predict, split):
    """ODS/OIS F and AP of the model's edge maps on ``split``, plus the baselines'."""
    probs = self.probabilities(predict(split), split['inputs'])
    counts = edge_metrics.match_counts(probs, split['edges'], self.tolerance,
                                       thinning=self.thinning)
    name = self._split_name(split)
    if name is not None:  # kept for the precision-recall figure
      self.__dict__.setdefault('_counts', {})[name] = counts
    return {**edge_metrics.scores(counts), **self.baselines(split)}

  def figures(self, predict):
    """Test images (image, truth, Sobel, Canny, learned), test precision-recall curves, and
    the photographs (qualitative: they have no ground truth here)."""
    test = self.splits()['test']
    shown = {k: v[:4] for k, v in test.items()}
    setting = self.canny_setting()
    canny = f'Canny (sigma {setting["sigma"]:g})'
    out = {'edges_test': figures.image_comparison({
        'image': shown['inputs'], 'true edges': shown['edges'].astype(np.float32),
        'Sobel': edge_metrics.sobel_maps(shown['inputs']),
        canny: edge_metrics.canny_maps(shown['inputs'], setting['sigma'], setting['high']),
        'learned': self.probabilities(predict(shown), shown['inputs'])},
        title=f'edges test, noise {self.noise:g}: edge maps before thresholding')}
    out['edges_pr'] = self._pr_figure(predict)
    photos = photo_inputs()
    out['edges_photos'] = figures.image_comparison({
        'photo': photos, 'Sobel': edge_metrics.sobel_maps(photos),
        canny: edge_metrics.canny_maps(photos, setting['sigma'], setting['high']),
        'learned': self.probabilities(predict({'inputs': photos}), photos)}, n=len(photos),
        title='photographs (no ground truth: qualitative only)')
    return out

  def _test_counts(self, predict, which: str = 'learned') -> np.ndarray:
    """`match_counts` of the model (``predict``) or 'sobel' on the test split, as the last
    test evaluation left them (computed again if there was none)."""
    test = self.splits()['test']
    if 'test' not in self.__dict__.get('_counts', {}):
      self.split_metrics(predict, test)
    self.baselines(test)
    return self._counts['test' if which == 'learned' else ('sobel', 'test')]

  def write_artifacts(self, model, variables, workdir, rng):
    """Extra results: the baselines' test scores, as the forecasting task gives its own, and
    whether the model's test ODS F beats each."""
    del workdir, rng
    learned = edge_metrics.scores(self._test_counts(
        make_predict(self, model, 'image', variables)))
    base = self.baselines(self.splits()['test'])
    baselines = {
        'sobel': {'ods_f': base['sobel_ods_f'], 'ods_threshold': base['sobel_ods_threshold'],
                  'ois_f': base['sobel_ois_f'], 'ap': base['sobel_ap']},
        'canny': {'ods_f': base['canny_ods_f'], 'precision': base['canny_precision'],
                  'recall': base['canny_recall'], 'sigma': base['canny_sigma'],
                  'high': base['canny_high']}}
    beats = {k: learned['ods_f'] > v['ods_f'] for k, v in baselines.items()}
    return {'baselines': baselines, 'beats_baselines': beats,
            'beats_baselines_everywhere': all(beats.values())}

  def _pr_figure(self, predict) -> Any:
    base = self.baselines(self.splits()['test'])
    fig, axes = figures.new_figure(4.2, 4.0, squeeze=True)
    for label in ('learned', 'Sobel'):
      c = self._test_counts(predict, label.lower())
      p, r, f = edge_metrics.precision_recall_f(c.sum(axis=0))
      best = int(np.argmax(f))
      axes.plot(r, p, '-', label=f'{label} (ODS F {f[best]:.3f})')
      axes.plot(r[best], p[best], 'o', color=axes.lines[-1].get_color())
    axes.plot(base['canny_recall'], base['canny_precision'], 's',
              label=f'Canny (F {base["canny_ods_f"]:.3f})')
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel='recall', ylabel='precision',
             title=f'edges test, tolerance {self.tolerance:g} px')
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    return fig
