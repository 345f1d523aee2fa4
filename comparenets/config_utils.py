"""Config fields checked against what they configure (types, ranges, choices), and the train
section's fields with their defaults. A leaf module: the model and task registries use it to check
their fields; experiment files build their configs with `comparenets.experiment`."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from comparenets.errors import ConfigError

# The train section's fields and their defaults (comparenets.train checks configs against it).
TRAIN_DEFAULTS = {
    'steps': 1000,               # optimizer updates in the whole run
    'batch_size': 64,            # global batch, split over all devices
    'eval_batch_size': 256,      # global; padded batches count every example once
    'optimizer': 'adamw',        # 'adamw', 'adam', 'sgd' (with momentum 0.9)
    'learning_rate': 1e-3,
    'schedule': 'cosine',        # 'cosine' (warmup then cosine decay) or 'constant'
    'warmup_steps': 0,
    'weight_decay': 0.0,
    'grad_clip': 0.0,            # clip by global norm; 0 turns it off
    'parallel': 'jit',           # 'none', 'pmap' or 'jit' (see comparenets.train)
    'log_every': 100,
    'eval_every': 500,           # validation every N steps (0: only at the end)
    'checkpoint_every': 500,     # 0: only the final checkpoint
    'keep_checkpoints': 3,
    'async_checkpoints': True,
    'on_nonfinite': 'stop',      # NaN/Inf loss or gradient: 'stop' the run, or 'skip' the update
    'compute_dtype': 'float32',  # 'bfloat16': activations and matmuls in bf16, params/loss f32
    # Steps run by one compiled call (lax.scan over as many batches): for accelerators, where a
    # short step waits on the host; on XLA:CPU it sped an LSTM step up 1.3x and slowed a CNN
    # step down 7x (BUILD_NOTES.md, Performance). 0: by backend, 1 on a CPU, 25 on an
    # accelerator (`comparenets.runtime.default_steps_per_dispatch`).
    'steps_per_dispatch': 0,
}


def check_fields(what: str, given: Mapping[str, Any], valid: Mapping[str, Any]) -> None:
  """Raises a `ConfigError` naming the unknown fields of ``given`` and the valid ones."""
  unknown = sorted(set(given) - set(valid))
  if unknown:
    raise ConfigError(f'{what} has no field {", ".join(map(repr, unknown))}; '
                      f'its fields are {", ".join(sorted(valid)) or "(none)"}')


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def check_values(what: str, given: Mapping[str, Any], defaults: Mapping[str, Any],
                 rules: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
  """Checks each given value against the type of its default and the field's rules.

  The type comes from the default: bool, int, float (ints accepted), str, or a tuple of ints
  (lists accepted). ``rules[field]`` may give ``min`` (inclusive), ``max`` (exclusive),
  ``at_most`` (inclusive, for a range such as a fraction that may be all of it) and ``choices``. Without a rule an int or a tuple element must be positive, a float finite and
  not negative. Returns the values with lists turned into tuples; raises `ConfigError`.
  """
  rules = rules or {}
  out = {}
  for name, value in given.items():
    default = defaults[name]
    rule = rules.get(name, {})
    field = f'{what} field {name}'
    if isinstance(default, bool):
      if not isinstance(value, bool):
        raise ConfigError(f'{field} must be true or false, not {value!r}')
    elif _is_int(default):
      if not _is_int(value):
        raise ConfigError(f'{field} must be an integer, not {value!r}')
      _check_range(field, value, rule, default_min=1)
    elif isinstance(default, float):
      if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
        raise ConfigError(f'{field} must be a finite number, not {value!r}')
      value = float(value)
      _check_range(field, value, rule, default_min=0.0)
    elif isinstance(default, str):
      if not isinstance(value, str):
        raise ConfigError(f'{field} must be a string, not {value!r}')
    elif isinstance(default, (tuple, list)):
      if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
        raise ConfigError(f'{field} must be a list of integers, not {value!r}')
      value = tuple(value)
      for v in value:
        _check_range(field, v, rule, default_min=1)
    choices: Sequence[Any] | None = rule.get('choices')
    if choices is not None and value not in choices:
      raise ConfigError(f'{field} must be one of {", ".join(map(repr, choices))}, '
                        f'not {value!r}')
    out[name] = value
  return out


def _check_range(field: str, value, rule, default_min):
  low = rule.get('min', default_min)
  high = rule.get('max')
  if low is not None and value < low:
    raise ConfigError(f'{field} must be at least {low}, not {value!r}')
  if high is not None and value >= high:
    raise ConfigError(f'{field} must be below {high}, not {value!r}')
  most = rule.get('at_most')
  if most is not None and value > most:
    raise ConfigError(f'{field} must be at most {most}, not {value!r}')
