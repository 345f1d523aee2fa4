"""What every command line shares: absl flags that its ``--help`` lists, and a quiet console.

Flags. Each command line defines its flags when it runs (`run`), not on import: absl flags are
process-wide, so a notebook that imports two entry modules (both have ``--workdir``) or defines
its own ``--batch`` would otherwise hit a duplicate flag. absl's ``--help`` lists the key flags of
the program, ``sys.argv[0]``. Under ``python -m`` that is the entry module itself, but a console
script's program is pip's wrapper (``.../bin/comparenets-train``), which defines no flags: its
``--help`` said only "Try --helpfull". `run` therefore declares the command's flags key to the
program whatever it is, and lends the wrapper the entry module's docstring as the usage text.

Console. A run's console is our own lines: one per logged step, one when a run starts and one
when it ends, and every warning and error whoever raised it. Other libraries' INFO lines stay
out (Orbax logs a ``CheckpointManagerOptions(...)`` dump per run and a dozen lines per save;
JAX logs "Unable to initialize backend 'tpu'" on every machine without one). absl's own
``--verbosity`` flag, when given, applies to every library as absl does, so ``--verbosity=0``
shows Orbax's lines again and ``--verbosity=-1`` leaves warnings only.
"""

from __future__ import annotations

import logging as pylogging
import os
import sys
from typing import Any, Callable, Iterable, Mapping, Sequence
import warnings

from absl import app
from absl import flags
from absl import logging

with warnings.catch_warnings():  # a notebook without ipywidgets: the text bar, no warning
  warnings.simplefilter('ignore')
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

_defined: set[Callable[[], None]] = set()


def run(main: Callable[[list[str]], Any], define_flags: Callable[[], None] | None = None,
        argv: Sequence[str] | None = None,
        flags_parser: Callable[[list[str]], Any] = app.parse_flags_with_usage,
        logs: bool = True) -> None:
  """Defines the command's flags (once per process), makes them the program's key flags (with
  absl's ``--verbosity`` where the command ``logs``: `setup_logging` gives it its meaning), and
  runs ``main`` under absl, which exits with main's return value."""
  if define_flags is not None and define_flags not in _defined:
    define_flags()
    _defined.add(define_flags)
  module = main.__module__  # '__main__' under python -m: absl files its flags under sys.argv[0]
  own = flags.FLAGS.get_flags_for_module(module)
  for flag in (own + [flags.FLAGS['verbosity']]) if logs else own:
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  program = sys.modules['__main__']
  if not getattr(program, '__doc__', None):  # pip's wrapper: absl would print "USAGE: [flags]"
    program.__doc__ = sys.modules[module].__doc__
  app.run(main, argv=None if argv is None else list(argv), flags_parser=flags_parser)


class _OwnLinesAndWarnings(pylogging.Filter):
  """Lets through a record from comparenets, or one at WARNING or above from anyone.

  Orbax logs through absl's logger like we do, so the logger's name cannot tell them apart; the
  source file can."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    return (record.levelno >= pylogging.WARNING or
            os.path.abspath(record.pathname).startswith(PACKAGE_DIR + os.sep))


def setup_logging(level: int = logging.INFO) -> None:
  """Our lines from ``level`` up (absl's ``logging.INFO`` or ``logging.WARNING``), other
  libraries' from WARNING up; a ``--verbosity`` the user gave sets every library's level
  instead. Call it after the flags are parsed; calling it again only changes the level."""
  if flags.FLAGS['verbosity'].present:
    return
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _OwnLinesAndWarnings) for f in handler.filters):
    handler.addFilter(_OwnLinesAndWarnings())
  logging.set_verbosity(level)


def finished(results: Mapping[str, Any], seconds: float, workdir: str) -> str:
  """The line that ends a run: wall time, the target metric, where the results are. For a
  sweep (``results['members']``), each finished member's test metric and the halted ones."""
  metric = results['target_metric']
  if 'members' in results:
    done = [r for r in results['members'] if r is not None]
    scores = ', '.join(f"{os.path.relpath(r['workdir'], results['workdir'])} "
                       f"{r['test'][metric]:.4g}" for r in done)
    halted = len(results['members']) - len(done)
    return (f'finished {len(done)} of {len(results["members"])} members in {seconds:.1f} s '
            f'({results["train_time_s"]:.1f} s training, '
            f'{"one after another" if results["form"] == "separate" else "one program"}): '
            f'test {metric}: '
            f'{scores}' + (f'; {halted} halted by NaN/Inf (sweep.json)' if halted else '') +
            f'; results in {workdir}')
  scores = ', '.join(f'{split} {metric}={results[split][metric]:.4g}'
                     for split in ('validation', 'test') if metric in results.get(split, {}))
  return (f'finished in {seconds:.1f} s ({results["train_time_s"]:.1f} s training): {scores}; '
          f'results in {workdir}')


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any):
  """tqdm's bar (a widget in a notebook) where a terminal or notebook shows it, none where the
  output goes to a file or a pipe (``disable=None``): the runs of a suite, the steps of a run.
  A multi-process run's training writes to its watching parent's pipe (`comparenets.watchdog`),
  which says in ``COMPARENETS_STDERR_TTY`` whether the bar reaches a terminal after all."""
  shown = os.environ.get('COMPARENETS_STDERR_TTY') == '1'
  return tqdm(iterable, disable=False if shown else None, **kwargs)
