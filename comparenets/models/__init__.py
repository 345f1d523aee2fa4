"""Backbones by name: ``cnn``, ``tcn``, ``rnn``, ``lstm``, ``gru``, and for video ``cnn3d``,
``cnn_rnn``, ``cnn_lstm``, ``cnn_gru``.

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

# name -> (module class, fields fixed by the name)
REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    'cnn': (ConvStack, {}),
    'tcn': (TCN, {}),
    'rnn': (Recurrent, {'cell': 'rnn'}),
    'lstm': (Recurrent, {'cell': 'lstm'}),
    'gru': (Recurrent, {'cell': 'gru'}),
    'cnn3d': (ConvStack3D, {}),
    'cnn_rnn': (CNNRecurrent, {'cell': 'rnn'}),
    'cnn_lstm': (CNNRecurrent, {'cell': 'lstm'}),
    'cnn_gru': (CNNRecurrent, {'cell': 'gru'}),
}

_MODULE_FIELDS = {'parent', 'name'}


def names() -> list[str]:
  return sorted(REGISTRY)


def _entry(name: str):
  if name not in REGISTRY:
    raise ConfigError(f'unknown model {name!r}; choose one of {", ".join(names())}')
  return REGISTRY[name]


def fields(name: str) -> dict[str, Any]:
  """The configurable fields of a model and their defaults."""
  cls, fixed = _entry(name)
  return {f.name: f.default for f in dataclasses.fields(cls)
          if f.name not in _MODULE_FIELDS and f.name not in fixed}


def input_kind(name: str) -> str:
  """'image', 'sequence' or 'video': what the backbone reads."""
  return _entry(name)[0].input_kind


def build(name: str, **kwargs) -> nn.Module:
  """Builds a backbone by name; unknown fields are a `ConfigError` that lists the valid ones."""
  cls, fixed = _entry(name)
  valid = fields(name)
  check_fields(f'model {name!r}', kwargs, valid)
  kwargs = check_values(f'model {name!r}', kwargs, valid, getattr(cls, 'config_rules', {}))
  return cls(**fixed, **kwargs)


__all__ = ['REGISTRY', 'Features', 'ConvStack', 'TCN', 'Recurrent', 'ConvStack3D',
           'CNNRecurrent', 'ClassificationHead',
           'PerPositionHead', 'TaskModel', 'build', 'names', 'fields', 'input_kind']
