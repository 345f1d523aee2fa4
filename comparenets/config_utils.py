"""Helpers for experiment files and for checking config fields against what they configure."""

from __future__ import annotations

from typing import Any, Mapping

import ml_collections

from comparenets.errors import ConfigError


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses an experiment argument such as ``"model=lstm,quick"`` (big_vision's convention).

  ``key=value`` sets a field, a bare ``key`` sets it to True. Values take the type of the
  default; a key without a default is a `ConfigError` that lists the valid keys.
  """
  result = dict(defaults)
  for token in filter(None, (t.strip() for t in (arg or '').split(','))):
    key, eq, value = token.partition('=')
    if key not in defaults:
      raise ConfigError(f'unknown experiment argument {key!r} in {arg!r}; '
                        f'valid arguments: {", ".join(sorted(defaults))}')
    default = defaults[key]
    if not eq:
      result[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ('true', 'false', '1', '0'):
        raise ConfigError(f'experiment argument {key}={value!r} must be true or false')
      result[key] = value.lower() in ('true', '1')
    elif isinstance(default, int):
      try:
        result[key] = int(value)
      except ValueError:
        raise ConfigError(f'experiment argument {key}={value!r} must be an integer') from None
    else:
      result[key] = value
  return ml_collections.ConfigDict(result)


def check_fields(what: str, given: Mapping[str, Any], valid: Mapping[str, Any]) -> None:
  """Raises a `ConfigError` naming the unknown fields of ``given`` and the valid ones."""
  unknown = sorted(set(given) - set(valid))
  if unknown:
    raise ConfigError(f'{what} has no field {", ".join(map(repr, unknown))}; '
                      f'its fields are {", ".join(sorted(valid)) or "(none)"}')
