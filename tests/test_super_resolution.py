"""Super-resolution: metrics against scikit-image and by hand, the sub-pixel shuffle, the
bicubic baseline, the patch sampler, DIV2K on `tfds.testing.mock_data`, and a quick run."""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color
import skimage.metrics
import tensorflow_datasets as tfds

from comparenets import tasks
from comparenets import train
from comparenets.data import photos
from comparenets.errors import ConfigError, DatasetNotFoundError
from comparenets.metrics import images as image_metrics
from comparenets.models.base import Features
from comparenets.models.heads import SubPixelHead, depth_to_space, space_to_depth
from comparenets.tasks import super_resolution as sr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(arg):
  spec = importlib.util.spec_from_file_location(
      'super_resolution_experiment', os.path.join(ROOT, 'experiments', 'super_resolution.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _degraded():
  """A real photo's luminance and a blurred, noisy copy of it."""
  y = image_metrics.luminance(photos.load_photos(['coins'])['coins'])[..., 0].astype(np.float64)
  rng = np.random.default_rng(0)
  blurred = (y + np.roll(y, 1, 0) + np.roll(y, 1, 1)) / 3
  return y, np.clip(blurred + rng.normal(0, 0.03, y.shape), 0, 1)


def test_psnr_and_ssim_match_scikit_image():
  y, x = _degraded()
  assert image_metrics.psnr(x, y) == pytest.approx(
      skimage.metrics.peak_signal_noise_ratio(y, x, data_range=1.0), abs=1e-9)
  expected = skimage.metrics.structural_similarity(
      x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
  assert image_metrics.ssim(x, y) == pytest.approx(expected, abs=1e-9)
  assert 0.3 < expected < 0.95  # a case where a wrong window or constant would show
  assert image_metrics.ssim(x[..., None], y[..., None]) == image_metrics.ssim(y, x)


def test_psnr_and_ssim_hand_values():
  zeros = np.zeros((16, 16))
  assert image_metrics.psnr(zeros + 0.1, zeros) == pytest.approx(20.0)  # MSE 0.01
  assert image_metrics.psnr(zeros + 0.5, zeros, data_range=0.5) == pytest.approx(0.0)
  assert image_metrics.psnr(zeros, zeros) == float('inf')
  # constant images: no variance, so SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1)
  c1 = 0.01 ** 2
  assert image_metrics.ssim(zeros + 0.5, zeros + 0.25) == pytest.approx(
      (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1))
  y, _ = _degraded()
  assert image_metrics.ssim(y, y) == pytest.approx(1.0)
  assert image_metrics.ssim(y, 1 - y) < 0
  np.testing.assert_array_equal(image_metrics.crop_border(np.arange(25).reshape(5, 5), 2),
                                [[12]])
  with pytest.raises(ValueError, match='at least 11x11'):
    image_metrics.ssim(zeros[:10, :10], zeros[:10, :10])


def test_luminance_is_bt601_as_in_rgb2ycbcr():
  rgb = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
  np.testing.assert_allclose(image_metrics.luminance(rgb)[:, 0],
                             np.array([16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966]) / 255,
                             atol=1e-6)
  photo = photos.load_photos(['chelsea'])['chelsea']
  np.testing.assert_allclose(image_metrics.luminance(photo)[..., 0],
                             skimage.color.rgb2ycbcr(photo)[..., 0] / 255, atol=1e-5)


def test_photos_are_float_rgb_and_read_only():
  loaded = photos.load_photos(['camera', 'astronaut'])
  assert list(loaded) == ['camera', 'astronaut']
  assert loaded['camera'].shape == (512, 512, 3) and loaded['camera'].dtype == np.float32
  np.testing.assert_array_equal(loaded['camera'][..., 0], loaded['camera'][..., 2])  # gray
  assert 0.0 <= loaded['astronaut'].min() and loaded['astronaut'].max() <= 1.0
  assert not loaded['camera'].flags.writeable
  with pytest.raises(ConfigError, match="unknown photo 'lena'"):
    photos.load_photos(['lena'])


def test_depth_to_space_by_hand_and_as_the_inverse_of_space_to_depth():
  x = jnp.arange(8.0).reshape(1, 1, 1, 8)  # 2x2 sub-pixels of 2 channels
  out = depth_to_space(x, 2)
  assert out.shape == (1, 2, 2, 2)
  # out[i*s + dy, j*s + dx, c] = x[i, j, (dy*s + dx)*C + c]
  np.testing.assert_array_equal(out[0, :, :, 0], [[0, 2], [4, 6]])
  np.testing.assert_array_equal(out[0, :, :, 1], [[1, 3], [5, 7]])
  x = jnp.arange(2 * 9.0).reshape(1, 1, 2, 9)  # two LR pixels side by side, x3, 1 channel
  np.testing.assert_array_equal(depth_to_space(x, 3)[0, :, :, 0],
                                [[0, 1, 2, 9, 10, 11], [3, 4, 5, 12, 13, 14],
                                 [6, 7, 8, 15, 16, 17]])
  r = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 4 * 3))
  np.testing.assert_array_equal(space_to_depth(depth_to_space(r, 2), 2), r)
  hr = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 12, 3))
  np.testing.assert_array_equal(depth_to_space(space_to_depth(hr, 4), 4), hr)


