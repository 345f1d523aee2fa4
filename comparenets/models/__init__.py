"""Backbones by name: ``cnn``, ``tcn``, ``rnn``, ``lstm``, ``gru``, and for video ``cnn3d``,
``cnn_rnn``, ``cnn_lstm``, ``cnn_gru``; each of a family (`family`: 'conv', 'recurrent' or
'conv+recurrent') that the claims audit, the report and the structure measurements read.

Backbones know nothing about tasks: they map an input (images ``[B, H, W, C]``, sequences
``[B, T, F]`` or videos ``[B, T, H, W, C]``, as their ``input_kind`` says) to `Features`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn

from comparenets.config_utils import check_fields, check_values
from comparenets.errors import ConfigError
from comparenets.models.base import Features
from comparenets.models.conv import TCN, ConvStack
from comparenets.models.heads import ClassificationHead, PerPositionHead, TaskModel
from comparenets.models.recurrent import Recurrent
from comparenets.models.video import CNNRecurrent, ConvStack3D

FAMILIES = ('conv', 'recurrent', 'conv+recurrent')


@dataclasses.dataclass(frozen=True)
class Entry:
  """One backbone of the registry.

  ``family`` is what the claims audit compares: 'conv' (convolutions only), 'recurrent' (a
  recurrent layer only) or 'conv+recurrent' (a CNN encoder per frame feeding a recurrent
  layer: both at once, so the audit counts it as neither).
  """
  cls: type[nn.Module]
  fixed: dict[str, Any]  # fields fixed by the name
  family: str


# In display order: the order of the report's tables, plots and claims' evidence. A new
# backbone is one line here; the audit, the report and the structure measurements read it.
REGISTRY: dict[str, Entry] = {
    'cnn': Entry(ConvStack, {}, 'conv'),
    'cnn3d': Entry(ConvStack3D, {}, 'conv'),
    'tcn': Entry(TCN, {}, 'conv'),
    'rnn': Entry(Recurrent, {'cell': 'rnn'}, 'recurrent'),
    'lstm': Entry(Recurrent, {'cell': 'lstm'}, 'recurrent'),
    'gru': Entry(Recurrent, {'cell': 'gru'}, 'recurrent'),
    'cnn_rnn': Entry(CNNRecurrent, {'cell': 'rnn'}, 'conv+recurrent'),
    'cnn_lstm': Entry(CNNRecurrent, {'cell': 'lstm'}, 'conv+recurrent'),
    'cnn_gru': Entry(CNNRecurrent, {'cell': 'gru'}, 'conv+recurrent'),
}

_MODULE_FIELDS = {'parent', 'name'}


def _check_family(family: str | None) -> None:
  if family is not None and family not in FAMILIES:
    raise ConfigError(f'unknown model family {family!r}; choose one of {", ".join(FAMILIES)}')


def ordered(family: str | None = None) -> list[str]:
  """The model names in display order (the registry's); with ``family``, only that family's."""
  _check_family(family)
  return [n for n, e in REGISTRY.items() if family is None or e.family == family]


def names(family: str | None = None) -> list[str]:
  """The model names, alphabetical (as error messages list them); with ``family``, only that
  family's. `ordered` gives them in display order."""
  return sorted(ordered(family))


def rank(name: str) -> int:
  """``name``'s place in the display order; names outside the registry come after them all."""
  order = ordered()
  return order.index(name) if name in order else len(order)


def _entry(name: str) -> Entry:
  if name not in REGISTRY:
    raise ConfigError(f'unknown model {name!r}; choose one of {", ".join(names())}')
  return REGISTRY[name]


def family(name: str) -> str:
  """'conv', 'recurrent' or 'conv+recurrent' (see `Entry`)."""
  return _entry(name).family


def fields(name: str) -> dict[str, Any]:
  """The configurable fields of a model and their defaults."""
  entry = _entry(name)
  return {f.name: f.default for f in dataclasses.fields(entry.cls)
          if f.name not in _MODULE_FIELDS and f.name not in entry.fixed}


def input_kind(name: str) -> str:
  """'image', 'sequence' or 'video': what the backbone reads."""
  return _entry(name).cls.input_kind


def build(name: str, **kwargs) -> nn.Module:
  """Builds a backbone by name; unknown fields are a `ConfigError` that lists the valid ones."""
  entry = _entry(name)
  valid = fields(name)
  check_fields(f'model {name!r}', kwargs, valid)
  kwargs = check_values(f'model {name!r}', kwargs, valid, getattr(entry.cls, 'config_rules', {}))
  return entry.cls(**entry.fixed, **kwargs)


__all__ = ['REGISTRY', 'FAMILIES', 'Entry', 'Features', 'ConvStack', 'TCN', 'Recurrent',
           'ConvStack3D', 'CNNRecurrent', 'ClassificationHead', 'PerPositionHead', 'TaskModel',
           'build', 'names', 'ordered', 'rank', 'family', 'fields', 'input_kind']
