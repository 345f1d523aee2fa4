"""Tasks by name. A task is one dataclass file here plus one experiment file."""

from __future__ import annotations

import dataclasses
from typing import Any

from comparenets.config_utils import check_fields, check_values
from comparenets.errors import ConfigError
from comparenets.tasks.base import Task, make_apply, make_predict
from comparenets.tasks.char_lm import CharLM
from comparenets.tasks.detection import DigitDetection
from comparenets.tasks.digits import DigitsClassification
from comparenets.tasks.edges import EdgeDetection
from comparenets.tasks.forecasting import Forecasting
from comparenets.tasks.memory import AddingProblem, CopyMemory
from comparenets.tasks.moving_digits import MovingDigits
from comparenets.tasks.sentiment import Sentiment
from comparenets.tasks.song import Song
from comparenets.tasks.super_resolution import SuperResolution
from comparenets.tasks.tfds_images import TFDSImageClassification

REGISTRY: dict[str, type[Task]] = {
    'adding': AddingProblem,
    'char_lm': CharLM,
    'copy_memory': CopyMemory,
    'detection': DigitDetection,
    'digits': DigitsClassification,
    'edges': EdgeDetection,
    'sentiment': Sentiment,
    'song': Song,
    'forecasting': Forecasting,
    'moving_digits': MovingDigits,
    'super_resolution': SuperResolution,
    'tfds_images': TFDSImageClassification,
}


def names() -> list[str]:
  return sorted(REGISTRY)


def fields(name: str) -> dict[str, Any]:
  if name not in REGISTRY:
    raise ConfigError(f'unknown task {name!r}; choose one of {", ".join(names())}')
  return {f.name: f.default for f in dataclasses.fields(REGISTRY[name])}


def build(name: str, **kwargs: Any) -> Task:
  """Builds a task by name; unknown fields are a `ConfigError` that lists the valid ones."""
  valid = fields(name)
  check_fields(f'task {name!r}', kwargs, valid)
  cls = REGISTRY[name]
  kwargs = check_values(f'task {name!r}', kwargs, valid, cls.config_rules)
  return cls(**kwargs)


__all__ = ['Task', 'REGISTRY', 'build', 'names', 'fields', 'make_apply', 'make_predict']
