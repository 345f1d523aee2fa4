"""Detection: IoU, NMS and mAP against hand-worked cases, the digit-canvas generator, the
CenterNet encoding and decoding, and a quick end-to-end run."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from comparenets.metrics import detection as dm
from comparenets import tasks
from comparenets import train
from comparenets.data import digit_canvas, digits
from comparenets.errors import ConfigError
from comparenets.tasks import detection

from tests.test_experiments import get_config


def _image(boxes, labels, scores=None):
  out = {'boxes': np.asarray(boxes, np.float32).reshape(-1, 4),
         'labels': np.asarray(labels, np.int64).reshape(-1)}
  if scores is not None:
    out['scores'] = np.asarray(scores, np.float32).reshape(-1)
  return out


A, B, FAR = (0, 0, 10, 10), (20, 20, 30, 30), (40, 40, 48, 48)


# ---------------------------------------------------------------------------------------------
# IoU and NMS


def test_iou_of_hand_worked_pairs():
  got = dm.iou(np.array([[0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 2, 2], [0, 0, 2, 2]]),
               np.array([[1, 1, 3, 3], [1, 1, 3, 3], [2, 0, 4, 2], [0, 0, 2, 2]]))
  # overlap 1 over union 4 + 4 - 1; containment 4 / 16; touching edges; identical
  np.testing.assert_allclose(np.diag(got), [1 / 7, 0.25, 0.0, 1.0])
  assert got.shape == (4, 4)
  assert dm.iou(np.zeros((2, 3, 4)), np.ones((2, 5, 4))).shape == (2, 3, 5)
  assert dm.iou(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))[0, 0] == 0.0  # empty


def test_nms_keeps_the_best_and_removes_overlaps_above_the_threshold_only():
  boxes = [A, (0, 0, 10, 6), (0, 0, 10, 5), B]
  # IoU with A: 0.6 (removed), exactly 0.5 (kept: only IoU > threshold suppresses), 0
  scores = [0.9, 0.8, 0.6, 0.7]
  np.testing.assert_array_equal(dm.nms(boxes, scores, 0.5), [0, 3, 2])
  np.testing.assert_array_equal(dm.nms(boxes, scores, 0.4), [0, 3])
  # per class: a box of another class is never suppressed
  np.testing.assert_array_equal(dm.batched_nms(boxes, scores, [0, 1, 0, 0], 0.5), [0, 1, 3, 2])
  assert dm.nms(np.zeros((0, 4)), np.zeros(0)).shape == (0,)


# ---------------------------------------------------------------------------------------------
# Average precision (PASCAL VOC, all-point interpolation)


def _map(detections, truth):
  return dm.mean_average_precision(detections, truth, 0.5)


def test_average_precision_interpolates_precision_from_the_right():
  # recall .5 at precision 1, then an FP, then recall 1 at precision 2/3: .5 * 1 + .5 * 2/3
  assert dm.average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(5 / 6)
  # the interpolated precision at recall .5 is the best later one, 2/3
  assert dm.average_precision([0.0, 0.5, 1.0], [0.0, 0.5, 2 / 3]) == pytest.approx(2 / 3)
  assert dm.average_precision([0.5], [1.0]) == pytest.approx(0.5)  # never reaches recall 1


def test_perfect_detections_give_map_one():
  truth = [_image([A, B], [3, 7]), _image([FAR], [3])]
  found = [_image([B, A], [7, 3], [0.2, 0.9]), _image([FAR], [3], [0.5])]
  result = _map(found, truth)
  assert result['mAP'] == 1.0 and result['ap'] == {3: 1.0, 7: 1.0}


def test_a_false_positive_ranked_above_the_true_ones():
  truth = [_image([A, B], [0, 0])]
  fp_first = [_image([FAR, A, B], [0, 0, 0], [0.9, 0.8, 0.7])]
  # precision 0, 1/2, 2/3 at recall 0, 1/2, 1: AP = 2/3
  assert _map(fp_first, truth)['mAP'] == pytest.approx(2 / 3)
  fp_second = [_image([A, FAR, B], [0, 0, 0], [0.9, 0.8, 0.7])]
  assert _map(fp_second, truth)['mAP'] == pytest.approx(5 / 6)
  fp_last = [_image([A, B, FAR], [0, 0, 0], [0.9, 0.8, 0.7])]
  assert _map(fp_last, truth)['mAP'] == 1.0  # a lower-ranked FP costs nothing


def test_a_duplicate_detection_is_a_false_positive():
  truth = [_image([A, B], [0, 0])]
  near_a = (0, 0, 10, 9)  # IoU 0.9 with A
  found = [_image([A, near_a, B], [0, 0, 0], [0.9, 0.8, 0.7])]
  assert _map(found, truth)['mAP'] == pytest.approx(5 / 6)  # 1.0 if it counted as a TP


def test_iou_exactly_at_the_threshold_matches():
  truth = [_image([A], [0])]
  assert _map([_image([(0, 0, 10, 5)], [0], [0.9])], truth)['mAP'] == 1.0  # IoU 0.5
  assert _map([_image([(0, 0, 10, 4.9)], [0], [0.9])], truth)['mAP'] == 0.0  # IoU 0.49


def test_classes_without_ground_truth_are_ignored_and_missed_classes_count_zero():
  truth = [_image([A], [0])]
  found = [_image([A, B, FAR], [0, 4, 4], [0.5, 0.9, 0.8])]  # class 4 has no ground truth
  result = _map(found, truth)
  assert result['mAP'] == 1.0 and set(result['ap']) == {0}
  truth = [_image([A, B], [0, 1])]
  found = [_image([A, B], [0, 2], [0.9, 0.8])]  # the wrong class on B: class 1 never found
  result = _map(found, truth)
  assert result['ap'] == {0: 1.0, 1: 0.0} and result['mAP'] == 0.5


def test_detections_match_ground_truth_of_their_own_image_only():
  truth = [_image([A], [0]), _image([B], [0])]
  found = [_image([A], [0], [0.8]),
           _image([A, B], [0, 0], [0.9, 0.7])]  # image 1's box A is where image 0 has one
  assert _map(found, truth)['mAP'] == pytest.approx(2 / 3)
  # an image with neither detections nor ground truth changes nothing
  found.append(_image(np.zeros((0, 4)), [], []))
  truth.append(_image(np.zeros((0, 4)), []))
  assert _map(found, truth)['mAP'] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------
# The digit-canvas generator


def _pool():
  return digits.load_splits()['test']


def _canvases(seed=0, n=200, **kwargs):
  pool = _pool()
  return digit_canvas.generate(pool['inputs'], pool['label'], np.random.default_rng(seed), n,
                               **kwargs)


def test_canvases_are_deterministic_and_hold_one_to_three_digits():
  a, b, c = _canvases(0), _canvases(0), _canvases(1)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a['inputs'], c['inputs'])
  assert a['inputs'].shape == (200, 48, 48, 1) and a['inputs'].dtype == np.float32
  assert a['boxes'].shape == (200, 3, 4) and a['labels'].shape == a['valid'].shape == (200, 3)
  counts = a['valid'].sum(1)
  assert set(counts) == {1, 2, 3}
  # the real objects come first; padding is zero
  np.testing.assert_array_equal(a['valid'], np.arange(3)[None] < counts[:, None])
  assert (a['boxes'][~a['valid']] == 0).all() and (a['labels'][~a['valid']] == 0).all()
  assert 0 <= a['inputs'].min() and a['inputs'].max() <= 1
  heights = (a['boxes'][..., 2] - a['boxes'][..., 0])[a['valid']]
  assert heights.min() >= 10 and heights.max() <= 28  # 12..24 px placements, about 8 rows ink


def test_boxes_are_the_tight_boxes_of_the_ink_and_overlap_at_most_the_limit():
  data = _canvases(2, max_overlap=0.1)
  for image, boxes, valid in zip(data['inputs'][..., 0], data['boxes'], data['valid']):
    inside = np.zeros(image.shape, bool)
    for y0, x0, y1, x1 in boxes[valid].astype(int):
      inside[y0:y1, x0:x1] = True
      patch = image[y0:y1, x0:x1] > 0
      # tight: ink on every edge of the box
      assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any()
    assert not (image[~inside] > 0).any()  # all ink is inside a box
    overlaps = dm.iou(boxes[valid], boxes[valid])
    assert (overlaps[~np.eye(len(overlaps), dtype=bool)] <= 0.1).all()
  noisy = _canvases(2, max_overlap=0.1, noise=0.1)
  np.testing.assert_array_equal(noisy['boxes'], data['boxes'])  # noise is drawn last
  assert (noisy['inputs'][data['inputs'] == 0] > 0).mean() > 0.3


def test_each_box_carries_the_label_of_the_digit_drawn_in_it():
  pool = np.stack([np.full((8, 8), 0.5), np.ones((8, 8))]).astype(np.float32)  # grey 0, white 1
  data = digit_canvas.generate(pool, np.array([0, 1]), np.random.default_rng(0), 100,
                               max_overlap=0.0)  # no overlap: a box's centre is its own digit's
  boxes, labels = data['boxes'][data['valid']], data['labels'][data['valid']]
  image = np.repeat(np.arange(100), data['valid'].sum(1))
  centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).astype(int)
  shade = data['inputs'][image, centre[:, 0], centre[:, 1], 0]
  assert set(labels) == {0, 1}
  np.testing.assert_allclose(shade, np.where(labels == 0, 0.5, 1.0), atol=1e-5)


def test_the_task_draws_test_canvases_from_the_test_digits():
  task = tasks.build('detection', validation_size=20, test_size=30)
  splits = task.splits()
  assert set(splits) == {'validation', 'test'}
  assert len(splits['test']['inputs']) == 30 and len(splits['validation']['inputs']) == 20
  pools = digits.load_splits()
  expected = digit_canvas.generate(pools['test']['inputs'], pools['test']['label'],
                                   np.random.default_rng(np.random.SeedSequence(0, spawn_key=(2,))),
                                   30)
  np.testing.assert_array_equal(splits['test']['inputs'], expected['inputs'])
  # training canvases: generated per step from the training digits
  batch = task.train_sampler(8, seed=5).batch(3)
  expected = digit_canvas.generate(pools['train']['inputs'], pools['train']['label'],
                                   np.random.default_rng([5, 3]), 8)
  np.testing.assert_array_equal(batch['inputs'], expected['inputs'])
  np.testing.assert_array_equal(batch['labels'], expected['labels'])


# ---------------------------------------------------------------------------------------------
# CenterNet encoding and decoding


def _ideal_outputs(data, grid, num_classes=10):
  """The head outputs that encode the ground truth exactly: heatmap logits of the Gaussian
  targets, and size and offset written at every centre cell."""
  h, w = grid
  stride = detection.output_stride(data['inputs'].shape, (0, h, w))
  encode = jax.jit(detection.encode, static_argnums=(3, 4, 5))
  t = jax.device_get(encode(data['boxes'], data['labels'], data['valid'], grid, stride,
                            num_classes))
  heat = np.clip(np.asarray(t['heatmap']), 1e-6, 1 - 1e-6)
  outputs = np.zeros(heat.shape[:3] + (num_classes + 4,), np.float32)
  outputs[..., :num_classes] = np.log(heat) - np.log1p(-heat)
  regression = outputs[..., num_classes:].reshape(len(heat), h * w, 4)
  for i in range(len(heat)):
    for m in np.flatnonzero(data['valid'][i]):
      regression[i, t['cell'][i, m], :2] = t['size'][i, m]
      regression[i, t['cell'][i, m], 2:] = t['offset'][i, m]
  outputs[..., num_classes:] = regression.reshape(len(heat), h, w, 4)
  return outputs, t


@pytest.mark.parametrize('grid,window', [((6, 6), 1), ((6, 6), 3), ((12, 12), 3),
                                         ((48, 48), 3)])  # strides 8, 4 and 1
def test_encoding_then_decoding_the_ground_truth_gives_its_boxes_back(grid, window):
  data = _canvases(3, n=100)
  outputs, targets = _ideal_outputs(data, grid)
  assert float(np.asarray(targets['positive']).sum()) == data['valid'].sum()  # one peak each
  found = detection.decode(outputs, 10, (48, 48), peak_window=window)
  truth = detection.ground_truth(data)
  assert dm.mean_average_precision(found, truth)['mAP'] == 1.0
  for got, want in zip(found, truth):  # the true boxes are the top detections
    top = got['boxes'][:len(want['boxes'])]
    overlaps = dm.iou(top, want['boxes'])
    assert (overlaps.max(0) > 0.999).all()


def test_decode_of_a_hand_made_output():
  outputs = np.full((1, 2, 2, 6), -10.0, np.float32)  # 2 classes, 2x2 cells of 8 px
  outputs[0, 1, 0, 1] = 3.0  # class 1 at cell (1, 0)
  outputs[0, 1, 1, 1] = 2.0  # a weaker class-1 neighbour: not a local maximum
  outputs[0, 1, 1, 0] = 1.0  # class 0 there: another class, kept
  outputs[0, 1, 0, 2:] = [1.0, 0.5, 0.5, 0.25]  # 8 x 4 px, centre (12, 2)
  outputs[0, 1, 1, 2:] = [0.5, 0.5, 0.0, 0.0]  # 4 x 4 px, centre (8, 8)
  (found,) = detection.decode(outputs, 2, (16, 16), min_score=0.5)
  np.testing.assert_allclose(found['boxes'], [[8, 0, 16, 4], [6, 6, 10, 10]])
  np.testing.assert_array_equal(found['labels'], [1, 0])
  np.testing.assert_allclose(found['scores'], 1 / (1 + np.exp([-3.0, -1.0])), rtol=1e-6)
  # without the max-pool the class-1 neighbour is a candidate too; its box is its cell's,
  # (6, 6, 10, 10), which does not overlap the best one, so IoU NMS keeps it
  (found,) = detection.decode(outputs, 2, (16, 16), min_score=0.5, peak_window=1)
  np.testing.assert_allclose(found['boxes'], [[8, 0, 16, 4], [6, 6, 10, 10], [6, 6, 10, 10]])
  np.testing.assert_array_equal(found['labels'], [1, 1, 0])
  outputs[0, 1, 1, 2:] = [1.0, 0.5, 0.5, -0.75]  # its box now (8, 0, 16, 4): the best one's
  (found,) = detection.decode(outputs, 2, (16, 16), min_score=0.5, peak_window=1)
  np.testing.assert_allclose(found['boxes'], [[8, 0, 16, 4], [8, 0, 16, 4]])
  np.testing.assert_array_equal(found['labels'], [1, 0])  # suppressed in class 1 only
  (found,) = detection.decode(outputs, 2, (16, 16), min_score=0.5, peak_window=1, nms_iou=None)
  np.testing.assert_array_equal(found['labels'], [1, 1, 0])


def test_the_loss_prefers_the_ideal_outputs_and_has_its_parts():
  task = tasks.build('detection')
  data = _canvases(4, n=8)
  ideal, _ = _ideal_outputs(data, (6, 6))
  batch = {k: jnp.asarray(v) for k, v in data.items()}
  per_example = jax.jit(task.per_example)
  good = per_example(jnp.asarray(ideal), batch)
  bad = per_example(jnp.zeros_like(ideal), batch)
  assert set(good) == {'loss', 'heatmap_loss', 'size_loss', 'offset_loss'}
  assert good['loss'].shape == (8,)
  np.testing.assert_allclose(good['size_loss'], 0, atol=1e-5)
  np.testing.assert_allclose(good['offset_loss'], 0, atol=1e-5)
  assert (good['heatmap_loss'] < 0.5 * bad['heatmap_loss']).all()
  one_class = jax.jit(tasks.build('detection', num_classes=1).per_example)(
      jnp.zeros((8, 6, 6, 5)), batch)
  assert np.isfinite(one_class['loss']).all()


# ---------------------------------------------------------------------------------------------
# Runs


def test_sequence_models_are_refused():
  config = get_config('detection', 'quick')
  config.model = ml_collections.ConfigDict({'name': 'lstm'})
  with pytest.raises(ConfigError, match="task 'detection' cannot feed model 'lstm'"):
    train.build_setup(config)
  with pytest.raises(ConfigError, match='min_size <= max_size'):
    tasks.build('detection', min_size=30.0)


def test_a_quick_run_reports_map_for_validation_and_test(tmp_path):
  config = get_config('detection', 'quick')
  config.train.update(steps=4, log_every=2, eval_every=2, checkpoint_every=4, parallel='none')
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results['target_metric'] == 'mAP50'
  for split in ('validation', 'test'):
    assert 0.0 <= results[split]['mAP50'] <= 1.0
  with open(tmp_path / 'results.json', encoding='utf-8') as f:
    assert json.load(f)['test']['mAP50'] == results['test']['mAP50']
  with open(tmp_path / 'metrics.jsonl', encoding='utf-8') as f:
    records = [json.loads(line) for line in f]
  assert any(r['split'] == 'validation' and r['step'] == 2 and 'mAP50' in r for r in records)
  assert os.path.exists(tmp_path / 'plots' / 'detections.png')
