"""The command line, end to end in subprocesses: every family, bad configs, kill -9 and resume."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import faults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cmd(arg, workdir, *overrides):
  return [sys.executable, '-m', 'comparenets.main', f'--config=experiments/digits.py:{arg}',
          f'--workdir={workdir}', *overrides]


def _run(arg, workdir, *overrides, timeout=300):
  return subprocess.run(_cmd(arg, workdir, *overrides), cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout)


# one image and one sequence family: every family's quick run is in test_experiments.py, in
# process; this is the command line around them
@pytest.mark.parametrize('model', ['cnn', 'lstm'])
def test_quick_run_of_every_input_kind(tmp_path, model):
  workdir = tmp_path / model
  proc = _run(f'model={model},quick', workdir, '--config.train.steps=20')
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((workdir / 'results.json').read_text())
  assert results['model'] == model and results['steps'] == 20
  assert results['input_kind'] == ('image' if model == 'cnn' else 'sequence')
  assert results['test']['accuracy'] > 0.2  # 20 steps already beat chance (0.1)
  assert json.loads((workdir / 'config.json').read_text())['train']['steps'] == 20
  assert (workdir / 'checkpoints' / '20').is_dir()


@pytest.mark.parametrize('arg,overrides,message', [
    ('model=transformer', [], "digits runs cnn, gru, lstm, rnn, tcn; model must be one of "
     "those, not 'transformer'"),
    ('model=lstm,quick', ['--config.model.kernel_size=3'],
     "--config.model.kernel_size names no field of the experiment's config"),
    ('model=cnn,reading=pixels', [], "model 'cnn' reads image input but task digits with "
     "reading='pixels' gives sequences"),
    ('model=lstm,colour', [], "unknown experiment argument 'colour'"),
    ('model=lstm', ['--config.train.steps=many'], '--config.train.steps=many'),
    ('model=gru', ['--config.train.batch_size=30'], 'does not divide over the 8 devices'),
])
def test_bad_config_exits_with_one_clear_message(tmp_path, arg, overrides, message):
  workdir = tmp_path / 'run'
  proc = _run(arg, workdir, *overrides, timeout=120)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if 'comparenets: error:' in l]
  assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  assert not workdir.exists()


def _finished_steps(workdir):
  ckpt = workdir / 'checkpoints'
  if not ckpt.is_dir():
    return []
  return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())


def test_kill_9_midway_then_rerun_equals_an_uninterrupted_run(tmp_path, drill_reference):
  # the digits RNN of test_reliability.py's drills (faults.DRILL_*): its programs are in the
  # tests' compilation cache and its uninterrupted run (conftest.py) is trained once a session
  overrides = faults.DRILL_OVERRIDES
  arg = 'model=rnn'
  assert faults.DRILL_CONFIG == f'experiments/digits.py:{arg}'

  workdir = tmp_path / 'killed'
  proc = subprocess.Popen(_cmd(arg, workdir, *overrides), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline and not _finished_steps(workdir) and proc.poll() is None:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = _finished_steps(workdir)
  assert killed_at and killed_at[-1] < faults.DRILL_STEPS, f'not killed midway: {killed_at}'
  assert not (workdir / 'results.json').exists()

  resumed = _run(arg, workdir, *overrides)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'resuming from the checkpoint at step' in resumed.stderr
  got = json.loads((workdir / 'results.json').read_text())
  want = json.loads(open(os.path.join(drill_reference, 'results.json')).read())
  assert got['resumed_from'] >= killed_at[-1] > 0
  assert got['test'] == want['test']
  assert got['validation'] == want['validation']


# each command line's --help lists its own flags: under python -m, and under a console script,
# whose program (sys.argv[0]) is pip's wrapper rather than the module that defines the flags
HELP = [
    ('comparenets.main', 'run', 'comparenets-train',
     ['--config', '--workdir', '--coordinator_address', '--num_processes', '--verbosity']),
    ('comparenets.compare', 'run', 'comparenets-compare', ['--suite', '--workdir', '--verbosity']),
    ('comparenets.analysis.structure', None, None, ['--models', '--lengths', '--batch']),
    ('comparenets.analysis.bench', None, None,
     ['--cases', '--repeats', '--min_time', '--tiny', '--out', '--recurrent_shapes',
      '--steps_per_dispatch']),
    ('comparenets.summary', 'run', None, ['python -m comparenets.summary DIR']),
]


def _flags_listed(text):
  return set(re.findall(r'^\s+(?:-\w,)?(--(?:\[no\])?\w+):', text, re.MULTILINE))


@pytest.mark.parametrize('module,entry,script,wanted', HELP, ids=[h[0] for h in HELP])
def test_help_lists_the_commands_own_flags(module, entry, script, wanted):
  runs = [[sys.executable, '-m', module, '--help']]
  if entry:  # what a console script does: import the entry point, run it under its own name
    program = script or module.rsplit('.', 1)[-1]
    runs.append([sys.executable, '-c', f'import sys; from {module} import {entry}; '
                 f'sys.argv = [{program!r}, "--help"]; {entry}()'])
  for argv in runs:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    listed = {f.replace('[no]', '') for f in _flags_listed(proc.stdout)}
    for want in wanted:
      assert (want in listed) if want.startswith('--') else (want in proc.stdout), \
          (argv, proc.stdout)
    if module.endswith(('structure', 'bench', 'summary')):
      assert '--config' not in listed and '--workdir' not in listed  # no other command's flags


def test_summary_still_takes_the_directory_as_its_argument(tmp_path):
  run = tmp_path / 'digits' / 'cnn'
  run.mkdir(parents=True)
  (run / 'results.json').write_text(json.dumps({
      'model': 'cnn', 'task': {'name': 'digits'}, 'input_kind': 'image', 'steps': 10,
      'params': {'total': 1234}, 'train_time_s': 1.0, 'target_metric': 'accuracy',
      'validation': {'accuracy': 0.5}, 'test': {'accuracy': 0.75}}))
  proc = subprocess.run([sys.executable, '-m', 'comparenets.summary', str(tmp_path)], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert '| digits/cnn | cnn | digits | image | 1,234 | 10 | 1.0 | accuracy | 0.5 | 0.75 |' \
      in proc.stdout
  bare = subprocess.run([sys.executable, '-m', 'comparenets.summary'], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert bare.returncode == 2 and 'usage: python -m comparenets.summary DIR' in bare.stderr
