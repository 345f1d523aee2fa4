"""Faults that must never cost a run: SIGTERM, kill -9 (also mid-checkpoint), corrupt or foreign
checkpoints, other device counts, NaN/Inf, bad input."""

import json
import os
import random
import signal
import subprocess

import hypothesis
from hypothesis import strategies as st
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from comparenets import setup as setups
from comparenets import train
from comparenets.errors import CheckpointError, ConfigError, NonFiniteError, WorkdirFullError

import faults

STEPS = faults.DRILL_STEPS
OVERRIDES = list(faults.DRILL_OVERRIDES)


def _cmd(workdir):
  return faults.command(faults.DRILL_CONFIG, workdir, OVERRIDES)


def _run(workdir, devices=8):
  proc = faults.run(_cmd(workdir), devices=devices, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


_steps = faults.checkpoint_steps
_params = faults.final_params


def _start_and_signal(workdir, sig, devices=8, **when):
  return faults.start_and_signal(_cmd(workdir), workdir, sig, devices=devices, **when)


@pytest.fixture(scope='module')
def reference(drill_reference):
  """One uninterrupted 8-device run that the interrupted ones must reproduce (conftest.py:
  trained once a session, also for test_cli.py's kill -9)."""
  return drill_reference


def test_sigterm_checkpoints_the_current_step_exits_0_and_resumes(tmp_path, reference):
  workdir = str(tmp_path / 'run')
  code, err = _start_and_signal(workdir, signal.SIGTERM, after_steps=100)
  assert code == 0, err[-2000:]
  line = [l for l in err.splitlines() if l.startswith('comparenets: stopped by SIGTERM')]
  assert len(line) == 1, err[-2000:]
  stopped_at = int(line[0].split('after step ')[1].split(';')[0])
  assert 100 <= stopped_at < STEPS
  assert max(_steps(workdir)) == stopped_at  # the checkpoint is of exactly that step
  assert not os.path.exists(os.path.join(workdir, 'results.json'))

  resumed = _run(workdir)
  assert f'resuming from the checkpoint at step {stopped_at}' in resumed.stderr
  want, got = _params(reference), _params(workdir)
  assert got[0] == want[0] == STEPS
  jax.tree.map(np.testing.assert_array_equal, got[1], want[1])


def test_sighup_stops_like_sigterm(tmp_path):
  """A dropped ssh connection (SIGHUP) saves the current step and exits 0, as SIGTERM does."""
  workdir = str(tmp_path / 'run')
  # the drills' run (its programs compiled once a session), stopped after its first checkpoint
  code, err = _start_and_signal(workdir, signal.SIGHUP, after_steps=50)
  assert code == 0, err[-2000:]
  (line,) = [l for l in err.splitlines() if l.startswith('comparenets: stopped by SIGHUP')]
  assert max(_steps(workdir)) == int(line.split('after step ')[1].split(';')[0])


def test_repeated_kill_9_loses_nothing_but_the_steps_since_the_last_checkpoint(tmp_path,
                                                                               reference):
  workdir = str(tmp_path / 'run')
  rng = random.Random(0)
  kills = []
  # at the first checkpoint, then at random moments (start-up, restore, steps, async saves)
  plans = [dict(after_steps=50)] + [dict(after_seconds=rng.uniform(1.0, 6.0))
                                   for _ in range(3)]
  for plan in plans:
    before = _steps(workdir)
    code, _ = _start_and_signal(workdir, signal.SIGKILL, **plan)
    kills.append((code, before, _steps(workdir)))
    if os.path.exists(os.path.join(workdir, 'results.json')):
      break  # finished before the kill: nothing left to interrupt
  assert kills[0][0] == -signal.SIGKILL
  resumed = _run(workdir)
  results = json.loads(open(os.path.join(workdir, 'results.json')).read())
  assert results['resumed_from'] > 0
  want, got = _params(reference), _params(workdir)
  assert got[0] == want[0] == STEPS
  jax.tree.map(np.testing.assert_array_equal, got[1], want[1])
  reference_results = json.loads(open(os.path.join(reference, 'results.json')).read())
  assert results['test'] == reference_results['test']
  assert 'Traceback' not in resumed.stderr


# 8 -> 1 (a pod's checkpoint debugged on one device) through the command line and a signal;
# every other pair of layouts in process: test_train.py::test_checkpoint_round_trips_across_...
@pytest.mark.parametrize('first,second', [(8, 1)])
def test_checkpoint_from_one_device_count_resumes_on_another(tmp_path, first, second):
  straight = str(tmp_path / 'straight')
  _run(straight, devices=second)
  workdir = str(tmp_path / 'moved')
  code, err = _start_and_signal(workdir, signal.SIGTERM, after_steps=100, devices=first)
  assert code == 0, err[-2000:]
  resumed = _run(workdir, devices=second)
  assert 'resuming from the checkpoint at step' in resumed.stderr
  got, want = _params(workdir), _params(straight)
  # the mean over 8 shards and over one batch round differently: equal within float tolerance
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4),
               got[1], want[1])
  got_r = json.loads(open(os.path.join(workdir, 'results.json')).read())
  want_r = json.loads(open(os.path.join(straight, 'results.json')).read())
  assert abs(got_r['test']['accuracy'] - want_r['test']['accuracy']) <= 0.01


