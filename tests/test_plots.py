"""A run's plots: written at the end of training, non-blank, and in TensorBoard as images."""

import glob
import json
import os
import struct

import numpy as np
import pytest

from comparenets import figures
from comparenets import plots
from comparenets import tasks
from comparenets.analysis import report
from comparenets.data import pipeline
from comparenets.experiment import load_config
from comparenets.train import train_and_evaluate

QUICK = {'train.steps': 10, 'train.log_every': 5, 'train.eval_every': 5,
         'train.checkpoint_every': 0}


def read_events(workdir):
  """Every (tag, kind, step, value) in a run's TensorBoard event files, read with the protos
  that tensorboardX writes (TFRecord framing: length, crc, payload, crc)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = []
  for path in sorted(glob.glob(os.path.join(workdir, 'tensorboard', 'events.out.tfevents.*'))):
    data, i = open(path, 'rb').read(), 0
    while i < len(data):
      (n,) = struct.unpack('<Q', data[i:i + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        kind = v.WhichOneof('value')
        out.append((v.tag, kind, event.step, getattr(v, kind)))
  return out


def decode_png(data):
  from matplotlib import image as mpimg  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  return mpimg.imread(io.BytesIO(data), format='png')


def assert_picture(path, min_size=(200, 300)):
  """A real PNG, at least ``min_size`` pixels, with more than a background in it."""
  with open(path, 'rb') as f:
    data = f.read()
  assert data[:8] == b'\x89PNG\r\n\x1a\n', path
  image = decode_png(data)
  assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], (path, image.shape)
  rgb = image[..., :3].reshape(-1, 3)
  assert rgb.std(0).max() > 0.05, f'{path} is blank'
  assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 20, f'{path} has no detail'
  return image


def test_digits_run_writes_curves_confusion_matrix_and_predictions(tmp_path):
  workdir = str(tmp_path / 'digits_cnn')
  results = train_and_evaluate(load_config('digits.py', 'model=cnn,quick', QUICK),
                               workdir)
  assert results['plots'] == ['plots/learning_curves.png', 'plots/confusion_matrix.png',
                              'plots/predictions.png']
  for name in results['plots']:
    assert_picture(os.path.join(workdir, name))
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['plots'] == results['plots']
  events = read_events(workdir)
  images = {tag: value for tag, kind, step, value in events if kind == 'image'}
  assert set(images) == {'plots/confusion_matrix', 'plots/predictions'}
  for tag, image in images.items():  # the same picture as the PNG beside it
    decoded = decode_png(image.encoded_image_string)
    assert (image.height, image.width) == decoded.shape[:2]
    on_disk = decode_png(open(os.path.join(workdir, f'{tag}.png'), 'rb').read())
    np.testing.assert_allclose(decoded[..., :3], on_disk[..., :3], atol=1 / 255)
  assert {step for tag, kind, step, _ in events if kind == 'image'} == {10}
  scalars = {tag for tag, kind, _, _ in events if kind == 'simple_value'}
  assert {'train/loss', 'validation/accuracy', 'test/accuracy'} <= scalars


def test_forecasting_and_adding_runs_plot_predictions_against_truth(tmp_path):
  for name, experiment, arg, picture in (
      ('forecast', 'forecasting.py', 'model=rnn,quick', 'forecasts'),
      ('adding', 'adding.py', 'model=gru,quick,length=12', 'predictions')):
    workdir = str(tmp_path / name)
    results = train_and_evaluate(load_config(experiment, arg, QUICK), workdir)
    assert results['plots'] == ['plots/learning_curves.png', f'plots/{picture}.png']
    for path in results['plots']:
      assert_picture(os.path.join(workdir, path))
    assert [t for t, kind, _, _ in read_events(workdir) if kind == 'image'] == [
        f'plots/{picture}']


def test_confusion_counts_and_example_choice():
  labels = np.array([0, 0, 1, 1, 2, 2, 2])
  predicted = np.array([0, 1, 1, 1, 2, 0, 2])
  counts = figures.confusion_counts(labels, predicted, 3)
  np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
  # misclassified first, at most half of the picks, then correct ones in split order
  np.testing.assert_array_equal(figures.pick_examples(labels, predicted, 4), [1, 5, 0, 2])
  np.testing.assert_array_equal(figures.pick_examples(labels, predicted, 2), [1, 0])
  np.testing.assert_array_equal(figures.pick_examples(labels, labels, 3), [0, 1, 2])


def test_learning_curves_count_a_resumed_step_once(tmp_path):
  lines = [{'step': 10, 'split': 'train', 'loss': 2.0}, {'step': 20, 'split': 'train', 'loss': 1.5},
           {'step': 20, 'split': 'train', 'loss': 1.4},  # recomputed after a resume
           {'step': 20, 'split': 'validation', 'mse': 0.3}]
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(l) + '\n' for l in lines))
  records = plots._records(str(tmp_path))  # pylint: disable=protected-access
  assert [(r['split'], r['step']) for r in records] == [('train', 10), ('train', 20),
                                                        ('validation', 20)]
  assert records[1]['loss'] == 1.4
  fig = plots.learning_curves(str(tmp_path), metric='mse')
  loss_ax, metric_ax = fig.axes[:2]
  np.testing.assert_array_equal(loss_ax.lines[0].get_ydata(), [2.0, 1.4])
  np.testing.assert_array_equal(metric_ax.lines[0].get_ydata(), [0.3])


class _Writer:
  def __init__(self):
    self.images = {}

  def write_image(self, tag, image, step):
    self.images[tag] = (image.shape, image.dtype, step)

  def flush(self):
    pass


def test_helpers_for_dense_and_detection_tasks(tmp_path):
  """What a super-resolution or detection task's ``figures`` would return, written like a
  run's plots."""
  rng = np.random.default_rng(0)
  hr = rng.uniform(size=(3, 32, 32, 3)).astype(np.float32)
  lr = hr[:, ::4, ::4]
  bicubic = np.repeat(np.repeat(lr, 4, 1), 4, 2)
  boxes = [{'boxes': np.array([[2, 3, 12, 20]]), 'labels': ['cat'], 'scores': np.array([0.9])}
           for _ in range(3)]
  truth = [{'boxes': np.array([[1, 2, 13, 21]]), 'labels': ['cat']} for _ in range(3)]
  drawn = {
      'super_resolution': figures.image_comparison(
          {'low resolution': lr, 'bicubic': bicubic, 'model': hr * 0.9, 'truth': hr}, n=2),
      'detections': figures.detections(hr, boxes, truth, n=3)}
  writer = _Writer()
  written = plots.write_figures(str(tmp_path), drawn, writer=writer, step=7)
  assert written == ['plots/super_resolution.png', 'plots/detections.png']
  for path in written:
    assert_picture(os.path.join(tmp_path, path))
  assert set(writer.images) == {'plots/super_resolution', 'plots/detections'}
  assert all(shape[-1] == 3 and dtype == np.uint8 and step == 7
             for shape, dtype, step in writer.images.values())


