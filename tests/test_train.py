"""The train loop: data-parallel steps agree with one device, checkpoints round-trip, runs
are reproducible and resume exactly."""

import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from comparenets import parallel as parallels
from comparenets import runtime
from comparenets import train
from comparenets import window as window_lib
from comparenets.checkpointing import Checkpointer
from comparenets.data import pipeline
from comparenets.errors import CheckpointError, ConfigError, NonFiniteError
from comparenets.metric_writers import read_metrics

MODELS = {
    'cnn': dict(name='cnn', widths=(8, 16)),
    'lstm': dict(name='lstm', hidden=16),
    'tcn': dict(name='tcn', channels=8, levels=2),
}


def _config(model='lstm', parallel='none', steps=4, **train_kw):
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = dict(MODELS[model] if model in MODELS else {'name': model})
  config.task = dict(name='digits')
  config.head = dict(hidden=(16,))
  config.train = dict(steps=steps, batch_size=32, eval_batch_size=64, learning_rate=1e-2,
                      parallel=parallel, log_every=2, eval_every=0, checkpoint_every=2,
                      warmup_steps=1)
  config.train.update(train_kw)
  return ml_collections.ConfigDict(config.to_dict(), type_safe=False)


def _run_steps(config, steps=3, raw=False):
  setup = train.build_setup(config)
  splits = setup.task.splits()
  sampler = pipeline.EpochSampler(splits['train'], config.train.batch_size, seed=0)
  state = train.create_state(setup, jax.random.PRNGKey(0), sampler.batch(0))
  parallel = train.make_parallel(setup)
  state = parallel.place(state)
  history = []
  for step in range(steps):
    state, metrics = parallel.train_step(state, parallel.shard(sampler.batch(step)),
                                         jax.random.PRNGKey(1))
    history.append(parallel.host_metrics(metrics))
  if raw:
    return state
  evals = train.evaluate(parallel, state, setup.task, splits['validation'], 64)
  return parallel.host_state(state), history, evals


def test_eight_simulated_devices_are_present():
  assert jax.device_count() == 8


@pytest.mark.parametrize('model', sorted(MODELS))
def test_pmap_and_jit_sharded_steps_equal_the_single_device_step(model):
  single, hist1, eval1 = _run_steps(_config(model, 'none'))
  for mode in ('pmap', 'jit'):
    state, hist, evals = _run_steps(_config(model, mode))
    assert int(state.step) == int(single.step) == 3
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                 state.params, single.params)
    for m, m1 in zip(hist, hist1):
      np.testing.assert_allclose(m['loss'], m1['loss'], rtol=1e-5)
      np.testing.assert_allclose(m['grad_norm'], m1['grad_norm'], rtol=1e-4)
    np.testing.assert_allclose(evals['accuracy'], eval1['accuracy'])
    np.testing.assert_allclose(evals['loss'], eval1['loss'], rtol=1e-5)


