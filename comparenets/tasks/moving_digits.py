"""Moving digits: which way does the digit move? (video classification, embedded data)

Clips from `comparenets.data.moving_digits`: an 8x8 digit sliding with wrap-around across a
``canvas x canvas`` canvas over ``frames`` frames; the label is one of ``directions`` (4 or 8)
directions. Any single frame is independent of the label, so only models that see several
frames, in order, can beat chance (1 / directions).

How a clip ``[T, H, W, C]`` reaches a backbone (``reading``):

* 'video': as it is, ``[B, T, H, W, C]``, for the video backbones (``cnn3d``, ``cnn_lstm``, ...);
* 'channels': the T frames stacked as channels, ``[B, H, W, T*C]`` (frame-major), for a 2-D CNN:
  the "multi-frame input" that lets an image model see motion;
* 'frame': only the last frame, ``[B, H, W, C]``, for a 2-D CNN: the single-frame control, which
  stays at chance;
* 'frames': one flattened frame per step, ``[B, T, H*W*C]``, for TCN/RNN/LSTM/GRU;
* 'auto': 'video' for video backbones, 'channels' for image backbones, 'frames' for sequence
  backbones.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from comparenets import figures
from comparenets.data import moving_digits as clips_data
from comparenets.errors import ConfigError
from comparenets.tasks.base import Task
from comparenets.tasks.images import ImageClassification

READINGS = ('auto', 'video', 'channels', 'frame', 'frames')
# the input kind each reading gives, and how it is described in errors
KIND_OF_READING = {'video': 'video', 'channels': 'image', 'frame': 'image', 'frames': 'sequence'}
GIVES = {'video': 'video clips [B, T, H, W, C]',
         'channels': 'images with the frames stacked as channels',
         'frame': 'images of the last frame only',
         'frames': 'sequences of flattened frames'}
FIX = {'video': "reading='video' or 'auto'",
       'image': "reading='channels', 'frame' or 'auto'",
       'sequence': "reading='frames' or 'auto'"}
AUTO = {'video': 'video', 'image': 'channels', 'sequence': 'frames'}


@dataclasses.dataclass
class MovingDigits(Task):
  """Direction of motion of a digit in a short clip; metric: accuracy."""
  frames: int = 8
  canvas: int = 16
  scale: int = 1
  channels: int = 1
  directions: int = 8
  max_speed: int = 2
  num_train: int = 4000
  num_eval: int = 1000
  split_seed: int = 0
  reading: str = 'auto'

  name = 'moving_digits'
  input_kinds = ('video', 'image', 'sequence')
  target_metric = 'accuracy'
  higher_is_better = True
  config_rules = {
      'frames': {'min': 2},
      'canvas': {'min': 8},
      'channels': {'choices': (1, 3)},
      'directions': {'choices': tuple(sorted(clips_data.DIRECTION_NAMES))},
      'split_seed': {'min': 0},
      'reading': {'choices': READINGS},
  }

  # the classification head and loss of every image task
  head = ImageClassification.head
  per_example = ImageClassification.per_example

  def __post_init__(self):
    side = 8 * self.scale
    if side > self.canvas:
      raise ConfigError(f'task {self.name!r}: a digit upscaled {self.scale}x is {side}x{side} '
                        f'pixels and does not fit on a {self.canvas}x{self.canvas} canvas; use '
                        f'canvas >= {side} or a smaller scale')

  @property
  def num_classes(self) -> int:
    return self.directions

  def class_names(self) -> tuple[str, ...]:
    return clips_data.DIRECTION_NAMES[self.directions]

  def reading_for(self, kind: str) -> str:
    return AUTO.get(kind, kind) if self.reading == 'auto' else self.reading

  def check_input_kind(self, kind: str, model: str) -> None:
    super().check_input_kind(kind, model)
    reading = self.reading_for(kind)
    if KIND_OF_READING[reading] != kind:
      raise ConfigError(f'model {model!r} reads {kind} input but task {self.name} with '
                        f'reading={reading!r} gives {GIVES[reading]}; use {FIX[kind]}')

  def splits(self):
    if not hasattr(self, '_splits'):
      self._splits = clips_data.load_splits(  # pylint: disable=attribute-defined-outside-init
          self.split_seed, self.num_train, self.num_eval, frames=self.frames,
          canvas=self.canvas, scale=self.scale, directions=self.directions,
          max_speed=self.max_speed, channels=self.channels, uint8=True)
    return self._splits

  def adapt(self, batch, kind):
    clips = batch['inputs']  # uint8 [B, T, H, W, C]
    clips = clips.astype(jnp.float32) / 255.0 if clips.dtype == jnp.uint8 else clips
    reading = self.reading_for(kind)
    b, t, h, w, c = clips.shape
    if reading == 'video':
      return clips, None
    if reading == 'channels':
      return clips.transpose(0, 2, 3, 1, 4).reshape(b, h, w, t * c), None
    if reading == 'frame':
      return clips[:, -1], None
    return clips.reshape(b, t, h * w * c), None

  def figures(self, predict):
    """The test split's confusion matrix and a few test clips as strips of frames."""
    test = self.splits()['test']
    predicted = predict(test).argmax(-1)
    labels = test['label']
    shown = figures.pick_examples(labels, predicted, 6)
    reading = self.reading if self.reading != 'auto' else 'auto reading'
    title = f'moving digits test ({reading})'
    return {
        'confusion_matrix': figures.confusion_matrix(labels, predicted, self.num_classes,
                                                   self.class_names(), title=title),
        'predictions': figures.clip_predictions(test['inputs'][shown] / 255.0, labels[shown],
                                              predicted[shown], self.class_names(),
                                              title=title)}
