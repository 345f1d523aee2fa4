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

    python -m comparenets.compare --suite=full --workdir=W --shard=I/N --report_when_all_done

lets the shards write the report themselves, where no job runs after them (each worker of a
Cloud TPU slice, ``scripts/launch_tpu.sh --suite``; one process per device on one machine,
``scripts/run_suite_per_device.sh``): a shard whose entries all finished writes the marker
``W/.shards/I-of-N.json`` (whole: a temporary file of its own renamed, or one upload on a
bucket), then looks for all N markers; the shard that finds them, and every entry of the suite
finished, writes the report. Shards finishing together may both find them: both then write the
same files (each file renamed whole over the other's; the timings a report measures are cached
by the first writer, `workdir.write_text_once`), so REPORT.md is never torn. A shard stopped
early (SIGTERM) writes no marker; run it again.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
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
  flags.DEFINE_bool('report_when_all_done', False, 'With --shard: once this shard\'s entries '
                    'finished, mark it done (W/.shards/I-of-N.json); the shard that finds all N '
                    'marked writes the report.')


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


def is_finished(workdir: str, name: str) -> bool:
  """Whether the run ``name`` of a suite in ``workdir`` finished: its results.json, or a
  sweep's sweep.json (its members' runs are below it)."""
  return any(workdirs.join(workdir, name, f).exists() for f in ('results.json', 'sweep.json'))


def unfinished(entries, workdir: str) -> list[str]:
  """The names of ``entries`` whose runs have not finished in ``workdir``."""
  return [entry[0] for entry in entries if not is_finished(workdir, entry[0])]


SHARDS_DIR = '.shards'  # hidden: the report's search for runs does not look inside


def shard_marker(workdir: str, index: int, count: int):
  """Where shard ``index`` of ``count`` says it is done: ``workdir/.shards/I-of-N.json``."""
  return workdirs.join(workdir, SHARDS_DIR, f'{index}-of-{count}.json')


def finish_shard(suite: str, workdir: str, shard: tuple[int, int]) -> str | None:
  """After shard ``(index, count)`` of ``suite`` ran: marks it done if its entries all finished,
  then writes the report if every shard is marked and every entry of the suite finished.
  Returns the report's path, or None (this shard unfinished, or others still running)."""
  index, count = shard
  entries = load_suite(suite)
  mine = shard_entries(entries, index, count)
  left = unfinished(mine, workdir)
  if left:
    logging.warning('shard %d/%d: %d run(s) not finished (%s): no marker written; run the '
                    'same command to finish them', index, count, len(left), ', '.join(left))
    return None
  marker = shard_marker(workdir, index, count)
  marker.parent.mkdir(parents=True, exist_ok=True)
  workdirs.write_text(marker, json.dumps({
      'suite': suite, 'shard': index, 'shards': count, 'runs': [e[0] for e in mine],
      'host': socket.gethostname(), 'pid': os.getpid(), 'finished_at': time.time()}, indent=2))
  waiting = [i for i in range(count) if not shard_marker(workdir, i, count).exists()]
  if waiting:
    logging.info('shard %d/%d marked done; waiting for shard(s) %s, the last of which writes '
                 'the report', index, count, ', '.join(map(str, waiting)))
    return None
  left = unfinished(entries, workdir)  # a marker of an earlier attempt, a run deleted since
  if left:
    logging.warning('every shard is marked done, but %d run(s) are not finished (%s): no '
                    'report; run their shards again', len(left), ', '.join(left))
    return None
  return report.write_report(workdir)


def _run_entries(entries, workdir) -> list[str]:
  trained = []
  bar = console.progress(entries, unit='run')
  for i, (name, experiment_file, arg, overrides) in enumerate(bar):
    run_dir = str(workdirs.join(workdir, name))  # a local path or gs://...
    if is_finished(workdir, name):
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
  when_all_done = flags.FLAGS.report_when_all_done
  if not workdir:
    print('comparenets.compare: error: --workdir is required', file=sys.stderr)
    sys.exit(2)
  try:
    if when_all_done and not shard:
      raise ConfigError('--report_when_all_done needs --shard=I/N (without --shard the command '
                        'writes the report anyway)')
    workdirs.require_bucket_support(workdir, '--workdir')
    shard = parse_shard(shard) if shard else (0, 1)
    run_suite(suite, workdir, shard)
    if when_all_done:
      path = finish_shard(suite, workdir, shard)
      if path is None:
        print(f'shard {shard[0]}/{shard[1]} of {suite}: no report from this shard (the log '
              'above says why: its runs not all finished, or shards still running)')
        return
    elif shard[1] > 1:
      print(f'shard {shard[0]}/{shard[1]} of {suite} done; once every shard is, the report: '
            f'python -m comparenets.compare --suite={suite} --workdir={workdir}')
      return
    else:
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