# --- in-process faults -----------------------------------------------------------------------

def _config(model='lstm', steps=30, **train_kw):
  config = ml_collections.ConfigDict(type_safe=False)
  config.seed = 0
  config.model = {'name': model, **({'hidden': 16} if model != 'cnn' else {'widths': (8,)})}
  config.task = {'name': 'digits'}
  config.head = {'hidden': (16,)}
  config.train = dict(steps=steps, batch_size=32, eval_batch_size=64, parallel='none',
                      log_every=5, eval_every=0, checkpoint_every=10, keep_checkpoints=3,
                      async_checkpoints=False)
  config.train.update(train_kw)
  return ml_collections.ConfigDict(config.to_dict(), type_safe=False)


_corrupt = faults.corrupt_checkpoint


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  straight = train.train_and_evaluate(_config(), str(tmp_path / 'straight'))
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config(), str(workdir))
  os.remove(workdir / 'results.json')
  _corrupt(workdir / 'checkpoints' / '30')
  with caplog.at_level('WARNING'):
    results = train.train_and_evaluate(_config(), str(workdir))
  assert results['resumed_from'] == 20
  assert results['test'] == straight['test']
  assert 'the checkpoint at step 30' in caplog.text and 'cannot be restored' in caplog.text
  assert (workdir / 'checkpoints' / 'unreadable-step-30').is_dir()  # kept, moved aside
  assert sorted(_steps(str(workdir))) == [10, 20, 30]  # 30 written again by the resumed run


def test_when_no_checkpoint_restores_nothing_is_moved_and_the_error_names_each_step(tmp_path):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config(), str(workdir))
  os.remove(workdir / 'results.json')
  for step in ('10', '20', '30'):
    _corrupt(workdir / 'checkpoints' / step)
  before = sorted(os.listdir(workdir / 'checkpoints'))
  with pytest.raises(CheckpointError, match=r'no checkpoint in .* can be restored into this run '
                     r'\(step 30: .*; step 20: .*; step 10: .*\)'):
    train.train_and_evaluate(_config(), str(workdir))
  assert sorted(os.listdir(workdir / 'checkpoints')) == before


def test_checkpoint_of_another_model_without_its_config_is_refused_intact(tmp_path):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config('lstm'), str(workdir))
  os.remove(workdir / 'config.json')  # as if copied without it
  before = sorted(os.listdir(workdir / 'checkpoints'))
  with pytest.raises(CheckpointError, match='step 30: .*If the config changed, use a fresh'):
    train.train_and_evaluate(_config('cnn'), str(workdir))
  assert sorted(os.listdir(workdir / 'checkpoints')) == before


def _max_abs_params(workdir, step):
  tree = ocp.StandardCheckpointer().restore(
      os.path.join(workdir, 'checkpoints', str(step), 'default'))
  return max(float(np.abs(x).max()) for x in jax.tree.leaves(tree['params']))


NAN_KW = dict(model='cnn', optimizer='sgd', schedule='constant', warmup_steps=0,
              grad_clip=0.0, learning_rate=1e20)


def test_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  kw = dict(NAN_KW)
  model = kw.pop('model')
  # 10 sane steps and a checkpoint, then a learning rate that overflows on the next steps
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config(model, steps=10, **{**kw, 'learning_rate': 0.01}),
                           str(workdir))
  os.remove(workdir / 'results.json')
  config = _config(model, steps=30, **kw)
  with pytest.raises(NonFiniteError, match=r'became NaN or Inf at step 1[1-9]; the run stopped '
                     r'without saving anything after it, and the last good checkpoint is '
                     r'step 10'):
    train.train_and_evaluate(config, str(workdir))
  assert _steps(str(workdir)) == [10]
  assert np.isfinite(_max_abs_params(str(workdir), 10))


def test_nan_skip_mode_skips_and_counts_the_updates(tmp_path):
  kw = dict(NAN_KW)
  model = kw.pop('model')
  results = train.train_and_evaluate(_config(model, steps=20, on_nonfinite='skip', **kw),
                                     str(tmp_path / 'run'))
  assert results['skipped_updates'] >= 15  # everything after the first, exploding, update
  assert np.isfinite(_max_abs_params(str(tmp_path / 'run'), 20))
  records = [json.loads(l) for l in open(tmp_path / 'run' / 'metrics.jsonl')]
  assert max(r.get('nonfinite', 0) for r in records if r['split'] == 'train') > 0