def test_batch_norm_statistics_are_kept_and_synced_across_devices():
  means = {}
  for mode in ('none', 'jit', 'pmap'):
    config = _config('cnn', mode)
    config.model.norm = 'batch'
    state = _run_steps(config, steps=1, raw=True)
    stats = jax.device_get(state.model_state['batch_stats']['backbone']['norm0_0'])
    if mode == 'pmap':  # every replica holds the same (pmean-synced) statistics
      for replica in stats['mean'][1:]:
        np.testing.assert_array_equal(replica, stats['mean'][0])
      stats = jax.tree.map(lambda x: x[0], stats)
    means[mode] = stats['mean']
  assert np.abs(means['none']).sum() > 0  # the running average moved away from 0
  # after one step the first layer's batch mean is the same however the batch is split
  np.testing.assert_allclose(means['jit'], means['none'], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(means['pmap'], means['none'], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('saved_mode,restored_mode', [('pmap', 'jit'), ('jit', 'none'),
                                                      ('none', 'pmap')])
def test_checkpoint_round_trips_across_device_layouts(tmp_path, saved_mode, restored_mode):
  setup = train.build_setup(_config('lstm', saved_mode))
  batch = pipeline.EpochSampler(setup.task.splits()['train'], 32, 0).batch(0)
  fresh = train.create_state(setup, jax.random.PRNGKey(0), batch)
  parallel = train.make_parallel(setup)
  state = parallel.place(fresh)
  state, _ = parallel.train_step(state, parallel.shard(batch), jax.random.PRNGKey(1))
  ckpt = Checkpointer(str(tmp_path / 'ckpt'), every=1)
  ckpt.save(1, parallel.savable(state))
  ckpt.close()
  expected = parallel.host_state(state)

  other_setup = train.build_setup(_config('lstm', restored_mode))
  other = train.make_parallel(other_setup)
  target = train.create_state(other_setup, jax.random.PRNGKey(7), batch)  # other values
  reader = Checkpointer(str(tmp_path / 'ckpt'), every=1)
  assert reader.latest_step() == 1
  restored = other.place(reader.restore(1, other.checkpoint_target(target)))
  got = other.host_state(restored)
  assert int(got.step) == 1
  jax.tree.map(np.testing.assert_array_equal, got.params, expected.params)
  jax.tree.map(np.testing.assert_array_equal, got.opt_state, expected.opt_state)
  # and training continues from it in the new layout
  other.train_step(restored, other.shard(batch), jax.random.PRNGKey(1))


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(_config('lstm', steps=2), workdir)
  setup = train.build_setup(_config('cnn'))
  batch = pipeline.EpochSampler(setup.task.splits()['train'], 32, 0).batch(0)
  target = train.create_state(setup, jax.random.PRNGKey(0), batch)
  with pytest.raises(CheckpointError, match='the checkpoint at step 2 in .* cannot be '
                     'restored into this run'):
    Checkpointer(os.path.join(workdir, 'checkpoints'), every=1).restore(2, target)


@pytest.mark.parametrize('model', ['cnn', 'lstm', 'tcn', 'gru'])
def test_initialisation_compiled_at_o1_gives_the_default_compilations_parameters(model,
                                                                                 monkeypatch):
  """`train.create_state` compiles the initialisation with `runtime.ONCE_CPU_COMPILER_OPTIONS`
  (LLVM -O1, for compile time): bitwise the parameters of XLA's default compilation; and the options
  do reach the compiler (an unknown one fails)."""
  setup = train.build_setup(_config(model))
  batch = setup.task.train_sampler(4, 0).batch(0)
  rng = jax.random.PRNGKey(3)
  got = train.create_state(setup, rng, batch).params
  one = {k: v[:1] for k, v in batch.items()}
  want = jax.jit(train._init_fn(setup))(rng, one).params  # pylint: disable=protected-access
  assert jax.tree.structure(got) == jax.tree.structure(want)
  jax.tree.map(np.testing.assert_array_equal, got, want)
  # traced (a nested jit takes no compiler options): the shapes, as `invariance` reads them
  shapes = jax.eval_shape(lambda r: train.create_state(setup, r, batch), rng).params
  assert jax.tree.map(lambda x: x.shape, shapes) == jax.tree.map(lambda x: x.shape, got)
  monkeypatch.setattr(runtime, 'ONCE_CPU_COMPILER_OPTIONS', {'xla_no_such_option': 1})
  with pytest.raises(Exception, match='xla_no_such_option'):
    train.create_state(setup, rng, batch)


def test_same_seed_same_results_and_resume_equals_uninterrupted(tmp_path):
  a = train.train_and_evaluate(_config('lstm', steps=6), str(tmp_path / 'a'))
  c_dir = tmp_path / 'c'
  b = train.train_and_evaluate(_config('lstm', steps=6), str(c_dir))
  assert a['test'] == b['test'] and a['validation'] == b['validation']

  # an interrupted run: keep only the checkpoint of step 2, as if killed after writing it
  for step in os.listdir(c_dir / 'checkpoints'):
    if step != '2':
      shutil.rmtree(c_dir / 'checkpoints' / step)
  os.remove(c_dir / 'results.json')
  c = train.train_and_evaluate(_config('lstm', steps=6), str(c_dir))
  assert c['resumed_from'] == 2
  assert c['test'] == a['test'] and c['validation'] == a['validation']


def test_workdir_outputs(tmp_path, monkeypatch):
  workdir = tmp_path / 'run'
  flushed_after = []  # the steps logged when the writer was flushed

  class Writer(train.MetricWriter):
    def flush(self):
      flushed_after.append(read_metrics(str(workdir))[-1]['step'])
      super().flush()

  monkeypatch.setattr(train, 'MetricWriter', Writer)
  results = train.train_and_evaluate(_config('cnn', steps=4), str(workdir))
  assert flushed_after[:2] == [2, 4]  # after each checkpoint (then the plots' own flush)
  on_disk = json.loads((workdir / 'results.json').read_text())
  assert on_disk['test'] == results['test'] and 0 <= results['test']['accuracy'] <= 1
  assert results['params']['total'] == results['params']['backbone'] + results['params']['head']
  config = json.loads((workdir / 'config.json').read_text())
  assert config['model']['name'] == 'cnn'
  records = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records if r['split'] == 'train'] == [2, 4]
  assert {r['split'] for r in records} == {'train', 'validation', 'test'}
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
  events = os.listdir(workdir / 'tensorboard')
  assert any(e.startswith('events.out.tfevents') for e in events)


def test_workdir_of_another_experiment_is_refused_untouched(tmp_path):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config('lstm', steps=2), str(workdir))
  before = sorted(p.name for p in workdir.rglob('*'))
  config_text = (workdir / 'config.json').read_text()
  with pytest.raises(ConfigError, match='holds a run with a different model section'):
    train.train_and_evaluate(_config('cnn', steps=2), str(workdir))
  assert sorted(p.name for p in workdir.rglob('*')) == before
  assert (workdir / 'config.json').read_text() == config_text


