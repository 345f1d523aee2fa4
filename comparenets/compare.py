"""The comparison: run a suite of (model, task) experiments, then write the report.

    python -m comparenets.compare --suite=quick --workdir=runs/quick

A suite is ``experiments/suites/<name>.py`` (or any path) whose ``get_suite()`` returns
``(run name, experiment file, experiment argument, {dotted field: value})`` entries (a field
without a dot is a top-level one, e.g. ``{'seed': 1}``; `with_seeds` repeats entries over seeds
as ``<run name>/seed<N>``, and the report averages them). Each run lands in
``<workdir>/<run name>`` (a sweep's members below it, `comparenets.sweep`); a run that
already has results.json (a sweep: sweep.json) is skipped and an
interrupted one resumes from its checkpoint, so an interrupted suite resumes too. The report is
``<workdir>/REPORT.md`` with its plots beside it.

    python -m comparenets.compare --suite=full --workdir=W --shard=I/N

runs shard I (0-based) of N only: the entries whose place in the suite is I modulo N, so the N
shards together run every entry exactly once, and neighbours (one entry's seeds) go to different
shards. Shards share the workdir (a shared filesystem or a bucket: every entry's run directory
is its own) and write no report, which the other shards' runs are not in yet; once all have
finished, the same command without ``--shard`` finds every run finished and writes the report.
SLURM job arrays (``scripts/launch_slurm.sh --suite``) run the shards; nothing here schedules.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging

from comparenets import console
from comparenets import experiment
from comparenets import runtime
from comparenets import workdir as workdirs
from comparenets.analysis import report
from comparenets.errors import ConfigError, UserError
from comparenets.stopping import StopRequest
from comparenets.train import train_and_evaluate


def _define_flags() -> None:
  """The command line's flags, defined when it runs (not on import: a notebook that imports
  this module next to comparenets.main would see a duplicate --workdir)."""
  flags.DEFINE_string('suite', 'quick', 'Suite name (experiments/suites/NAME.py) or path, '
                      'with an argument after a colon where the suite takes one '
                      '(paper:steps=20).')
  flags.DEFINE_string('workdir', None, 'Directory for the runs and the report.')
  flags.DEFINE_string('shard', None, 'I/N: run only shard I (0-based) of N of the suite\'s '
                      'entries, and write no report (see the module docstring).')


def load_suite(suite: str) -> list[tuple[str, str, str, dict[str, Any]]]:
  """The entries of ``suite``: a name under experiments/suites/ or a path, optionally with an
  argument for its ``get_suite(arg)`` after a colon (``paper:steps=20``), as experiment files
  take theirs."""
  suite, colon, arg = suite.partition(':')
  path = suite if suite.endswith('.py') else os.path.join(experiment.EXPERIMENTS, 'suites',
                                                          f'{suite}.py')
  get_suite = experiment.load_module(path, f'suite_{os.path.basename(path)[:-3]}').get_suite
  if not colon:
    return list(get_suite())
  if not inspect.signature(get_suite).parameters:
    raise ConfigError(f'suite {suite!r} takes no argument (given {arg!r})')
  return list(get_suite(arg))


def with_seeds(entries, seeds: Sequence[int]) -> list[tuple[str, str, str, dict[str, Any]]]:
  """Each entry once per seed: run name ``<name>/seed<N>`` with the override ``seed=N``."""
  return [(f'{name}/seed{seed}', experiment_file, arg, {**overrides, 'seed': seed})
          for name, experiment_file, arg, overrides in entries for seed in seeds]


def parse_shard(text: str) -> tuple[int, int]:
  """``'I/N'`` -> ``(I, N)``, with 0 <= I < N; a `ConfigError` saying why otherwise."""
  index, _, count = text.partition('/')
  try:
    index, count = int(index), int(count)
  except ValueError:
    index = count = -1
  if count < 1 or not 0 <= index < count:
    raise ConfigError(f'--shard={text} must be I/N with 0 <= I < N, e.g. --shard=0/4')
  return index, count


def shard_entries(entries: list, index: int, count: int) -> list:
  """Shard ``index`` of ``count``: the entries whose place is ``index`` modulo ``count``."""
  return entries[index::count]


def run_suite(suite: str, workdir: str, shard: tuple[int, int] = (0, 1)) -> list[str]:
  """Runs every unfinished entry of ``suite`` (of its ``shard``, ``(index, count)``); returns
  the names of the runs it trained."""
  entries = shard_entries(load_suite(suite), *shard)
  with StopRequest():  # a signal between two runs stops the next one before it trains
    return _run_entries(entries, workdir)


def _run_entries(entries, workdir) -> list[str]:
  trained = []
  bar = console.progress(entries, unit='run')
  for i, (name, experiment_file, arg, overrides) in enumerate(bar):
    run_dir = str(workdirs.join(workdir, name))  # a local path or gs://...
    # a run's results.json, or a sweep's sweep.json (its members' runs are below it)
    if any(workdirs.join(run_dir, f).exists() for f in ('results.json', 'sweep.json')):
      logging.info('[%d/%d] %s: finished before, skipped', i + 1, len(entries), name)
      continue
    logging.info('[%d/%d] %s: %s:%s %s', i + 1, len(entries), name, experiment_file, arg,
                 overrides)
    bar.set_postfix_str(name)
    start = time.monotonic()
    result = train_and_evaluate(experiment.load_config(experiment_file, arg, overrides), run_dir)
    if result.get('preempted'):
      logging.warning('stopped by %s; run the same command to resume the suite', result['signal'])
      return trained
    logging.info('[%d/%d] %s: %s', i + 1, len(entries), name,
                 console.finished(result, time.monotonic() - start, run_dir))
    trained.append(name)
  return trained


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  console.setup_logging(logging.INFO)  # before JAX starts: its start-up lines stay out
  runtime.configure_cpu()
  runtime.enable_compilation_cache()
  suite, workdir, shard = flags.FLAGS.suite, flags.FLAGS.workdir, flags.FLAGS.shard
  if not workdir:
    print('comparenets.compare: error: --workdir is required', file=sys.stderr)
    sys.exit(2)
  try:
    workdirs.require_bucket_support(workdir, '--workdir')
    shard = parse_shard(shard) if shard else (0, 1)
    run_suite(suite, workdir, shard)
    if shard[1] > 1:
      print(f'shard {shard[0]}/{shard[1]} of {suite} done; once every shard is, the report: '
            f'python -m comparenets.compare --suite={suite} --workdir={workdir}')
      return
    path = report.write_report(workdir)
  except UserError as e:
    print(f'comparenets: error: {e}', file=sys.stderr)
    sys.exit(e.exit_code)
  print(f'report: {path}')


def run():
  """Console-script entry point."""
  console.run(main, _define_flags)


if __name__ == '__main__':
  run()
