"""What every backbone returns, so that a task's head never needs to know which family ran."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class Features:
  """A backbone's output.

  Attributes:
    per_position: one feature vector per input position: ``[B, T, D]`` for sequence backbones
      (every time step) and CNN-encoder + recurrent video backbones (every frame),
      ``[B, h, w, C]`` for 2-D conv stacks (the last feature map), ``[B, t, h, w, C]`` for
      3-D conv stacks (their last feature map).
    summary: one vector per example, ``[B, D]``: a recurrent net's final hidden state, a TCN's
      output at the last real step, a CNN's flattened or pooled last feature map.
    state: the final recurrent state of every layer (None for convolutional backbones).
  """
  per_position: jax.Array
  summary: jax.Array
  state: Any = None
