"""Workdirs on a bucket: config.json, metrics.jsonl, results and TensorBoard events through
`etils.epath`, on an in-memory fsspec filesystem standing in for ``gs://`` (tests/fake_gcs.py,
no network).

Checkpoints are not covered here: Orbax writes ``gs://`` arrays through tensorstore's GCS
driver, which needs the real service.
"""

import errno
import importlib
import json
import os
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from comparenets import api
from comparenets import checkpointing
from comparenets import metric_writers
from comparenets import summary
from comparenets import workdir as workdirs
from comparenets.analysis import report
from comparenets.errors import ConfigError, NonFiniteError, WorkdirFullError
from fake_gcs import bucket  # pylint: disable=unused-import  (a fixture)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(seed=0):
  return ml_collections.ConfigDict({'seed': seed, 'model': {'name': 'lstm'},
                                    'task': {'name': 'digits'}, 'head': {}, 'train': {}})


def test_paths_keep_their_scheme():
  assert workdirs.resolve('gs://b/run') == 'gs://b/run'
  assert workdirs.resolve('run') == os.path.abspath('run')
  assert str(workdirs.join('gs://b/run', 'checkpoints')) == 'gs://b/run/checkpoints'
  assert workdirs.is_local('/tmp/x') and not workdirs.is_local('gs://b/x')


def test_config_is_saved_in_a_bucket_and_guards_it(bucket):
  assert workdirs.prepare_workdir(bucket, _config()) == bucket
  saved = json.loads(workdirs.join(bucket, 'config.json').read_text())
  assert saved['model'] == {'name': 'lstm'}
  assert workdirs.prepare_workdir(bucket, _config()) == bucket  # the same experiment resumes
  with pytest.raises(ConfigError, match=r'gs://bucket/runs/one holds a run with a different '
                     r'seed section'):
    workdirs.prepare_workdir(bucket, _config(seed=1))


def test_free_space_is_checked_locally_and_skipped_on_a_bucket(bucket, monkeypatch, tmp_path):
  monkeypatch.setattr(shutil, 'disk_usage', lambda path: shutil._ntuple_diskusage(1, 1, 0))  # pylint: disable=protected-access
  state = {'w': np.zeros(1000, np.float32)}
  workdirs.check_free_space(bucket, state)  # no error: a bucket has no free space to ask for
  with pytest.raises(ConfigError, match='has 0.00 MB free'):
    workdirs.check_free_space(str(tmp_path / 'local'), state)


def test_metrics_and_tensorboard_events_reach_the_bucket(bucket):
  writer = metric_writers.MetricWriter(bucket, enabled=True)
  writer.write(10, 'train', {'loss': 1.5})
  writer.write(10, 'validation', {'loss': 1.25, 'accuracy': 0.5})
  writer.close()
  records = metric_writers.read_metrics(bucket)
  assert [(r['step'], r['split'], r['loss']) for r in records] == [
      (10, 'train', 1.5), (10, 'validation', 1.25)]
  events = list(workdirs.join(bucket, 'tensorboard').iterdir())
  assert len(events) == 1 and 'tfevents' in events[0].name
  assert len(events[0].read_bytes()) > 100
  resumed = metric_writers.MetricWriter(bucket, enabled=True)  # a resumed run keeps the lines
  resumed.write(20, 'train', {'loss': 1.0})
  resumed.close()
  assert [r['step'] for r in metric_writers.read_metrics(bucket)] == [10, 10, 20]
  assert len(list(workdirs.join(bucket, 'tensorboard').iterdir())) == 2


def test_metrics_reach_the_bucket_at_most_every_sync_secs_and_at_each_flush(bucket):
  writer = metric_writers.MetricWriter(bucket, enabled=True, sync_secs=3600)
  steps = lambda: [r['step'] for r in metric_writers.read_metrics(bucket)]
  writer.write(10, 'train', {'loss': 1.5})  # the first line goes at once
  writer.write(20, 'train', {'loss': 1.25})
  writer.write(30, 'train', {'loss': 1.0})
  assert steps() == [10]  # not one bucket write per log
  writer.flush()  # what the train loop does after each checkpoint
  assert steps() == [10, 20, 30]
  writer.write(40, 'train', {'loss': 0.5})
  writer.close()
  assert steps() == [10, 20, 30, 40]