@pytest.mark.parametrize('change,message', [
    (lambda c: c.train.update(batch_size=30), 'train.batch_size=30 does not divide over the 8'),
    (lambda c: c.train.update(steps=-5), 'train field steps must be at least 1, not -5'),
    (lambda c: c.train.update(parallel='tpu'), "train field parallel must be one of 'none'"),
    (lambda c: c.train.update(optimizer='lion'), "train field optimizer must be one of 'adamw'"),
    (lambda c: c.model.update(hidden='big'), "model 'lstm' field hidden must be an integer"),
    (lambda c: c.model.update(hidden=0), "model 'lstm' field hidden must be at least 1, not 0"),
    (lambda c: c.model.update(dropout=1.5), "model 'lstm' field dropout must be below 1.0"),
    (lambda c: c.head.update(hidden=(16, -1)), 'head field hidden must be at least 1, not -1'),
    (lambda c: c.head.update(width=3), "the head of task 'digits' has no field 'width'"),
    (lambda c: c.train.update(learning_rate=float('nan')), 'learning_rate must be a finite'),
    (lambda c: c.model.update(hiden=8), "model 'lstm' has no field 'hiden'"),
    (lambda c: c.update(extra=1), "the config has no field 'extra'"),
    (lambda c: c.task.update(reading='image'), "model 'lstm' reads sequence input"),
])
def test_bad_configs_fail_before_anything_runs(tmp_path, change, message):
  config = _config('lstm', 'jit')
  change(config)
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def _while_bodies_with_collectives(hlo_text):
  import re
  comps = {}
  for block in re.split(r'\n(?=\S)', hlo_text):
    name = re.match(r'(?:ENTRY )?%?([\w.\-]+)', block)
    if name:
      comps[name.group(1)] = block
  bodies = re.findall(r'while\(.*?body=%?([\w.\-]+)', hlo_text)
  assert bodies, 'expected the recurrent scan to compile to a while loop'
  return [b for b in bodies if 'all-reduce' in comps.get(b, '')]


@pytest.mark.parametrize('mode', ['jit', 'pmap'])
def test_no_collective_inside_the_time_loop(mode):
  config = _config('cnn', mode)
  config.model.dropout = 0.3  # per-step and per-device dropout keys
  setup = train.build_setup(config)
  batch = pipeline.EpochSampler(setup.task.splits()['train'], 32, 0).batch(0)
  parallel = train.make_parallel(setup)
  state = parallel.place(train.create_state(setup, jax.random.PRNGKey(0), batch))
  hlo = parallel.train_step.lower(state, parallel.shard(batch),
                                  jax.random.PRNGKey(0)).compile().as_text()
  assert 'all-reduce' in hlo  # gradients are averaged once per step ...
  assert _while_bodies_with_collectives(hlo) == []  # ... never per time step