def test_input_too_small_for_the_model_is_refused_before_anything_is_written(tmp_path):
  config = _config('cnn')
  config.model.widths = (8, 8, 8, 8)  # pools 8x8 digits down to nothing
  with pytest.raises(ConfigError, match="model 'cnn' cannot read this task's input: cnn pools "
                     'by 2 in each of 4 blocks, which needs images of at least 16x16'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_head_that_does_not_fit_the_backbone_is_refused_before_anything_is_written(tmp_path):
  """The task's loss is traced with the model at start-up: super-resolution on a pooling CNN
  (its output no longer matches the image) fails there, not at the first step."""
  from comparenets.experiment import load_config  # pylint: disable=g-import-not-at-top
  config = load_config('super_resolution.py', 'quick', {'model.pool': 'max'})
  with pytest.raises(ConfigError, match='task super_resolution needs a backbone that keeps the '
                     'resolution'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


@pytest.fixture
def tiny_filesystem(tmp_path):
  """A 400 kB tmpfs (root can mount one here; elsewhere the test is skipped, saying why)."""
  mount = tmp_path / 'tiny'
  mount.mkdir()
  made = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=400k', 'tmpfs', str(mount)],
                        capture_output=True, text=True)
  if made.returncode:
    pytest.skip(f'cannot mount a small tmpfs here: {made.stderr.strip()}')
  yield mount
  # lazily: a writer thread of the run may still hold a file open there for a moment
  subprocess.run(['umount', '--lazy', str(mount)], check=False)


def test_full_workdir_is_refused_before_anything_is_written(tiny_filesystem):
  with pytest.raises(ConfigError, match=r'has 0\.4\d MB free, and two checkpoints of this run '
                     r'need about \d+\.\d+ MB'):
    config = _config('lstm', steps=2)
    config.model.hidden = 128  # its checkpoints (weights and Adam's moments) are about 1 MB
    train.train_and_evaluate(config, str(tiny_filesystem / 'run'))
  assert os.listdir(tiny_filesystem) == []


def test_workdir_filling_up_mid_run_names_the_last_complete_checkpoint(tiny_filesystem):
  config = _config('lstm', steps=40, checkpoint_every=1, keep_checkpoints=40)
  with pytest.raises(WorkdirFullError, match=r'ran out of space \(no space left on device\); the '
                     r'newest complete checkpoint is step \d+\. Free some space'):
    train.train_and_evaluate(config, str(tiny_filesystem / 'run'))
  assert json.loads((tiny_filesystem / 'run' / 'config.json').read_text())['model']['hidden'] == 16


def test_unusable_workdir_is_one_clear_error(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  with pytest.raises(ConfigError, match='cannot write to workdir .*file/run'):
    train.train_and_evaluate(_config(), str(blocker / 'run'))
  assert blocker.read_text() == 'not a directory'


# --- property-based: any config either builds or is one ConfigError ----------------------------

VALUES = st.one_of(st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                   st.booleans(), st.text(max_size=8), st.none(),
                   st.lists(st.integers(-2, 64), max_size=3))
FIELDS = {
    'model': ['hidden', 'layers', 'bidirectional', 'dropout', 'unroll', 'cell', 'widths',
              'kernel_size', 'bogus'],
    'task': ['reading', 'order', 'permutation_seed', 'split_seed', 'validation_fraction',
             'test_fraction', 'bogus'],
    'head': ['hidden', 'dropout', 'bogus'],
    'train': sorted(setups.TRAIN_FIELDS) + ['bogus'],
}


@hypothesis.settings(max_examples=80, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(model=st.sampled_from(['cnn', 'tcn', 'rnn', 'lstm', 'gru']),
                  changes=st.lists(st.tuples(st.sampled_from(sorted(FIELDS)), st.data()),
                                   max_size=3))
def test_any_config_builds_or_fails_with_one_config_error(model, changes):
  config = _config(model)
  config.model = {'name': model}
  for section, data in changes:
    field = data.draw(st.sampled_from(FIELDS[section]))
    value = data.draw(VALUES)
    getattr(config, section)[field] = value
  try:
    setup = train.build_setup(config)
    # initialising traces the model on the task's input shape (before any compilation)
    train.create_state(setup, jax.random.PRNGKey(0),
                       {'inputs': np.zeros((1, 8, 8, 1), np.float32),
                        'label': np.zeros((1,), np.int32)})
  except ConfigError as e:
    assert str(e) and '\n' not in str(e)