def test_a_failing_figure_does_not_cost_the_run(tmp_path, caplog):
  (tmp_path / 'metrics.jsonl').write_text(json.dumps({'step': 1, 'split': 'train',
                                                      'loss': 1.0}) + '\n')

  class Broken:
    name = 'broken'

    def figures(self, predict):
      raise RuntimeError('no picture today')

  written = plots.write_run_plots(str(tmp_path), Broken(), model=None, input_kind='image',
                                  variables={}, writer=_Writer())
  assert written == ['plots/learning_curves.png']
  assert 'no picture today' in caplog.text


@pytest.mark.parametrize('size', [5, 300])
def test_predict_covers_every_example_once(size):
  """The ``predict`` a task's figures get: any number of examples, in padded batches."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  class Task:
    def adapt(self, batch, kind):
      return batch['inputs'], None

  class Model(nn.Module):
    @nn.compact
    def __call__(self, x, mask, train=False):
      return nn.Dense(2)(x)

  x = np.arange(size * 3, dtype=np.float32).reshape(size, 3)
  variables = Model().init(jax.random.PRNGKey(0), x[:1], None)
  predict = tasks.make_predict(Task(), Model(), 'sequence', variables, batch_size=64)
  out = predict({'inputs': x})
  np.testing.assert_allclose(out, Model().apply(variables, x, None), rtol=1e-5, atol=1e-4)


def test_figures_of_tfds_tasks_read_their_lazy_splits(tmp_path):
  """MNIST (a lazily read split) and IMDB on mock data, with a stand-in for the model that is
  right on every example but those of class 3 / the first two reviews."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def oracle(num_classes, wrong):
    def predict(split):
      labels = pipeline.column(split, 'label')
      logits = np.eye(num_classes)[labels]
      logits[wrong(labels)] = np.roll(logits[wrong(labels)], 1, axis=1)
      return logits
    return predict

  with tfds.testing.mock_data(num_examples=40):
    mnist = tasks.build('tfds_images', dataset='mnist')
    test = mnist.splits()['test']
    assert isinstance(test, pipeline.SourceSplit)
    figures = mnist.figures(oracle(10, lambda labels: labels == 3))
    labels = pipeline.column(test, 'label')
    np.testing.assert_array_equal(labels, test.take(np.arange(test.num_examples))['label'])
    imdb = tasks.build('sentiment', vocab_size=50, max_length=16)
    figures.update({f'imdb_{k}': v for k, v in imdb.figures(
        oracle(2, lambda labels: np.arange(len(labels)) < 2)).items()})
  assert set(figures) == {'confusion_matrix', 'predictions', 'imdb_confusion_matrix'}
  grid = figures['predictions']
  wrong = int((labels == 3).sum())
  titles = [ax.get_title() for ax in grid.axes if ax.get_title()]
  assert len(titles) == min(24, len(labels))
  assert [t.split(' / ')[1] for t in titles[:wrong]] == ['3'] * wrong  # errors first
  assert all(t.split(' / ')[0] == t.split(' / ')[1] for t in titles[wrong:])
  for path in plots.write_figures(str(tmp_path), figures):
    assert_picture(os.path.join(tmp_path, path))