def test_split_metrics_are_computed_from_the_whole_split_at_every_evaluation(tmp_path, monkeypatch):
  """A task's `split_metrics` sees the predictions of every example of the split it evaluates,
  at each validation and at the end, and its values land in metrics.jsonl and results."""
  from comparenets.tasks.digits import DigitsClassification  # pylint: disable=g-import-not-at-top
  seen = []

  def split_metrics(self, predict, split):
    logits = predict(split)
    seen.append(len(logits))
    return {'whole_split_accuracy': float((logits.argmax(-1) == split['label']).mean())}

  monkeypatch.setattr(DigitsClassification, 'split_metrics', split_metrics)
  config = _config('cnn', parallel='jit', steps=4, eval_every=2, log_every=2)
  results = train.train_and_evaluate(config, str(tmp_path))
  splits = DigitsClassification().splits()
  sizes = [len(splits[s]['label']) for s in ('validation', 'validation', 'test')]
  assert seen == sizes  # validation at step 2, then validation and test at the end
  for split in ('validation', 'test'):  # the same number the summed accuracy gives
    assert results[split]['whole_split_accuracy'] == pytest.approx(results[split]['accuracy'])
  with open(tmp_path / 'metrics.jsonl') as f:
    validation = [r for r in map(json.loads, f) if r.get('split') == 'validation']
  assert all('whole_split_accuracy' in r for r in validation) and len(validation) == 2


def test_dispatches_end_on_every_log_eval_and_checkpoint_step():
  assert parallels.dispatches(0, 10, 4, (3, 0, 5)) == [(1, 3), (4, 5), (6, 6), (7, 9), (10, 10)]
  assert parallels.dispatches(0, 8, 1, (4,)) == [(s, s) for s in range(1, 9)]
  assert parallels.dispatches(4, 12, 8, (100,)) == [(5, 12)]  # resumed after step 4
  assert parallels.dispatches(6, 6, 4, (2,)) == []


def test_several_steps_per_dispatch_and_batches_put_ahead_equal_the_plain_loop(
    tmp_path, monkeypatch):
  """k steps scanned in one compiled call are the k single steps: same dropout draws, same
  logged losses, same final model; logging and checkpoints land on their exact steps (the
  sharded layouts of scanned steps: test_scanned_steps_equal_single_steps_...). The second run
  also takes the accelerator's input path: batches put on the devices ahead on a thread
  (`parallels.prefetch`), where a CPU hands host arrays to the step inline."""
  def run(k, name):
    config = _config('cnn', 'jit', steps=7, log_every=3, checkpoint_every=0,
                     steps_per_dispatch=k)
    config.model.dropout = 0.3  # the per-step dropout key must follow the step
    results = train.train_and_evaluate(config, str(tmp_path / name))
    with open(tmp_path / name / 'metrics.jsonl') as f:
      logged = [r for r in map(json.loads, f) if r['split'] == 'train']
    return results, logged, sorted(os.listdir(tmp_path / name / 'checkpoints'))

  assert parallels.host_is_device()
  one, one_log, one_ckpt = run(1, 'one')
  made, prefetch = [], parallels.prefetch
  monkeypatch.setattr(parallels, 'host_is_device', lambda: False)
  monkeypatch.setattr(parallels, 'prefetch', lambda produce, calls: prefetch(
      lambda call: made.append(call) or produce(call), calls))
  many, many_log, many_ckpt = run(4, 'many')
  assert made == [(1, 3), (4, 6), (7, 7)]  # calls end on the logging steps
  assert [r['step'] for r in many_log] == [r['step'] for r in one_log] == [3, 6, 7]
  assert many_ckpt == one_ckpt == ['7']
  for a, b in zip(many_log, one_log):
    np.testing.assert_allclose(a['loss'], b['loss'], rtol=1e-5)
    np.testing.assert_allclose(a['grad_norm'], b['grad_norm'], rtol=1e-4)
  for split in ('validation', 'test'):
    np.testing.assert_allclose(many[split]['loss'], one[split]['loss'], rtol=1e-5)


