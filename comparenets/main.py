"""Command line: ``python -m comparenets.main --config=experiments/digits.py:model=lstm --workdir=DIR``.

Any config field can be overridden, e.g. ``--config.train.steps=50``. The run resumes from the
newest checkpoint in DIR. A config that cannot run exits with status 2 and one line saying why; a run whose loss or
gradients became NaN/Inf exits with status 3. SIGTERM or SIGINT (Ctrl-C) finishes the current
step, saves a checkpoint and exits with status 0; a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import logging as pylogging
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment file and argument, e.g. experiments/digits.py:model=lstm,quick.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics, results.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'host:port of process 0, for a multi-process run started by '
    'hand (Cloud TPU and SLURM runs find it themselves).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Processes in a multi-process run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process in a multi-process run.')
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietLibraries(pylogging.Filter):
  """Keeps orbax's per-save INFO chatter out of the run log; its warnings still show."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or '/orbax/' not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  from comparenets.errors import ConfigError, UserError  # pylint: disable=g-import-not-at-top
  from comparenets.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  from comparenets import distributed, runtime  # pylint: disable=g-import-not-at-top
  runtime.configure_cpu()
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  import jax  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO if jax.process_index() == 0 else logging.WARNING)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  try:
    try:
      config = _CONFIG.value
      config.get('model')  # config_flags reports a file it could not load on first access
    except OSError as e:
      raise ConfigError(f'cannot load the config file: {_explain(e, [])}') from None
    results = train_and_evaluate(config, _WORKDIR.value)
  except UserError as e:
    print(f'comparenets: error: {e}', file=sys.stderr)
    sys.exit(e.exit_code)
  if results.get('preempted'):
    saved = ('the checkpoint is saved in' if results['saved'] else
             'training had not started, nothing changed in')
    print(f'comparenets: stopped by {results["signal"]} after step {results["step"]}; '
          f'{saved} {results["workdir"]}: run the same command to resume', file=sys.stderr)


def _explain(error: BaseException, argv: list[str]) -> str:
  """One sentence for an error raised while parsing flags and loading the config file."""
  from comparenets.errors import ConfigError  # pylint: disable=g-import-not-at-top
  seen = error
  while seen is not None and not isinstance(seen, ConfigError):
    seen = seen.__cause__ or seen.__context__
  text = str(seen if seen is not None else error)
  if 'ConfigError: ' in text:  # config_flags re-raises with the traceback as the message
    return text.split('ConfigError: ', 1)[1].splitlines()[0]
  if seen is not None:
    return text
  if isinstance(error, (AttributeError, KeyError)):
    key = text.strip('"\'')
    for arg in argv:
      name = arg.lstrip('-').split('=', 1)[0]
      if name.startswith('config.') and name.rsplit('.', 1)[-1] == key:
        return (f'{arg.split("=", 1)[0]} names no field of the experiment\'s config '
                f'(no {name[len("config."):]!r}); the config file lists the fields there are')
  return text.strip().splitlines()[-1].strip() if text.strip() else type(error).__name__


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    print(f'comparenets: error: {_explain(e, argv)}', file=sys.stderr)
    sys.exit(2)


def run():
  """Console-script entry point."""
  from comparenets.stopping import StopRequest  # pylint: disable=g-import-not-at-top
  with StopRequest():  # from here on, SIGTERM/SIGINT stop cleanly (see comparenets.stopping)
    app.run(main, flags_parser=_parse_flags)


if __name__ == '__main__':
  run()
