"""Errors meant for the person running an experiment: one clear sentence, no traceback."""


class ConfigError(ValueError):
  """A config that cannot run: unknown name or field, impossible value, incompatible pair."""


class DatasetNotFoundError(RuntimeError):
  """A dataset that is not prepared on this machine; the message says how to prepare it."""