def test_subpixel_head_is_fully_convolutional():
  head = SubPixelHead(scale=3, channels=1, zero_init=False)
  feats = Features(per_position=jnp.ones((1, 5, 7, 8)), summary=jnp.ones((1, 8)))
  variables = head.init(jax.random.PRNGKey(0), feats)
  assert head.apply(variables, feats).shape == (1, 15, 21, 1)
  bigger = Features(per_position=jnp.ones((2, 9, 4, 8)), summary=jnp.ones((2, 8)))
  assert head.apply(variables, bigger).shape == (2, 27, 12, 1)
  zero = SubPixelHead(scale=2)
  assert not np.any(zero.apply(zero.init(jax.random.PRNGKey(0), feats), feats))


def test_downscale_is_antialiased_bicubic():
  stripes = np.tile(np.array([0.0, 1.0], np.float32), 30)[None, :, None].repeat(30, 0)
  low = sr.downscale(stripes, 3)  # point sampling would give alternating 0 and 1
  assert low.shape == (10, 20, 1)
  np.testing.assert_allclose(low[:, 2:-2], 0.5, atol=0.05)
  flat = np.full((12, 12, 1), 0.3, np.float32)
  np.testing.assert_allclose(sr.downscale(flat, 4), 0.3, atol=1e-6)
  np.testing.assert_allclose(sr.upscale(jnp.asarray(flat[:3, :3]), 4), flat, atol=1e-6)
  with pytest.raises(ValueError, match='multiples'):
    sr.downscale(flat[:10], 4)


def _small(**kwargs):
  kwargs = {'test_photos': 'chelsea', 'validation_photos': 'coins', **kwargs}
  return tasks.build('super_resolution', **kwargs)


def test_held_out_whole_photos_and_tiles():
  task = _small(scale=3, eval_tile=60)
  data = task.data()
  assert [p.name for p in data['test']] == ['chelsea']
  assert [p.name for p in data['validation']] == ['coins']
  chelsea = data['test'][0]
  assert chelsea.hr.shape == (300, 450, 1) and chelsea.lr.shape == (100, 150, 1)
  test = task.splits()['test']
  assert test['inputs'].shape == (5 * 7, 20, 20, 1) and test['target'].shape == (35, 60, 60, 1)
  j = 8  # second row, second column
  np.testing.assert_array_equal(test['origin'][j], (60, 60))
  np.testing.assert_array_equal(test['target'][j], chelsea.hr[60:120, 60:120])
  np.testing.assert_array_equal(test['inputs'][j], chelsea.lr[20:40, 20:40])
  read, weights, _, _ = data['train']
  names = {read(i).name for i in range(len(weights))}
  assert names == set(photos.names()) - {'chelsea', 'coins'}


def test_sampler_is_a_pure_function_of_seed_and_step_with_aligned_patches():
  task = _small(scale=2, patch=32)
  a, b = task.train_sampler(8, seed=3), task.train_sampler(8, seed=3)
  first = a.batch(5)
  assert first['inputs'].shape == (8, 16, 16, 1) and first['target'].shape == (8, 32, 32, 1)
  for k in first:
    np.testing.assert_array_equal(first[k], b.batch(5)[k])
  assert not np.array_equal(first['target'], a.batch(6)['target'])
  assert not np.array_equal(first['target'], task.train_sampler(8, seed=4).batch(5)['target'])
  # every LR patch (flips and rotations included) is its HR patch downscaled, away from the
  # patch's border where the whole image's neighbours enter the bicubic kernel
  for lr, hr in zip(first['inputs'], first['target']):
    np.testing.assert_allclose(sr.downscale(hr, 2)[2:-2, 2:-2], lr[2:-2, 2:-2], atol=2e-3)