def test_copy_memory_figure_shows_recalled_digits(tmp_path):
  task = tasks.build('copy_memory', length=10, test_size=16)
  seen = {}

  def predict(split):  # right everywhere but the third recalled digit
    seen['n'] = len(split['inputs'])
    logits = np.eye(10)[split['target']]
    logits[:, -8] = np.roll(logits[:, -8], 1, axis=-1)
    return logits

  drawn = task.figures(predict)
  assert seen['n'] == 8  # only the examples it shows
  (ax,) = drawn['predictions'].axes
  assert '(0.90 of these recalled)' in ax.get_title()
  texts = [t for t in ax.texts]
  wrong = [t.get_text() for t in texts if t.get_color() == figures._WRONG]  # pylint: disable=protected-access
  assert len(wrong) == 8 and len(texts) == 2 * 8 * 10
  (path,) = plots.write_figures(str(tmp_path), drawn)
  assert_picture(os.path.join(tmp_path, path))


# The report's metric-vs-parameters figure.

def _result(workdir, model, params, value):
  return {'workdir': workdir, 'model': model, 'params': {'total': params},
          'target_metric': 'accuracy', 'test': {'accuracy': value}}


def _grid_pixels(rows, cols):
  """(height, width) of a grid of ``rows`` x ``cols`` panels as `report._save` writes it."""
  return (round(rows * report.PANEL_INCHES[1] * 110), round(cols * report.PANEL_INCHES[0] * 110))


def test_metric_vs_params_is_a_grid_of_the_tasks_with_two_models(tmp_path):
  runs = [_result(f'task{i}/{m}', m, 1000 * (i + 1) + len(m), 0.5 + 0.05 * i)
          for i in range(7) for m in ('cnn', 'lstm')]
  runs += [_result(f'alone/gru/seed{s}', 'gru', 500, 0.5 + 0.1 * s) for s in (0, 1)]  # one model
  path = str(tmp_path / 'metric_vs_params.png')
  drawn = report.plot_metric_vs_params(report.group_runs(runs), path)
  assert drawn == [f'task{i}' for i in range(7)]  # 'alone' is left to its table
  image = assert_picture(path)
  assert image.shape[:2] == _grid_pixels(3, 3)  # seven panels: three rows of at most three
  assert 1000 <= image.shape[1] <= 1400  # readable at the width a Markdown viewer shows
  drawn = report.plot_metric_vs_params(report.group_runs(runs[:4]), path)
  assert drawn == ['task0', 'task1'] and decode_png(open(path, 'rb').read()).shape[:2] == \
      _grid_pixels(1, 2)


def test_metric_vs_params_without_a_task_of_two_models_draws_nothing(tmp_path):
  runs = [_result('digits/cnn', 'cnn', 1000, 0.9), _result('adding/gru', 'gru', 500, 0.5)]
  path = tmp_path / 'metric_vs_params.png'
  assert report.plot_metric_vs_params(report.group_runs(runs), str(path)) == []
  assert not path.exists()
