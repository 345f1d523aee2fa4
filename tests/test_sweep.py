"""Seeds and learning rates as one program (`comparenets.sweep`): each member equals the single
run of its seed and learning rate, under every strategy, with NaN in one member halting only it,
and a resumed sweep ends where an uninterrupted one does."""

import json
import os
import shutil
import signal

import jax
import ml_collections
import numpy as np
import pytest

from comparenets import sweep as sweeps
from comparenets.analysis import invariance
from comparenets import train
from comparenets import workdir as workdirs
from comparenets.errors import ConfigError, NonFiniteError
from comparenets.metric_writers import read_metrics

import faults


def _config(model='lstm', parallel='none', steps=6, seeds=2, learning_rates=(), seed=0,
            form='auto', **train_kw):
  config = ml_collections.ConfigDict()
  config.seed = seed
  config.model = ({'name': 'lstm', 'hidden': 16} if model == 'lstm' else
                  {'name': 'cnn', 'widths': (8, 16)})
  config.task = dict(name='digits')
  config.head = dict(hidden=(16,))
  config.train = dict(steps=steps, batch_size=32, eval_batch_size=64, learning_rate=1e-2,
                      parallel=parallel, log_every=2, eval_every=4, checkpoint_every=2,
                      warmup_steps=1, grad_clip=1.0)
  config.train.update(train_kw)
  config.sweep = dict(seeds=seeds, learning_rates=tuple(learning_rates), form=form)
  return ml_collections.ConfigDict(config.to_dict(), type_safe=False)


def _single(member: sweeps.Member, root):
  """The single run a member claims to equal, trained on its own."""
  workdir = os.path.join(root, 'single', member.subdir)
  return train.train_and_evaluate(member.config, workdir), faults.final_params(workdir)[1]


def _member_params(workdir, i):
  return sweeps.member_tree(faults.final_params(workdir)[1], i)


def _close(a, b, tol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


def test_members_their_directories_and_configs():
  config = _config(seeds=2, learning_rates=(3e-3, 1e-2), seed=5)
  members = sweeps.members(config)
  assert [m.subdir for m in members] == ['lr0.003/seed5', 'lr0.003/seed6', 'lr0.01/seed5',
                                         'lr0.01/seed6']
  assert [(m.config.seed, m.config.train.learning_rate) for m in members] == [
      (5, 3e-3), (6, 3e-3), (5, 1e-2), (6, 1e-2)]
  assert not sweeps.is_sweep(members[0].config)  # a member's config is a single run
  assert [m.subdir for m in sweeps.members(_config(seeds=3))] == ['seed0', 'seed1', 'seed2']
  assert not sweeps.is_sweep(_config(seeds=1))


@pytest.mark.parametrize('sweep,message', [
    (dict(seeds=0), 'sweep field seeds must be at least 1, not 0'),
    (dict(seeds=2.5), 'sweep field seeds must be an integer'),
    (dict(learning_rates=(1e-3, -1e-3)),
     r'sweep.learning_rates\[1\] must be a positive, finite number, not -0.001'),
    (dict(learning_rates=('fast',)), r"sweep.learning_rates\[0\] must be a number, not 'fast'"),
    (dict(learning_rates=(float('inf'),)), 'must be a positive, finite number, not inf'),
    (dict(learning_rates=(1e-3, 1e-3)), 'names a learning rate twice'),
    (dict(form='pmap'), "sweep field form must be one of 'auto', 'vmap', 'map'"),
    (dict(members=3), "the sweep section has no field 'members'"),
])
def test_a_bad_sweep_is_one_config_error_before_anything_is_written(tmp_path, sweep, message):
  config = _config()
  config.sweep = sweep
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_members_that_do_not_fit_are_one_error_before_anything_is_written(tmp_path,
                                                                         monkeypatch):
  from comparenets import parallel as parallels  # pylint: disable=import-outside-toplevel
  from comparenets import runtime  # pylint: disable=import-outside-toplevel
  needs, real = {}, parallels.Parallel.memory_need
  def recorded(self, state, *args):
    needs[len(jax.tree.leaves(state.params)[0])] = need = real(self, state, *args)
    return need
  monkeypatch.setattr(parallels.Parallel, 'memory_need', recorded)
  monkeypatch.setattr(runtime, 'device_memory_limit', lambda: (2**16, 'a 64 KiB test device'))
  for seeds in (2, 4):
    config = _config(seeds=seeds)
    config.sweep.form = 'vmap'
    with pytest.raises(ConfigError, match=(
        rf"the sweep's {seeds} members \(vmap\) need [0-9.]+ MiB per device for one train "
        r'step, more than the 0.1 MiB of a 64 KiB test device: train fewer members per run')):
      train.train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()
  # XLA's account of the program holds at least the stacked parameters and Adam's two moments,
  # and grows with the members
  setup = train.build_setup(_config(seeds=1))
  samplers, _, init_rng, _ = sweeps.run_inputs(setup, 0)
  state = train.create_state(setup, init_rng, samplers[0].batch(0, 0, 1))
  one = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params))
  assert needs[2] >= 2 * 3 * one and needs[4] > needs[2] + 2 * 3 * one


