"""Every experiment file's quick run, for every family that can read the task's input."""

import importlib.util
import os

import pytest
import tensorflow_datasets as tfds

from comparenets import train
from comparenets.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQUENCE = ['tcn', 'rnn', 'lstm', 'gru']
EXPERIMENTS = {
    'digits': ['cnn'] + SEQUENCE,
    'moving_digits': ['cnn', 'cnn3d', 'cnn_lstm', 'lstm'],  # embedded video clips
    'seq_digits': SEQUENCE,
    'adding': SEQUENCE,
    'copy_memory': SEQUENCE,
    'forecasting': SEQUENCE,
    'char_lm': SEQUENCE,
    'sentiment': SEQUENCE,       # TFDS imdb_reviews, mocked
    'tfds_images': ['cnn'] + SEQUENCE,  # TFDS mnist, mocked
}
MOCKED = {'sentiment', 'tfds_images'}
# Experiments whose quick run is in their task's own test file, with checks of their own metrics
# (mAP, PSNR against bicubic, ODS F against Sobel and Canny, the song's baselines on a small
# cache of chorales): not run twice.
OWN_QUICK_RUN = {'detection': 'test_detection.py', 'super_resolution': 'test_super_resolution.py',
                 'edges': 'test_edges.py', 'song': 'test_song.py'}


def get_config(experiment, arg):
  spec = importlib.util.spec_from_file_location(
      f'experiment_{experiment}', os.path.join(ROOT, 'experiments', f'{experiment}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_every_experiment_file_is_listed():
  files = {f[:-3] for f in os.listdir(os.path.join(ROOT, 'experiments')) if f.endswith('.py')}
  assert files == set(EXPERIMENTS) | set(OWN_QUICK_RUN)
  for experiment, test_file in OWN_QUICK_RUN.items():
    with open(os.path.join(ROOT, 'tests', test_file)) as f:
      text = f.read()
    assert experiment in text and 'quick' in text and 'train_and_evaluate(' in text


@pytest.mark.parametrize('experiment,model',
                         [(e, m) for e, models in EXPERIMENTS.items() for m in models])
def test_quick_run(tmp_path, experiment, model):
  config = get_config(experiment, f'model={model},quick')
  config.train.steps = 6
  # one device: this checks that the experiment's task and model fit and train; the sharded
  # steps are checked against the one-device step in test_train.py (one device costs ~1/4 less)
  config.train.update(log_every=3, eval_every=0, checkpoint_every=3, parallel='none')
  if experiment in MOCKED:
    with tfds.testing.mock_data(num_examples=100):
      results = train.train_and_evaluate(config, str(tmp_path))
  else:
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results['steps'] == 6 and results['model'] == model
  metric = results['target_metric']
  assert metric in results['test'] and results['test'][metric] == results['test'][metric]


@pytest.mark.parametrize('experiment', [e for e, models in EXPERIMENTS.items()
                                        if 'cnn' not in models])
def test_sequence_experiments_refuse_the_cnn(experiment):
  with pytest.raises(ConfigError, match="model must be one of those, not 'cnn'"):
    get_config(experiment, 'model=cnn')


@pytest.mark.parametrize('experiment', ['digits', 'adding'])
def test_every_model_field_is_in_the_config_so_the_command_line_can_set_it(experiment):
  from comparenets import models  # pylint: disable=g-import-not-at-top
  for model in ('lstm', 'tcn'):
    config = get_config(experiment, f'model={model}')
    assert set(config.model) == {'name'} | set(models.fields(model))
  config = get_config(experiment, 'model=lstm')
  assert config.model.impl == 'fused'  # a model default the experiment does not mention
  config.model.impl = 'scan'  # what --config.model.impl=scan does
  assert train.build_setup(config).model.backbone.impl == 'scan'


def test_paper_suite_widths_give_the_tables_parameter_counts():
  """Each family of each paper row within 5 % of Bai et al.'s size (70k; copy memory 16k),
  counted from parameter shapes (nothing initialised)."""
  import jax  # pylint: disable=g-import-not-at-top
  from comparenets import compare  # pylint: disable=g-import-not-at-top
  from comparenets.analysis import structure  # pylint: disable=g-import-not-at-top
  from comparenets.experiment import load_config  # pylint: disable=g-import-not-at-top
  for name, experiment_file, arg, overrides in compare.load_suite('paper'):
    setup = train.build_setup(load_config(experiment_file, arg, overrides))
    batch = setup.task.train_sampler(1, 0).batch(0)
    x, mask = setup.task.adapt(batch, setup.input_kind)
    shapes = jax.eval_shape(lambda r: setup.model.init({'params': r, 'dropout': r}, x, mask,
                                                       train=False), jax.random.PRNGKey(0))
    target = 16_000 if name.startswith('copy_memory') else 70_000
    assert abs(structure.count_params(shapes['params']) / target - 1) < 0.05, name
