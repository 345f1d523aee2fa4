"""TFDS image tasks: real loading code on `tfds.testing.mock_data`, and the missing-dataset error."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from comparenets import tasks
from comparenets import train
from comparenets.errors import DatasetNotFoundError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _experiment(arg):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      'tfds_images_experiment', os.path.join(ROOT, 'experiments', 'tfds_images.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize('dataset,shape', [('mnist', (28, 28, 1)), ('cifar10', (32, 32, 3))])
def test_loads_splits_with_a_seeded_validation_holdout(dataset, shape):
  with tfds.testing.mock_data(num_examples=200):
    task = tasks.build('tfds_images', dataset=dataset, validation_fraction=0.2)
    splits = task.splits()
  assert splits['train']['inputs'].shape[1:] == shape
  assert splits['train']['inputs'].dtype == np.float32
  assert 0.0 <= splits['train']['inputs'].min() and splits['train']['inputs'].max() <= 1.0
  n_train, n_val = len(splits['train']['label']), len(splits['validation']['label'])
  assert n_train + n_val == 200 and 30 <= n_val <= 50
  assert len(splits['test']['label']) == 200
  assert splits['train']['label'].dtype == np.int32


def test_cifar_rows_and_pixels_readings():
  batch = {'inputs': np.random.rand(2, 32, 32, 3).astype(np.float32)}
  rows, _ = tasks.build('tfds_images', dataset='cifar10').adapt(batch, 'sequence')
  assert rows.shape == (2, 32, 96)
  np.testing.assert_array_equal(rows[:, 5], batch['inputs'][:, 5].reshape(2, 96))
  pixels, _ = tasks.build('tfds_images', dataset='cifar10', reading='pixels',
                          order='permuted').adapt(batch, 'sequence')
  assert pixels.shape == (2, 1024, 3)


@pytest.mark.parametrize('model,reading', [('cnn', 'auto'), ('gru', 'pixels')])
def test_trains_end_to_end_on_mock_mnist(tmp_path, model, reading):
  config = _experiment(f'model={model},dataset=mnist,quick,reading={reading}')
  config.train.steps = 4
  config.train.update(log_every=2, eval_every=0, checkpoint_every=2, batch_size=16,
                      eval_batch_size=32)
  config.model.update({'widths': (8, 16)} if model == 'cnn' else {'hidden': 8})
  with tfds.testing.mock_data(num_examples=64):
    results = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert results['task']['dataset'] == 'mnist'
  assert 0.0 <= results['test']['accuracy'] <= 1.0
  assert (tmp_path / 'run' / 'checkpoints' / '4').is_dir()


def test_missing_dataset_is_one_message_saying_how_to_prepare_it(tmp_path):
  empty = tmp_path / 'no_data'
  empty.mkdir()
  with pytest.raises(DatasetNotFoundError, match=r"TFDS dataset 'fashion_mnist' is not prepared "
                     r"in .*no_data; prepare it on a machine with network access: .*tfds build "
                     r"fashion_mnist --file_format=array_record --data_dir=.*no_data"):
    tasks.build('tfds_images', dataset='fashion_mnist', data_dir=str(empty)).splits()


def test_missing_dataset_from_the_command_line_leaves_no_workdir(tmp_path):
  workdir = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-m', 'comparenets.main',
       '--config=experiments/tfds_images.py:model=cnn,dataset=cifar10,quick',
       f'--config.task.data_dir={tmp_path / "nothing_here"}', f'--workdir={workdir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('comparenets: error:')]
  assert len(errors) == 1 and "TFDS dataset 'cifar10' is not prepared" in errors[0]
  assert 'Traceback' not in proc.stderr
  assert not workdir.exists()
