"""The console of a run and of a suite: our lines (one per logged step, a run's start and end)
and everyone's warnings; Orbax's and JAX's INFO chatter only when --verbosity asks for it."""

import json
import logging
import os
import re
import subprocess
import sys

from comparenets import console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# absl's prefix: level letter, date, time, thread, file:line]
LINE = re.compile(r'^([IWEF])\d{4} [\d:.]+ +\d+ ([^:\]]+):\d+\] (.*)$')


def _env():
  """The test set-up's environment without JAX_PLATFORMS=cpu: JAX then looks for a TPU as it
  does for a user, and says so at INFO when there is none."""
  env = dict(os.environ)
  env.pop('JAX_PLATFORMS', None)
  return env


def _python(*args, timeout=300):
  return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout, env=_env(), check=False)


def _our_files():
  return {name for _, _, names in os.walk(console.PACKAGE_DIR) for name in names
          if name.endswith('.py')}


def _info_sources(stderr):
  return {m.group(2) for m in map(LINE.match, stderr.splitlines()) if m and m.group(1) == 'I'}


# The digits CNN's quick run at 20 steps here, as in test_cli.py's quick run: one set of programs,
# compiled once a session (the tests' compilation cache), serves the four command lines.
STEPS = '--config.train.steps=20'


def test_a_runs_console_is_its_own_lines(tmp_path):
  workdir = tmp_path / 'run'
  proc = _python('-m', 'comparenets.main', '--config=experiments/digits.py:model=cnn,quick',
                 f'--workdir={workdir}', STEPS)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stderr.splitlines()
  results = json.loads((workdir / 'results.json').read_text())
  log_every = json.loads((workdir / 'config.json').read_text())['train']['log_every']
  steps = [l for l in lines if re.search(r'\] step \d+/\d+: ', l)]
  assert len(steps) == results['steps'] // log_every, proc.stderr
  assert sum('cnn on digits: ' in l and 'parameters' in l for l in lines) == 1  # the start
  ends = [l for l in lines if '] finished in ' in l]
  assert len(ends) == 1 and f'test accuracy={results["test"]["accuracy"]:.4g}' in ends[0]
  assert str(workdir) in ends[0]
  assert not any('CheckpointManagerOptions' in l or 'Unable to initialize backend' in l
                 for l in lines), proc.stderr
  assert _info_sources(proc.stderr) <= _our_files(), proc.stderr
  assert proc.stdout == ''


def test_verbosity_brings_the_libraries_lines_back(tmp_path):
  proc = _python('-m', 'comparenets.main', '--config=experiments/digits.py:model=cnn,quick',
                 f'--workdir={tmp_path / "run"}', STEPS, '--verbosity=0')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'CheckpointManagerOptions' in proc.stderr
  assert _info_sources(proc.stderr) - _our_files()  # orbax's own files
  assert any('] step 20/20: ' in l for l in proc.stderr.splitlines())


def test_a_suites_console_keeps_orbax_out_and_draws_no_bar_without_a_terminal(tmp_path):
  suite = tmp_path / 'one.py'
  suite.write_text('def get_suite():\n'
                   "  return [('digits/cnn', 'digits.py', 'model=cnn,quick', "
                   "{'train.steps': 20})]\n")  # as STEPS
  workdir = tmp_path / 'suite'
  workdir.mkdir()
  (workdir / 'structure.jsonl').write_text('')  # no structure rows: the report in seconds
  proc = _python('-m', 'comparenets.compare', f'--suite={suite}', f'--workdir={workdir}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stderr.splitlines()
  assert sum('] [1/1] digits/cnn: digits.py:model=cnn,quick' in l for l in lines) == 1
  assert sum('] [1/1] digits/cnn: finished in ' in l for l in lines) == 1
  assert not any('CheckpointManagerOptions' in l or 'Unable to initialize backend' in l
                 for l in lines), proc.stderr
  assert _info_sources(proc.stderr) <= _our_files(), proc.stderr
  assert all(LINE.match(l) for l in lines if '|' in l or '%' in l), proc.stderr  # no tqdm bar
  assert proc.stdout.strip() == f'report: {workdir / "REPORT.md"}'


def _record(path, level):
  return logging.LogRecord('absl', level, path, 1, 'message', None, None)


def test_the_filter_keeps_our_lines_and_everyones_warnings():
  keep = console._OwnLinesAndWarnings().filter  # pylint: disable=protected-access
  ours = os.path.join(console.PACKAGE_DIR, 'train.py')
  orbax = '/venv/site-packages/orbax/checkpoint/checkpoint_manager.py'
  assert keep(_record(ours, logging.INFO)) and keep(_record(ours, logging.DEBUG))
  assert not keep(_record(orbax, logging.INFO))
  assert keep(_record(orbax, logging.WARNING)) and keep(_record(orbax, logging.ERROR))
  # a sibling directory whose name starts like the package's is not the package
  assert not keep(_record(console.PACKAGE_DIR + '_extras/x.py', logging.INFO))


def test_the_end_line_names_the_metric_time_and_place():
  results = {'target_metric': 'accuracy', 'train_time_s': 3.21,
             'validation': {'accuracy': 0.9, 'loss': 0.3}, 'test': {'accuracy': 0.875}}
  assert console.finished(results, 12.34, '/runs/x') == (
      'finished in 12.3 s (3.2 s training): validation accuracy=0.9, test accuracy=0.875; '
      'results in /runs/x')
