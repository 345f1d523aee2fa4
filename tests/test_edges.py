"""Edge detection: the BSDS-style counting on hand-worked maps, the shapes generator's exact
edges, the Sobel and Canny baselines, HED's balanced loss and a quick run end to end."""

import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from comparenets.metrics import edges as em
from comparenets import tasks, train
from comparenets.data import shapes
from comparenets.errors import ConfigError
from comparenets.tasks import edges as edges_task

C, P, R, T = em.CORRECT, em.PREDICTED, em.RECALLED, em.TRUE


def _line(shape=(7, 7), column=3, rows=slice(None)):
  out = np.zeros(shape, bool)
  out[rows, column] = True
  return out


# --------------------------------------------------------------------------------------------
# Counting and scores


def test_counts_of_a_partial_prediction_with_a_stray_pixel():
  truth = _line()  # column 3, rows 0..6: 7 pixels
  pred = _line(rows=slice(0, 3))  # rows 0..2 of the same column
  pred[6, 6] = True  # a stray pixel 3 columns away
  exact = em.match_counts(pred[None].astype(float), truth[None], 0, thresholds=(0.5,),
                          thinning=False)[0, 0]
  assert list(exact[[C, P, R, T]]) == [3, 4, 3, 7]
  # tolerance 1 also recalls row 3 (next to the predicted row 2); the stray stays wrong
  near = em.match_counts(pred[None].astype(float), truth[None], 1, thresholds=(0.5,),
                         thinning=False)[0, 0]
  assert list(near[[C, P, R, T]]) == [3, 4, 4, 7]
  s = em.scores(near[None, None], thresholds=(0.5,))
  assert s['ods_precision'] == pytest.approx(3 / 4)
  assert s['ods_recall'] == pytest.approx(4 / 7)
  assert s['ods_f'] == pytest.approx(2 * (3 / 4) * (4 / 7) / (3 / 4 + 4 / 7))


def test_an_edge_shifted_by_one_pixel_counts_at_tolerance_1_not_0():
  truth, shifted = _line(column=3), _line(column=4)
  for tolerance, expected in ((0, 0.0), (1, 1.0), (1.5, 1.0)):
    s = em.evaluate(shifted[None].astype(float), truth[None], tolerance, thresholds=(0.5,))
    assert s['ods_f'] == pytest.approx(expected)
  # diagonal neighbours are sqrt(2) away: not within 1, within 1.5
  diagonal = np.zeros((7, 7), bool)
  diagonal[1, 4] = True
  point = np.zeros((7, 7), bool)
  point[0, 3] = True
  for tolerance, expected in ((1, 0.0), (1.5, 1.0)):
    s = em.evaluate(diagonal[None].astype(float), point[None], tolerance, thresholds=(0.5,))
    assert s['ods_f'] == pytest.approx(expected)


def test_an_empty_prediction_scores_zero_and_an_image_without_edges_counts_nothing():
  truth = _line()[None]
  s = em.evaluate(np.zeros((1, 7, 7)), truth, 1, thresholds=(0.5,))
  assert (s['ods_f'], s['ods_precision'], s['ods_recall']) == (0.0, 0.0, 0.0)
  counts = em.match_counts(np.zeros((1, 7, 7)), np.zeros((1, 7, 7)), 1, thresholds=(0.5,))
  assert counts.sum() == 0


def test_thinning_keeps_one_line_of_a_thick_prediction():
  truth = _line()[None]
  thick = np.zeros((1, 7, 7))
  thick[0, :, 2:5] = 1.0  # three columns around the true one
  unthinned = em.match_counts(thick, truth, 1, thresholds=(0.5,), thinning=False)[0, 0]
  thinned = em.match_counts(thick, truth, 1, thresholds=(0.5,), thinning=True)[0, 0]
  assert unthinned[P] == 21 and unthinned[C] == 21  # the band approximation's leniency
  assert thinned[P] < 10 and thinned[R] == 7
  assert em.thin(thick.astype(bool))[0, :, 3].sum() >= 5  # the middle column survives


def test_the_best_threshold_is_chosen_on_counts_summed_over_the_split():
  truth = np.stack([_line(column=1), _line(column=5)])
  probs = np.zeros((2, 7, 7))
  probs[0][truth[0]] = 0.6  # image 0: its edge at 0.6, a false edge at 0.3
  probs[0][:, 4] = 0.3
  probs[1][truth[1]] = 0.3  # image 1: its edge at 0.3 only
  thresholds = (0.2, 0.5, 0.8)
  counts = em.match_counts(probs, truth, 1, thresholds, thinning=False)
  assert counts[:, :, P].tolist() == [[14, 7, 0], [7, 0, 0]]
  s = em.scores(counts, thresholds)
  # 0.2: P = 14/21, R = 1; 0.5: P = 1, R = 1/2; 0.8: nothing
  f02, f05 = 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5
  assert s['ods_threshold'] == 0.2 and s['ods_f'] == pytest.approx(f02)
  assert f02 > f05
  # OIS: image 0 at 0.5 (perfect), image 1 at 0.2 (perfect): F = 1
  assert s['ois_f'] == pytest.approx(1.0)