def test_whole_file_writes_on_a_bucket_and_locally(bucket, tmp_path):
  remote = workdirs.join(bucket, 'results.json')
  remote.parent.mkdir(parents=True, exist_ok=True)
  workdirs.write_text(remote, '{"a": 1}')
  assert json.loads(workdirs.read_text(remote)) == {'a': 1}
  assert workdirs.read_text(workdirs.join(bucket, 'missing.json')) is None
  local = workdirs.join(str(tmp_path / 'run'), 'results.json')
  local.parent.mkdir(parents=True)
  workdirs.write_text(local, '{"b": 2}')
  assert json.loads(local.read_text()) == {'b': 2}
  assert sorted(os.listdir(tmp_path / 'run')) == ['results.json']  # no temporary file left
  shutil.rmtree(tmp_path / 'run')


def test_running_out_of_space_is_one_error_naming_the_newest_complete_checkpoint(tmp_path):
  """Without a tiny filesystem to fill (test_reliability.py mounts one where it can): ENOSPC as
  an OSError or as tensorstore's text, deep in an error's chain, becomes one WorkdirFullError;
  anything else, and a full bucket, go through as they are."""
  workdir = str(tmp_path / 'run')
  for step in ('10', '20', 'unreadable-step-30'):
    os.makedirs(os.path.join(workdir, 'checkpoints', step))
  with pytest.raises(WorkdirFullError, match=r'run ran out of space \(no space left on device\); '
                     r'the newest complete checkpoint is step 20\. Free some space'):
    with workdirs.full_disk_is_one_error(workdir):
      raise OSError(errno.ENOSPC, 'No space left on device')
  with pytest.raises(WorkdirFullError, match='no checkpoint was complete yet'):
    with workdirs.full_disk_is_one_error(str(tmp_path / 'fresh')):
      try:
        raise ValueError('Error writing "params": No space left on device [OUT_OF_RANGE]')
      except ValueError as e:
        raise RuntimeError('the async save failed') from e
  with pytest.raises(OSError, match='Permission denied') as raised:
    with workdirs.full_disk_is_one_error(workdir):
      raise OSError(errno.EACCES, 'Permission denied')
  assert not isinstance(raised.value, WorkdirFullError)
  with pytest.raises(NonFiniteError):  # a person's error keeps its own words
    with workdirs.full_disk_is_one_error(workdir):
      raise NonFiniteError('No space left on device, says this message')
  with pytest.raises(OSError) as raised:  # a bucket has no space to free: its error as it is
    with workdirs.full_disk_is_one_error('gs://bucket/run'):
      raise OSError(errno.ENOSPC, 'No space left on device')
  assert not isinstance(raised.value, WorkdirFullError)


_IMPORT = importlib.import_module


def _without(monkeypatch, *missing):
  def import_module(name):
    if name in missing:
      raise ImportError(f'No module named {name!r}')
    return _IMPORT(name)
  monkeypatch.setattr(workdirs.importlib, 'import_module', import_module)


def test_a_bucket_without_gcsfs_is_one_error_with_the_install_command(monkeypatch):
  _without(monkeypatch, 'gcsfs', 'tensorflow')
  with pytest.raises(ConfigError, match=r'^--workdir=gs://b/run is on a bucket, and reading or '
                     r'writing gs:// needs gcsfs, which is not installed: pip install gcsfs'):
    workdirs.require_bucket_support('gs://b/run', '--workdir')
  workdirs.require_bucket_support('/tmp/run', '--workdir')  # local paths need nothing
  workdirs.require_bucket_support('', '--config.task.data_dir')  # nor TFDS's default
  _without(monkeypatch, 'gcsfs')  # TensorFlow's gfile is epath's other way to a bucket
  monkeypatch.setitem(__import__('sys').modules, 'tensorflow', object())
  workdirs.require_bucket_support('gs://b/run', '--workdir')


def _one_error_line(module: str, argv: list[str]):
  """Runs ``module``'s command line with gcsfs and TensorFlow unimportable; asserts one stderr
  line and exit 2; returns the process and the line."""
  code = ('import sys; sys.modules["gcsfs"] = sys.modules["tensorflow"] = None; '
          f'sys.argv = {argv!r}; from {module} import run; run()')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                        timeout=120, cwd=ROOT)
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
  return proc, lines[0]