# two learning rates x two seeds, in turn on one device: the sweep most tests read
SWEEP = dict(seeds=2, learning_rates=(3e-3, 1e-2), form='map')


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('reference') / 'sweep')
  return workdir, train.train_and_evaluate(_config(**SWEEP), workdir)


def _results(workdir, member):
  return json.loads(open(os.path.join(workdir, member.subdir, 'results.json')).read())


def test_each_member_equals_its_single_run(tmp_path, reference):
  """Member lr0.01/seed1 (another seed and another rate than member 0) trained on its own:
  the same metrics, the same learning rates logged, the same final parameters."""
  workdir, out = reference
  assert out['form'] == 'map'
  # the CPU's choices (sweep.auto_form): the LSTM batched, the GRU and the RNN in turn
  assert [sweeps.auto_form(m, 'cpu') for m in ('lstm', 'gru', 'rnn')] == ['vmap', 'map', 'map']
  members = sweeps.members(_config(**SWEEP))
  i = 3
  single, params = _single(members[i], str(tmp_path))
  result = _results(workdir, members[i])
  for split in ('validation', 'test'):
    for k, v in single[split].items():
      assert abs(result[split][k] - v) <= 1e-4, (split, k)
  _close(_member_params(workdir, i), params)
  # the member's own directory restores like its single run: a final checkpoint of its own
  member_dir = os.path.join(workdir, members[i].subdir)
  _, restored = invariance.restore(member_dir)
  _close(jax.device_get(restored.params), params)
  assert faults.checkpoint_steps(member_dir) == [6]
  rates = lambda root: [r['learning_rate'] for r in read_metrics(
      os.path.join(root, members[i].subdir)) if r['split'] == 'train']
  assert rates(workdir) == pytest.approx(rates(os.path.join(str(tmp_path), 'single')))
  # the members differ where their seeds or rates do
  assert len({_results(workdir, m)['validation']['loss'] for m in members}) == 4
  summary = json.loads(open(os.path.join(workdir, 'sweep.json')).read())
  assert [m['workdir'] for m in summary['members']] == [m.subdir for m in members]
  assert all(m['finished'] for m in summary['members'])


def test_batched_members_equal_their_single_runs(tmp_path):
  """form='vmap' (the members batched, the accelerators' choice): member 1 equals the single
  run of seed 1."""
  config = _config('cnn', seeds=2, steps=4)
  config.sweep.form = 'vmap'
  workdir = str(tmp_path / 'sweep')
  out = train.train_and_evaluate(config, workdir)
  assert out['form'] == 'vmap'
  member = sweeps.members(config)[1]
  single, params = _single(member, str(tmp_path))
  assert out['members'][1]['test'] == pytest.approx(single['test'], abs=1e-4)
  _close(_member_params(workdir, 1), params)


def test_separate_members_are_their_single_runs_and_nan_halts_one(tmp_path):
  """form='separate' (the CPU's choice for convolutions): each member is a single run in its
  directory; a NaN in one stops that member only; a finished member is not trained again."""
  config = _config('cnn', seeds=1, learning_rates=(1e-2, 1e30), steps=4)
  assert sweeps.auto_form('cnn', 'cpu') == 'separate' and sweeps.auto_form('cnn', 'gpu') == 'vmap'
  workdir = tmp_path / 'sweep'
  out = train.train_and_evaluate(config, str(workdir))
  assert out['form'] == 'separate' and out['members'][1] is None
  summary = json.loads((workdir / 'sweep.json').read_text())['members']
  assert summary[0]['finished'] and 1 <= summary[1]['halted_at_step'] <= 4
  assert faults.checkpoint_steps(str(workdir / 'lr0.01' / 'seed0')) == [2, 4]
  single = train.train_and_evaluate(sweeps.members(config)[0].config, str(tmp_path / 'single'))
  assert out['members'][0]['test'] == single['test']
  # run again: the finished member is read back, the halted one stays halted, none retrains
  again = train.train_and_evaluate(config, str(workdir))
  assert again['members'][0]['test'] == single['test'] and again['members'][1] is None
  assert json.loads((workdir / 'sweep.json').read_text())['members'] == summary


@pytest.mark.parametrize('parallel', ['jit', 'pmap'])
def test_a_sweep_over_eight_devices_equals_one_device(tmp_path, reference, parallel):
  workdir, none = reference
  spread = train.train_and_evaluate(_config(parallel=parallel, **SWEEP), str(tmp_path / 'p'))
  for i, (a, b) in enumerate(zip(none['members'], spread['members'])):
    assert b['devices'] == 8 and b['parallel'] == parallel
    assert a['test'] == pytest.approx(b['test'], abs=1e-4)
    _close(_member_params(workdir, i), _member_params(str(tmp_path / 'p'), i), tol=2e-4)


