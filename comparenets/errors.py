"""Errors meant for the person running an experiment: one clear sentence, no traceback.

The command line prints ``comparenets: error: <message>`` and exits with ``exit_code``.
"""


class UserError(Exception):
  """Base class: something the person can fix; the message says what to do."""
  exit_code = 2


class ConfigError(UserError, ValueError):
  """A config that cannot run: unknown name or field, wrong type, impossible value,
  incompatible model/task pair, unusable workdir."""


class DatasetNotFoundError(UserError, RuntimeError):
  """A dataset that is not prepared on this machine; the message says how to prepare it."""


class DataCopyError(UserError, OSError):
  """A dataset in a bucket could not be copied to this host's data cache; the message names
  the cache and the cause."""


class CheckpointError(UserError, RuntimeError):
  """No checkpoint in the workdir can be restored into this run's state."""


class WorkdirFullError(UserError, OSError):
  """The workdir ran out of space; the checkpoints written before are intact."""


class NonFiniteError(UserError, FloatingPointError):
  """The loss or the gradients became NaN or Inf (at ``step``, where one is named); the last
  good checkpoint is intact."""
  exit_code = 3

  def __init__(self, message: str, step: int | None = None):
    super().__init__(message)
    self.step = step