def test_average_precision_by_hand():
  # points from the highest threshold down, (R, P): (0.5, 1), (0.5, 0.8), (1, 0.5), then a
  # lower threshold whose recall fell back (0.6, 0.2): 0.5 * 1 + 0.5 * 0.5, the last adds none
  precision, recall = [1.0, 0.8, 0.5, 0.2], [0.5, 0.5, 1.0, 0.6]
  assert em.average_precision(precision, recall) == pytest.approx(0.75)
  assert em.average_precision([1.0], [0.9]) == pytest.approx(0.9)
  # scores() reads its grid from the lowest threshold up: the same curve, reversed
  counts = np.array([[2, 10, 6, 10], [5, 10, 10, 10], [4, 5, 5, 10], [5, 5, 5, 10]])[None]
  # per threshold (P, R): (0.2, 0.6), (0.5, 1), (0.8, 0.5), (1, 0.5)
  got = em.scores(counts, thresholds=(0.1, 0.2, 0.3, 0.4))['ap']
  assert got == pytest.approx(0.75)


# --------------------------------------------------------------------------------------------
# The generator


def test_edge_map_marks_the_upper_or_left_pixel_of_every_crack():
  regions = np.array([[0, 0, 0, 0],
                      [0, 1, 1, 0],
                      [0, 1, 2, 2],
                      [0, 0, 2, 2]])
  expected = np.array([[0, 1, 1, 0],
                       [1, 0, 1, 1],
                       [1, 1, 0, 0],
                       [0, 1, 0, 0]], bool)
  np.testing.assert_array_equal(shapes.edge_map(regions), expected)


def test_generated_edges_are_exactly_where_the_visible_region_changes():
  rng = np.random.default_rng(3)
  images, regions = shapes.render(rng, 6, size=24)
  data = shapes.generate(np.random.default_rng(3), 6, size=24)
  np.testing.assert_array_equal(data['inputs'], images)
  edges = data['edges'].astype(bool)
  for n in range(6):  # a loop over every pixel, independent of edge_map's slicing
    for i in range(24):
      for j in range(24):
        below = i + 1 < 24 and regions[n, i, j] != regions[n, i + 1, j]
        right = j + 1 < 24 and regions[n, i, j] != regions[n, i, j + 1]
        assert edges[n, i, j] == (below or right)
  assert images.shape == (6, 24, 24, 1) and images.dtype == np.float32
  assert 0.0 <= images.min() and images.max() <= 1.0


def test_generator_is_deterministic_and_every_image_has_shapes():
  a = shapes.generate(np.random.default_rng(7), 32, size=32)
  b = shapes.generate(np.random.default_rng(7), 32, size=32)
  c = shapes.generate(np.random.default_rng(8), 32, size=32)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a['inputs'], c['inputs'])
  _, regions = shapes.render(np.random.default_rng(7), 32, size=32, max_shapes=4)
  assert all((r > 0).any() for r in regions)  # at least one shape is visible in each image
  assert regions.max() <= 4 and (a['edges'].sum(axis=(1, 2)) > 0).all()


def test_rendering_in_chunks_gives_the_same_images(monkeypatch):
  whole = shapes.generate(np.random.default_rng(9), 10, size=16)
  monkeypatch.setattr(shapes, '_CHUNK', 3)  # 3 + 3 + 3 + 1
  chunked = shapes.generate(np.random.default_rng(9), 10, size=16)
  for k in whole:
    np.testing.assert_array_equal(whole[k], chunked[k])


def test_noise_free_images_are_piecewise_constant_grey_levels_of_the_regions():
  images, regions = shapes.render(np.random.default_rng(1), 4, size=32, noise=0.0,
                                  texture=0.0, ramp=0.0, blur=0.0)
  for image, region in zip(images[..., 0], regions):
    for r in np.unique(region):
      assert np.ptp(image[region == r]) == 0.0
    levels = sorted(float(image[region == r][0]) for r in np.unique(region))
    assert min(np.diff(levels), default=1.0) >= 0.7 * 0.7 / 5 - 1e-6


def test_task_train_batches_are_a_function_of_seed_and_step_and_splits_are_fixed():
  task = tasks.build('edges', size=16, validation_size=8, test_size=8)
  sampler = task.train_sampler(4, seed=1)
  np.testing.assert_array_equal(sampler.batch(5)['inputs'], sampler.batch(5)['inputs'])
  assert not np.array_equal(sampler.batch(5)['inputs'], sampler.batch(6)['inputs'])
  val, test = task.splits()['validation'], task.splits()['test']
  assert val['inputs'].shape == (8, 16, 16, 1) and val['edges'].shape == (8, 16, 16)
  assert not np.array_equal(val['inputs'], test['inputs'])
  again = tasks.build('edges', size=16, validation_size=8, test_size=8).splits()['test']
  np.testing.assert_array_equal(again['edges'], test['edges'])


