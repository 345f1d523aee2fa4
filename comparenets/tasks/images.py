"""Image classification that every family can read; subclasses only supply the data.

How an image ``[H, W, C]`` reaches a backbone (``reading``):

* 'image': as it is, for 2-D conv stacks;
* 'rows': H time steps of W*C features (one image row per step), for TCN/RNN/LSTM/GRU;
* 'pixels': H*W time steps of C features, pixel by pixel in row-major order (sequential MNIST);
  with ``order='permuted'`` the steps come in one fixed random order (``permutation_seed``),
  which removes locality and makes long memory matter (permuted MNIST);
* 'auto': 'image' for image backbones, 'rows' for sequence backbones.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np
import optax

from comparenets import figures
from comparenets.data import pipeline
from comparenets.errors import ConfigError
from comparenets.models.heads import ClassificationHead
from comparenets.tasks.base import Task

READINGS = ('auto', 'image', 'rows', 'pixels')
ORDERS = ('sequential', 'permuted')
# Class names of the datasets whose labels are not their own names (by a task's ``dataset``).
CLASS_NAMES = {
    'fashion_mnist': ('T-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
                      'sneaker', 'bag', 'boot'),
    'cifar10': ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
                'truck'),
}


@dataclasses.dataclass
class ImageClassification(Task):
  """Base class: subclasses define ``num_classes`` and ``splits()`` returning
  ``{split: {'inputs': float32 [N, H, W, C] in [0, 1], 'label': int32 [N]}}``."""
  reading: str = 'auto'
  order: str = 'sequential'
  permutation_seed: int = 0

  input_kinds = ('image', 'sequence')
  target_metric = 'accuracy'
  higher_is_better = True
  num_classes = 10
  config_rules = {
      'reading': {'choices': READINGS},
      'order': {'choices': ORDERS},
      'permutation_seed': {'min': 0},
  }

  def reading_for(self, kind: str) -> str:
    if self.reading == 'auto':
      return 'image' if kind == 'image' else 'rows'
    return self.reading

  def check_input_kind(self, kind: str, model: str) -> None:
    super().check_input_kind(kind, model)
    reading = self.reading_for(kind)
    if (kind == 'image') != (reading == 'image'):
      gives = 'images' if reading == 'image' else f'sequences ({reading})'
      fix = "reading='image' or 'auto'" if kind == 'image' else "reading='rows' or 'pixels'"
      raise ConfigError(f'model {model!r} reads {kind} input but task {self.name} with '
                        f'reading={reading!r} gives {gives}; use {fix}')
    if kind == 'image' and self.order == 'permuted':
      raise ConfigError(f"model {model!r} reads images, which have no step order to permute; "
                        "order='permuted' needs a sequence model")

  @staticmethod
  @functools.lru_cache(maxsize=None)
  def _permutation(seed: int, steps: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(steps)

  def permutation(self, steps: int) -> np.ndarray:
    """The fixed order of the ``steps`` time steps used by ``order='permuted'``."""
    return self._permutation(self.permutation_seed, steps)

  def adapt(self, batch, kind):
    images = batch['inputs']
    reading = self.reading_for(kind)
    if reading == 'image':
      return images, None
    b, h, w, c = images.shape
    x = images.reshape(b, h, w * c) if reading == 'rows' else images.reshape(b, h * w, c)
    if self.order == 'permuted':
      x = x[:, self.permutation(x.shape[1])]
    return x, None

  def head(self, hidden: tuple[int, ...] = (), dropout: float = 0.0):
    return ClassificationHead(self.num_classes, tuple(hidden), dropout)

  def per_example(self, outputs, batch):
    labels = batch['label']
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, labels)
    correct = (jnp.argmax(outputs, -1) == labels).astype(jnp.float32)
    return {'loss': loss, 'accuracy': correct}

  def class_names(self) -> tuple[str, ...] | None:
    return CLASS_NAMES.get(getattr(self, 'dataset', None))

  def figures(self, predict):
    """The test split's confusion matrix and a grid of test images with their labels."""
    test = self.splits()['test']  # a lazily read split is read batch by batch
    predicted = predict(test).argmax(-1)
    labels = pipeline.column(test, 'label')
    shown = figures.pick_examples(labels, predicted, 24)
    title = ', '.join([f'{getattr(self, "dataset", self.name)} test'] +
                      ([f'{self.reading} reading'] if self.reading != 'auto' else []) +
                      (['permuted'] if self.order == 'permuted' else []))
    return {
        'confusion_matrix': figures.confusion_matrix(labels, predicted, self.num_classes,
                                                   self.class_names(), title=title),
        'predictions': figures.image_predictions(pipeline.take(test, shown)['inputs'],
                                               labels[shown], predicted[shown],
                                               self.class_names(), title=title)}


def holdout(images: np.ndarray, labels: np.ndarray, fraction: float,
            seed: int | np.random.SeedSequence):
  """A seeded, stratified split of one array pair into (kept, held out). Per class the held-out
  part is a prefix of one seeded order, so for one seed a smaller fraction's held-out part lies
  inside a larger one's."""
  rng = np.random.default_rng(seed)
  held = []
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    held.append(idx[:int(round(len(idx) * fraction))])
  held = np.sort(np.concatenate(held))
  kept = np.setdiff1d(np.arange(len(labels)), held)
  return (images[kept], labels[kept]), (images[held], labels[held])
