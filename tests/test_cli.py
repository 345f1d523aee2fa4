"""The command line, end to end in subprocesses: every family, bad configs, kill -9 and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

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


def test_kill_9_midway_then_rerun_equals_an_uninterrupted_run(tmp_path):
  overrides = ['--config.train.steps=1500', '--config.train.checkpoint_every=100',
               '--config.train.log_every=100', '--config.train.eval_every=0']
  arg = 'model=rnn'
  reference = _run(arg, tmp_path / 'reference', *overrides)
  assert reference.returncode == 0, reference.stderr[-3000:]

  workdir = tmp_path / 'killed'
  proc = subprocess.Popen(_cmd(arg, workdir, *overrides), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline and not _finished_steps(workdir) and proc.poll() is None:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = _finished_steps(workdir)
  assert killed_at and killed_at[-1] < 1500, f'not killed midway: {killed_at}'
  assert not (workdir / 'results.json').exists()

  resumed = _run(arg, workdir, *overrides)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'resuming from the checkpoint at step' in resumed.stderr
  got = json.loads((workdir / 'results.json').read_text())
  want = json.loads((tmp_path / 'reference' / 'results.json').read_text())
  assert got['resumed_from'] >= killed_at[-1] > 0
  assert got['test'] == want['test']
  assert got['validation'] == want['validation']
