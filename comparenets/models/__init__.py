"""Backbones by name: ``cnn``, ``tcn``, ``rnn``, ``lstm``, ``gru``.

Backbones know nothing about tasks: they map an input (images ``[B, H, W, C]`` or sequences
``[B, T, F]``, as their ``input_kind`` says) to `Features`.
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

# name -> (module class, fields fixed by the name)
REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    'cnn': (ConvStack, {}),
    'tcn': (TCN, {}),
    'rnn': (Recurrent, {'cell': 'rnn'}),
    'lstm': (Recurrent, {'cell': 'lstm'}),
    'gru': (Recurrent, {'cell': 'gru'}),
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
  """'image' or 'sequence': what the backbone reads."""
  return _entry(name)[0].input_kind


def build(name: str, **kwargs) -> nn.Module:
  """Builds a backbone by name; unknown fields are a `ConfigError` that lists the valid ones."""
  cls, fixed = _entry(name)
  valid = fields(name)
  check_fields(f'model {name!r}', kwargs, valid)
  kwargs = check_values(f'model {name!r}', kwargs, valid, getattr(cls, 'config_rules', {}))
  return cls(**fixed, **kwargs)


__all__ = ['REGISTRY', 'Features', 'ConvStack', 'TCN', 'Recurrent', 'ClassificationHead',
           'PerPositionHead', 'TaskModel', 'build', 'names', 'fields', 'input_kind']