@pytest.mark.parametrize('mode', ['none', 'jit', 'pmap'])
def test_scanned_steps_equal_single_steps_under_each_parallel_mode(mode):
  """`train_steps` on k stacked batches (laid out by `shard_steps`) gives the state and
  per-step metrics of k calls of `train_step`, for each way of placing the batch."""
  config = _config('cnn', mode)
  config.model.dropout = 0.3  # per-step and per-device dropout keys
  setup = train.build_setup(config)
  sampler = pipeline.EpochSampler(setup.task.splits()['train'], 32, seed=0)
  parallel = train.make_parallel(setup)
  rng = jax.random.PRNGKey(1)
  # on the host: each placed copy is donated to the step it feeds
  start = jax.device_get(train.create_state(setup, jax.random.PRNGKey(0), sampler.batch(0)))
  state, losses = parallel.place(start), []
  for step in range(3):
    state, metrics = parallel.train_step(state, parallel.shard(sampler.batch(step)), rng)
    losses.append(float(parallel.host_metrics(metrics)['loss']))
  batches = [sampler.batch(step) for step in range(3)]
  stacked = parallel.shard_steps({k: np.stack([b[k] for b in batches]) for k in batches[0]})
  scanned, metrics = parallel.train_steps(parallel.place(start), stacked, rng)
  np.testing.assert_allclose(parallel.host_metrics(metrics)['loss'], losses, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               parallel.host_state(scanned).params, parallel.host_state(state).params)


def test_nonfinite_steps_are_named_exactly_inside_multi_step_calls():
  """The window of metrics mixes single steps (scalars) and scanned calls ([k]); a NaN step is
  named by its own step number and the summary averages over steps, not over calls."""
  class Host:
    host_metrics = staticmethod(jax.device_get)

  window = window_lib.Window(Host(), 'skip', first_step=10)
  window.add({'loss': np.float32(1.0), 'nonfinite': np.float32(0)})               # step 11
  window.add({'loss': np.array([2.0, 3.0, 4.0], np.float32),                      # steps 12-14
              'nonfinite': np.array([0, 1, 0], np.float32)})
  window.check_finite()
  assert window.skipped == [1]
  window.add({'loss': np.array([5.0, 6.0], np.float32), 'nonfinite': np.array([0, 1.0])})
  [summary] = window.summaries({'batch_size': 8}, elapsed=2.0)
  assert summary['loss'] == pytest.approx(3.5) and summary['steps_per_s'] == 3.0
  window.on_nonfinite = 'stop'
  with pytest.raises(NonFiniteError, match='became NaN or Inf at step 16;'):
    window.check_finite()


def test_a_sweeps_window_names_each_members_steps():
  """A sweep's metrics carry a trailing member axis ([members], [k, members]): each member's
  NaN step is its own, 'stop' halts that member only, and the whole sweep stops when every
  member is halted."""
  class Host:
    host_metrics = staticmethod(jax.device_get)

  window = window_lib.Window(Host(), 'stop', 10, ['lr0.1/seed0', 'lr1/seed0'])
  window.add({'loss': np.array([1.0, 2.0]), 'nonfinite': np.array([0.0, 0.0])})      # step 11
  window.add({'loss': np.array([[3.0, 4.0], [5.0, 6.0]]),                             # 12-13
              'nonfinite': np.array([[0.0, 0.0], [0.0, 1.0]])})
  window.check_finite()
  assert window.halted == {1: 13}
  first, second = window.summaries({'batch_size': 8}, elapsed=1.5)
  assert first['loss'] == pytest.approx(3.0) and second['loss'] == pytest.approx(4.0)
  # each member's share of the program: 3 steps of 2 members in 1.5 s
  assert first['steps_per_s'] == second['steps_per_s'] == 4.0
  assert first['program_steps_per_s'] == 2.0
  window.add({'loss': np.array([7.0, 8.0]), 'nonfinite': np.array([1.0, 1.0])})      # step 14
  with pytest.raises(NonFiniteError, match=r'in every member of the sweep \(at steps 14, 13\)'):
    window.check_finite()
