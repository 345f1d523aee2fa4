"""Command line: ``python -m comparenets.main --config=experiments/digits.py:model=lstm --workdir=DIR``.

Any config field can be overridden, e.g. ``--config.train.steps=50``. The run resumes from the
newest checkpoint in DIR. A config that cannot run exits with status 2 and one line saying why;
a run whose loss or gradients became NaN/Inf exits with status 3. SIGTERM, SIGHUP (a dropped
ssh session) or SIGINT (Ctrl-C) finishes the current step, saves a checkpoint and exits with
status 0; a second Ctrl-C interrupts at once. The console shows our lines and everyone's
warnings (`comparenets.console`); ``--verbosity=0`` shows the libraries' INFO lines too.

A multi-process run trains in a child of the command line (`comparenets.watchdog`): when another
process is lost, this one ends within about ``--heartbeat_timeout_s`` with status 75 and one
line naming the lost process and the checkpoint that the same command, run on every host,
resumes from. The watching parent imports what the child imports (JAX among it) but starts no
JAX backend and never joins the cluster.
"""

from __future__ import annotations

import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from comparenets import console
from comparenets import distributed
from comparenets import runtime
from comparenets import watchdog
from comparenets import workdir as workdirs
from comparenets.train import train_and_evaluate
from comparenets.errors import ConfigError, UserError
from comparenets.stopping import StopRequest


def _define_flags() -> None:
  """The command line's flags, defined when it runs (not on import: a notebook that imports this
  module next to comparenets.compare would see a duplicate --workdir)."""
  config_flags.DEFINE_config_file(
      'config', None, 'Experiment file and argument, e.g. experiments/digits.py:model=lstm,quick.',
      lock_config=True)
  _define_run_flags(flags.FLAGS)
  flags.mark_flags_as_required(['config', 'workdir'])


def _define_run_flags(flag_values: flags.FlagValues) -> None:
  """The flags besides --config: also what the watching parent reads (`_watch`)."""
  flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics, results.',
                      flag_values=flag_values)
  flags.DEFINE_string(
      'coordinator_address', None, 'host:port of process 0, for a multi-process run started by '
      'hand (Cloud TPU and SLURM runs find it themselves).', flag_values=flag_values)
  flags.DEFINE_integer('num_processes', None, 'Processes in a multi-process run.',
                       flag_values=flag_values)
  flags.DEFINE_integer('process_id', None, 'This process in a multi-process run.',
                       flag_values=flag_values)
  flags.DEFINE_integer(
      'heartbeat_timeout_s', distributed.HEARTBEAT_TIMEOUT_S,
      'Multi-process runs: seconds without a heartbeat after which JAX declares a process lost; '
      'the others then end (status 75) within about this time, naming it and the checkpoint to '
      'resume from.', lower_bound=1, flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  opts = flags.FLAGS
  console.setup_logging(logging.INFO)  # before JAX's backend starts: its start-up lines stay out
  runtime.configure_cpu()
  runtime.enable_compilation_cache()
  distributed.initialize(opts.coordinator_address, opts.num_processes, opts.process_id,
                         opts.heartbeat_timeout_s)
  if jax.process_index() != 0:
    console.setup_logging(logging.WARNING)
  start = time.monotonic()
  try:
    try:
      config = opts.config
      config.get('model')  # config_flags reports a file it could not load on first access
    except OSError as e:
      raise ConfigError(f'cannot load the config file: {_explain(e, [])}') from None
    workdirs.require_bucket_support(opts.workdir, '--workdir')  # before anything compiles
    workdirs.require_bucket_support(config.task.get('data_dir'), '--config.task.data_dir')
    results = train_and_evaluate(config, opts.workdir)
  except UserError as e:
    print(f'comparenets: error: {e}', file=sys.stderr)
    sys.exit(e.exit_code)
  if results.get('preempted'):
    saved = ('the checkpoint is saved in' if results['saved'] else
             'training had not started, nothing changed in')
    print(f'comparenets: stopped by {results["signal"]} after step {results["step"]}; '
          f'{saved} {results["workdir"]}: run the same command to resume', file=sys.stderr)
    return
  logging.info('%s', console.finished(results, time.monotonic() - start, opts.workdir))


def _explain(error: BaseException, argv: list[str]) -> str:
  """One sentence for an error raised while parsing flags and loading the config file."""
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


def _watch(argv: list[str]) -> int | None:
  """A multi-process run's exit status, trained in a watched child (`comparenets.watchdog`);
  None where this process trains itself: one process, the child itself, or flags that do not
  parse (the ordinary parsing reports those)."""
  if watchdog.is_watched():
    watchdog.follow_parent()
    return None
  own = flags.FlagValues()
  _define_run_flags(own)
  try:
    own(argv, known_only=True)
  except flags.Error:
    return None
  if not distributed.is_multiprocess(own.num_processes):
    return None
  count = own.num_processes or distributed.detected_processes()
  index = own.process_id if own.process_id is not None else distributed.detected_process_id()
  return watchdog.watch(argv[1:], own.workdir, index, count if count > 1 else None,
                        own.heartbeat_timeout_s)


def run():
  """Console-script entry point."""
  with StopRequest():  # from here on, TERM/HUP/INT stop cleanly (see comparenets.stopping)
    if (code := _watch(list(sys.argv))) is not None:
      sys.exit(code)
    console.run(main, _define_flags, flags_parser=_parse_flags)


if __name__ == '__main__':
  run()