def test_nan_in_one_member_halts_only_that_member(tmp_path, reference):
  config = _config(seeds=1, learning_rates=(1e-2, 1e30))
  workdir = tmp_path / 'sweep'
  out = train.train_and_evaluate(config, str(workdir))
  good, bad = out['members']
  assert bad is None and good is not None
  summary = json.loads((workdir / 'sweep.json').read_text())['members']
  assert summary[0]['finished'] and summary[1]['workdir'] == 'lr1e+30/seed0'
  assert 1 <= summary[1]['halted_at_step'] <= 6
  assert not (workdir / 'lr1e+30' / 'seed0' / 'results.json').exists()
  assert (workdir / 'lr0.01' / 'seed0' / 'results.json').exists()
  # the halted member's state is the one before the NaN step: finite
  step, stacked = faults.final_params(str(workdir))
  assert step == 6
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(sweeps.member_tree(stacked, 1)))
  # the other member trained as it did beside other members: lr0.01/seed0 of the reference
  assert good['test'] == pytest.approx(reference[1]['members'][2]['test'], abs=1e-4)


def test_nan_in_every_member_stops_the_sweep(tmp_path):
  config = _config(seeds=2, learning_rates=(1e30,), steps=4)
  with pytest.raises(NonFiniteError, match='in every member of the sweep'):
    train.train_and_evaluate(config, str(tmp_path / 'sweep'))


def test_skip_mode_counts_each_members_skipped_updates(tmp_path):
  config = _config(seeds=1, learning_rates=(1e-2, 1e30), steps=4, on_nonfinite='skip')
  out = train.train_and_evaluate(config, str(tmp_path / 'sweep'))
  assert out['members'][0]['skipped_updates'] == 0
  assert out['members'][1]['skipped_updates'] >= 1


def test_resumed_sweep_ends_with_the_parameters_of_an_uninterrupted_one(tmp_path, reference):
  workdir, _ = reference
  c_dir = tmp_path / 'c'
  shutil.copytree(workdir, c_dir)
  # interrupted after the checkpoint of step 2: later checkpoints and the results gone
  for step in os.listdir(c_dir / 'checkpoints'):
    if step != '2':
      shutil.rmtree(c_dir / 'checkpoints' / step)
  os.remove(c_dir / 'sweep.json')
  config = _config(**SWEEP)
  for member in sweeps.members(config):
    os.remove(c_dir / member.subdir / 'results.json')
  c = train.train_and_evaluate(config, str(c_dir))
  assert all(m['resumed_from'] == 2 for m in c['members'])
  jax.tree.map(np.testing.assert_array_equal, faults.final_params(workdir)[1],
               faults.final_params(str(c_dir))[1])


def test_a_changed_sweep_is_refused_in_the_same_workdir(reference):
  # the stacked checkpoint has the members' shape: another sweep cannot resume it
  with pytest.raises(ConfigError, match='holds a run with a different sweep section'):
    workdirs.prepare_workdir(reference[0], _config(seeds=3, learning_rates=(3e-3, 1e-2)))
  workdirs.prepare_workdir(reference[0], _config(**SWEEP))  # the same sweep: accepted
  # nor can a single run reuse a sweep's workdir
  with pytest.raises(ConfigError, match='holds a run with a different sweep section'):
    workdirs.prepare_workdir(reference[0], _config(seeds=1))


def test_sigterm_mid_sweep_checkpoints_and_the_rerun_matches(tmp_path):
  """The command line: SIGTERM checkpoints the stacked state and exits 0; the same command
  resumes and ends with the parameters of an uninterrupted sweep."""
  overrides = ['--config.train.steps=60', '--config.train.checkpoint_every=10',
               '--config.train.log_every=10', '--config.train.eval_every=0',
               '--config.model.hidden=16', '--config.sweep.seeds=2',
               '--config.train.parallel=none']
  command = lambda w: faults.command('experiments/digits.py:model=lstm,quick', w, overrides)
  reference = str(tmp_path / 'reference')
  assert faults.run(command(reference), devices=1, timeout=300).returncode == 0
  workdir = str(tmp_path / 'run')
  code, err = faults.start_and_signal(command(workdir), workdir, signal.SIGTERM, after_steps=10,
                                      devices=1)
  assert code == 0, err[-2000:]
  assert 'stopped by SIGTERM' in err and not os.path.exists(os.path.join(workdir, 'sweep.json'))
  rerun = faults.run(command(workdir), devices=1, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert 'resuming from the checkpoint at step' in rerun.stderr
  jax.tree.map(np.testing.assert_array_equal, faults.final_params(reference)[1],
               faults.final_params(workdir)[1])