def test_task_reads_images_only():
  task = tasks.build('edges')
  task.check_input_kind('image', 'cnn')
  with pytest.raises(ConfigError, match="cannot feed model 'lstm'"):
    task.check_input_kind('sequence', 'lstm')


# --------------------------------------------------------------------------------------------
# Baselines and loss


def test_sobel_and_canny_go_through_the_same_scoring():
  data = shapes.generate(np.random.default_rng(0), 12, size=32, noise=0.0, texture=0.0,
                         blur=0.5)
  images, truth = data['inputs'], data['edges']
  sobel = em.sobel_maps(images)
  assert sobel.shape == truth.shape and sobel.max() == pytest.approx(1.0)
  assert em.evaluate(sobel, truth, 1)['ods_f'] > 0.8  # clean images: easy
  best = em.select_canny(images, truth, 1, sigmas=(1.0, 2.0), highs=(0.05, 0.2))
  grid = [em.canny_scores(images, truth, 1, s, h)['f'] for s in (1.0, 2.0) for h in (0.05, 0.2)]
  assert best['f'] == pytest.approx(max(grid)) and best['f'] > 0.8
  again = em.evaluate(em.canny_maps(images, best['sigma'], best['high']), truth, 1,
                      thresholds=(0.5,))
  assert again['ods_f'] == pytest.approx(best['f'])
  # noise costs Sobel more than the smoothing Canny
  noisy = shapes.generate(np.random.default_rng(0), 12, size=32, noise=0.15)
  noisy_sobel = em.evaluate(em.sobel_maps(noisy['inputs']), noisy['edges'], 1)['ods_f']
  noisy_canny = em.select_canny(noisy['inputs'], noisy['edges'], 1)['f']
  assert noisy_canny > noisy_sobel


def test_class_balanced_bce_by_hand():
  logits = jnp.array([[[2.0, -1.0], [0.0, 1.0]]])
  edges = jnp.array([[[1, 0], [0, 0]]])
  softplus = lambda z: math.log1p(math.exp(z))
  beta = 3 / 4  # three of four pixels are not edges
  expected = (beta * softplus(-2.0) +
              (1 - beta) * (softplus(-1.0) + softplus(0.0) + softplus(1.0))) / 4
  got = edges_task.balanced_bce(logits, edges)
  assert got.shape == (1,) and float(got[0]) == pytest.approx(expected, rel=1e-6)


def test_pooled_logits_are_upsampled_to_the_input():
  logits = np.linspace(-3, 3, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 1)
  assert edges_task.full_resolution(logits, (4, 4)).shape == (2, 4, 4)
  up = np.asarray(edges_task.full_resolution(logits, (16, 16)))
  assert up.shape == (2, 16, 16)
  assert logits.min() <= up.min() and up.max() <= logits.max()  # bilinear: no overshoot
  probs = edges_task.EdgeDetection.probabilities(logits, np.zeros((2, 8, 8, 1)))
  assert probs.shape == (2, 8, 8) and ((0 < probs) & (probs < 1)).all()


# --------------------------------------------------------------------------------------------
# End to end


def test_quick_run_reports_ods_f_next_to_the_baselines(tmp_path):
  from tests.test_experiments import get_config  # pylint: disable=g-import-not-at-top
  config = get_config('edges', 'quick')
  config.task.update(validation_size=8, test_size=8)
  config.train.update(steps=4, log_every=2, eval_every=0, checkpoint_every=0)
  results = train.train_and_evaluate(config, str(tmp_path))
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['target_metric'] == 'ods_f'
  for split in ('validation', 'test'):
    metrics = saved[split]
    for key in ('ods_f', 'ods_threshold', 'ods_precision', 'ods_recall', 'ois_f', 'ap',
                'sobel_ods_f', 'canny_ods_f', 'canny_sigma'):
      assert key in metrics and 0.0 <= metrics[key] <= max(1.0, metrics[key])
  task = tasks.build('edges', **{k: v for k, v in config.task.items() if k != 'name'})
  test = task.splits()['test']
  sobel = em.evaluate(em.sobel_maps(test['inputs']), test['edges'], 1.0)['ods_f']
  assert saved['test']['sobel_ods_f'] == pytest.approx(sobel)
  assert results['test']['ods_f'] == saved['test']['ods_f']
  assert saved['baselines']['canny']['ods_f'] == saved['test']['canny_ods_f']
  assert saved['beats_baselines'] == {
      k: saved['test']['ods_f'] > saved['test'][f'{k}_ods_f'] for k in ('sobel', 'canny')}
  assert {'plots/edges_test.png', 'plots/edges_pr.png',
          'plots/edges_photos.png'} <= set(results['plots'])
  assert os.path.exists(tmp_path / 'plots' / 'edges_photos.png')