def test_a_zero_head_is_exactly_bicubic_and_the_metrics_say_so():
  config = _config('quick')
  config.task.update(test_photos='chelsea', validation_photos='coins')
  setup = train.build_setup(config)
  batch = setup.task.train_sampler(2, 0).batch(0)
  variables = setup.model.init(jax.random.PRNGKey(0), *setup.task.adapt(batch, 'image'))
  predict = tasks.make_predict(setup.task, setup.model, 'image', variables, batch_size=1)
  metrics = setup.task.split_metrics(predict, setup.task.splits()['test'])
  assert metrics['psnr'] == metrics['bicubic_psnr'] and metrics['ssim'] == metrics['bicubic_ssim']
  assert metrics['psnr_gain'] == 0.0
  chelsea = setup.task.data()['test'][0]
  up = np.asarray(sr.upscale(chelsea.lr, 2))
  crop = lambda x: image_metrics.crop_border(x, 2)
  assert metrics['bicubic_psnr'] == pytest.approx(
      skimage.metrics.peak_signal_noise_ratio(crop(chelsea.hr), crop(np.clip(up, 0, 1)),
                                              data_range=1.0), abs=1e-4)
  assert 25 < metrics['bicubic_psnr'] < 40
  per_example = setup.task.per_example(jnp.zeros_like(batch['target']), batch)
  np.testing.assert_allclose(per_example['loss'], per_example['bicubic_loss'])


def test_config_errors():
  with pytest.raises(ConfigError, match='patch=25 must be a multiple of scale=2'):
    tasks.build('super_resolution', patch=25)
  with pytest.raises(ConfigError, match='must be one of 2, 3, 4'):
    tasks.build('super_resolution', scale=5)
  with pytest.raises(ConfigError, match='must name bundled photos'):
    tasks.build('super_resolution', test_photos='lena')
  task = tasks.build('super_resolution', scale=2)
  with pytest.raises(ConfigError, match=r'keeps the resolution \(cnn with pool=none\)'):
    task.reconstruct(jnp.zeros((1, 8, 8, 1)), jnp.zeros((1, 8, 8, 1)))


def test_div2k_from_tfds_mock_data():
  with tfds.testing.mock_data(num_examples=12):
    task = tasks.build('super_resolution', dataset='div2k', scale=2, patch=8, eval_tile=16,
                       div2k_validation_images=3, max_test_images=5)
    data = task.data()
    splits = task.splits()
    batch = task.train_sampler(8, seed=0).batch(0)
    held_out = list(data['validation']) + list(data['test'])  # read when asked for
  assert len(data['validation']) == 3 and len(data['test']) == 5
  for pair in held_out:
    assert pair.hr.shape == (2 * pair.lr.shape[0], 2 * pair.lr.shape[1], 1)
    assert 16 / 255 - 1e-6 <= pair.hr.min() and pair.hr.max() <= 235 / 255 + 1e-6
  assert splits['test']['target'].shape[1:] == (16, 16, 1)
  assert splits['test']['inputs'].shape[1:] == (8, 8, 1)
  assert batch['inputs'].shape == (8, 4, 4, 1) and batch['target'].shape == (8, 8, 8, 1)


def test_missing_div2k_is_one_message_saying_how_to_prepare_it(tmp_path):
  with pytest.raises(DatasetNotFoundError, match=r"TFDS dataset 'div2k/bicubic_x4' is not "
                     r"prepared in .*nothing; .*tfds build div2k/bicubic_x4"):
    tasks.build('super_resolution', dataset='div2k', scale=4,
                data_dir=str(tmp_path / 'nothing')).splits()


def test_quick_run_reports_model_and_bicubic(tmp_path):
  config = _config('quick')
  config.task.update(test_photos='chelsea', validation_photos='coins')
  config.train.update(steps=30, eval_every=0, checkpoint_every=30, log_every=10)
  results = train.train_and_evaluate(config, str(tmp_path))
  saved = json.loads((tmp_path / 'results.json').read_text())
  test = saved['test']
  assert saved['target_metric'] == 'psnr'
  assert test['psnr_gain'] == pytest.approx(test['psnr'] - test['bicubic_psnr'])
  assert test['psnr_gain'] > 0  # even 30 steps from bicubic improve on it
  assert set(saved['test_images']) == {'chelsea'}
  assert saved['test_images']['chelsea']['psnr'] == pytest.approx(test['psnr'])
  assert saved['baselines'] == {'bicubic': {'psnr': pytest.approx(test['bicubic_psnr']),
                                            'ssim': pytest.approx(test['bicubic_ssim'])}}
  assert saved['beats_baselines_everywhere'] is True
  assert 'psnr' in saved['validation'] and results['params']['head'] == 3 * 3 * 32 * 4 + 4
  assert (tmp_path / 'plots' / 'super_resolution.png').is_file()