@pytest.mark.parametrize('flag', ['--workdir=gs://my-bucket/run',
                                  '--config.task.data_dir=gs://my-bucket/tfds'])
def test_the_command_line_says_so_before_compiling(tmp_path, flag):
  """The whole command line, with gcsfs and TensorFlow unimportable: one line, exit 2."""
  _, line = _one_error_line('comparenets.main', [
      'comparenets', '--config=experiments/tfds_images.py:model=cnn,dataset=mnist',
      f'--workdir={tmp_path}/run', flag])
  assert line.startswith(f'comparenets: error: {flag} is on a bucket')
  assert line.endswith('pip install gcsfs (or pip install -e .[gcs])')
  assert not (tmp_path / 'run').exists()  # nothing written, nothing compiled


def test_the_suite_runner_says_so_before_running(tmp_path):
  """`compare` with a gs:// workdir, gcsfs and TensorFlow unimportable: one line, exit 2, and
  no suite entry started."""
  proc, line = _one_error_line('comparenets.compare', [
      'comparenets.compare', '--suite=quick', '--workdir=gs://my-bucket/suite', '--shard=0/2'])
  assert line.startswith('comparenets: error: --workdir=gs://my-bucket/suite is on a bucket')
  assert not proc.stdout


def test_the_report_summary_and_load_results_say_so(monkeypatch, capsys):
  _without(monkeypatch, 'gcsfs', 'tensorflow')
  assert summary.main(['summary', 'gs://b/suite']) == 2
  assert capsys.readouterr().err.splitlines() == [
      'comparenets: error: DIR=gs://b/suite is on a bucket, and reading or writing gs:// needs '
      'gcsfs, which is not installed: pip install gcsfs (or pip install -e .[gcs])']
  for call in (summary.load_results, report.write_report, api.read_report):
    with pytest.raises(ConfigError, match=r'^root=gs://b/suite is on a bucket.*pip install gcsfs'):
      call('gs://b/suite')


def test_only_process_0_moves_an_unreadable_checkpoint_aside(tmp_path, monkeypatch):
  synced = []
  monkeypatch.setattr(checkpointing.multihost_utils, 'sync_global_devices', synced.append)
  monkeypatch.setattr(checkpointing.jax, 'process_count', lambda: 2)
  directory = tmp_path / 'checkpoints'
  (directory / '30').mkdir(parents=True)
  checkpointer = checkpointing.Checkpointer.__new__(checkpointing.Checkpointer)  # no orbax:
  checkpointer.directory = str(directory)  # it would want a real jax.distributed here
  reloads = []
  checkpointer._manager = type('Manager', (), {'reload': lambda self: reloads.append(1)})()
  for index, moved in ((1, False), (0, True)):  # process 1 first: it only waits
    monkeypatch.setattr(checkpointing.jax, 'process_index', lambda: index)
    checkpointer._move_aside([30], kept=20)
    assert (directory / 'unreadable-step-30').is_dir() == moved
    assert (directory / '30').is_dir() != moved
  assert len(synced) == 2  # both met at the barrier after process 0's move
  assert len(reloads) == 2  # and then looked at the directory again


@pytest.mark.parametrize('write', ['text', 'bytes', 'once'])
def test_a_write_cut_short_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, write):
  """A full disk during a write: the file keeps its old contents and the writer's temporary
  file is gone (each writer's has a name of its own, so left ones would pile up)."""
  path = workdirs.join(str(tmp_path), 'results.json')
  path.write_text('old')
  if write == 'once':
    path.unlink()
  cls = type(path)

  def full(self, data, *args, **kwargs):
    with open(self, 'w', encoding='utf-8') as f:
      f.write('par')  # part of it written, then the disk is full
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(cls, 'write_text', full)
  monkeypatch.setattr(cls, 'write_bytes', full)
  with pytest.raises(OSError, match='No space left'):
    {'text': lambda: workdirs.write_text(path, 'new'),
     'bytes': lambda: workdirs.write_bytes(path, b'new'),
     'once': lambda: workdirs.write_text_once(path, 'new')}[write]()
  assert sorted(os.listdir(tmp_path)) == ([] if write == 'once' else ['results.json'])
  if write != 'once':
    assert open(path, encoding='utf-8').read() == 'old'
