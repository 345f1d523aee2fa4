"""Moving digits: the clip generator, the task's readings and the video backbones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from comparenets import models
from comparenets import tasks
from comparenets.data import digits
from comparenets.data import moving_digits as md
from comparenets.errors import ConfigError

IMAGES = digits.load_splits()['train']['inputs']


def _clips(n=64, seed=0, **kwargs):
  return md.make_clips(IMAGES, n, np.random.default_rng(seed), **kwargs)


def test_clip_shapes_range_and_determinism():
  a = _clips(frames=5, canvas=12, channels=3)
  assert a['inputs'].shape == (64, 5, 12, 12, 3) and a['inputs'].dtype == np.float32
  assert a['inputs'].min() >= 0.0 and a['inputs'].max() <= 1.0
  assert a['label'].dtype == np.int32 and set(a['label']) <= set(range(8))
  np.testing.assert_array_equal(a['inputs'], _clips(frames=5, canvas=12, channels=3)['inputs'])
  assert not np.array_equal(a['inputs'], _clips(seed=1, frames=5, canvas=12,
                                                channels=3)['inputs'])
  up = _clips(4, canvas=20, scale=2)
  assert up['inputs'].shape == (4, 8, 20, 20, 1)
  splits = md.load_splits(num_train=32, num_eval=16, uint8=True)
  assert {s: v['inputs'].shape for s, v in splits.items()} == {
      'train': (32, 8, 16, 16, 1), 'validation': (16, 8, 16, 16, 1), 'test': (16, 8, 16, 16, 1)}
  assert splits['train']['inputs'].dtype == np.uint8
  np.testing.assert_array_equal(splits['test']['inputs'],
                                md.load_splits(num_train=32, num_eval=16,
                                               uint8=True)['test']['inputs'])


def test_test_clips_show_digits_that_no_training_clip_shows():
  # on an 8x8 canvas a frame is the digit rolled around: find which digit each clip shows
  splits = md.load_splits(num_train=8, num_eval=12, canvas=8)
  images = {s: v['inputs'][..., 0].reshape(len(v['inputs']), -1)
            for s, v in digits.load_splits().items()}
  for split, clips in splits.items():
    for frame in clips['inputs'][:, 0, ..., 0]:
      rolls = np.stack([np.roll(frame, (dy, dx), axis=(0, 1)).ravel()
                        for dy in range(8) for dx in range(8)])
      shows = {s: bool((rolls[:, None] == v[None]).all(-1).any()) for s, v in images.items()}
      assert shows[split] and sum(shows.values()) == 1, (split, shows)


def test_every_frame_is_the_digit_moved_with_wrap_around():
  c = _clips(16, frames=6, canvas=11)
  for i in range(16):
    sprite = np.zeros((11, 11), np.float32)
    sprite[:8, :8] = IMAGES[c['digit'][i], ..., 0]
    for t in range(6):
      dy, dx = c['start'][i] + t * c['velocity'][i]
      expected = np.roll(sprite, (dy, dx), axis=(0, 1))
      np.testing.assert_array_equal(c['inputs'][i, t, ..., 0], expected)
  # the velocity is the label's unit step times a speed in 1..max_speed
  speed = np.abs(c['velocity']).max(1)
  assert set(speed) <= {1, 2}
  np.testing.assert_array_equal(c['velocity'], md.unit_steps(8)[c['label']] * speed[:, None])


@pytest.mark.parametrize('directions', [4, 8])
def test_reversing_a_clip_reverses_its_direction(directions):
  c = _clips(32, frames=7, canvas=13, directions=directions)
  sprites = IMAGES[c['digit'], ..., 0]
  # the reversed clip is the clip that starts where this one ends and moves the other way
  end = (c['start'] + 6 * c['velocity']) % 13
  back = -c['velocity']
  np.testing.assert_array_equal(c['inputs'][:, ::-1, ..., 0],
                                md.render(sprites, end, back, 7, 13))
  steps = md.unit_steps(directions)
  opposite = md.opposite(c['label'], directions)
  np.testing.assert_array_equal(np.sign(back), steps[opposite])
  assert np.all(opposite != c['label'])


def test_a_single_frame_says_nothing_about_the_direction():
  c = _clips(8000, seed=3, frames=4, canvas=8, max_speed=1)
  # the digit's position in any frame is uniform over the canvas whatever the direction: with
  # 8 directions x 64 positions, no direction's histogram departs much from the others
  for t in (0, 3):
    position = (c['start'] + t * c['velocity']) % 8
    cell = position[:, 0] * 8 + position[:, 1]
    counts = np.stack([np.bincount(cell[c['label'] == d], minlength=64) for d in range(8)])
    expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / counts.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 560, chi2  # 441 degrees of freedom; p ~ 1e-4 at 560
  # a least-squares linear classifier of one frame's pixels is at chance on held-out clips
  x = c['inputs'][..., 0]
  last = np.concatenate([x[:, -1].reshape(len(x), -1), np.ones((len(x), 1))], 1)
  weights = np.linalg.lstsq(last[:6000], np.eye(8)[c['label'][:6000]], rcond=None)[0]
  assert np.mean((last[6000:] @ weights).argmax(1) == c['label'][6000:]) < 0.16  # chance 1/8
  # while two frames in order give the direction away: frame 0 moved one step in direction d
  # matches frame 1 best for the true d, and frame 1 moved matches frame 0 for the opposite
  steps = md.unit_steps(8)
  def best_step(a, b):
    moved = np.stack([np.roll(a, tuple(s), axis=(1, 2)) for s in steps], 1)
    return (moved * b[:, None]).sum((2, 3)).argmax(1)
  assert np.mean(best_step(x[:, 0], x[:, 1]) == c['label']) > 0.97
  assert np.mean(best_step(x[:, 1], x[:, 0]) == md.opposite(c['label'], 8)) > 0.97


def test_colours_are_random_per_clip_and_keep_the_digit_visible():
  c = _clips(400, channels=3)
  fg, bg = c['foreground'], c['background']
  assert np.abs(fg - bg).min() >= md.MIN_CONTRAST
  x = c['inputs'][:, 0].reshape(400, -1, 3)
  alpha = _clips(400)['inputs'][:, 0].reshape(400, -1)  # same draws, without the colours
  off = alpha == 0
  np.testing.assert_allclose(x[off], np.broadcast_to(bg[:, None], x.shape)[off], atol=1e-6)
  on = alpha == 1
  np.testing.assert_allclose(x[on], np.broadcast_to(fg[:, None], x.shape)[on], atol=1e-6)
  # colour does not predict the direction: each direction's mean colours are near 0.5
  for d in range(8):
    assert np.abs(bg[c['label'] == d].mean(0) - 0.5).max() < 0.15
    assert np.abs(fg[c['label'] == d].mean(0) - 0.5).max() < 0.15


def _batch(n=3, **task_kwargs):
  task = tasks.build('moving_digits', num_train=16, num_eval=8, **task_kwargs)
  split = task.splits()['test']
  return task, {'inputs': split['inputs'][:n], 'label': split['label'][:n]}


@pytest.mark.parametrize('reading,kind,shape', [
    ('auto', 'video', (3, 8, 16, 16, 3)),
    ('video', 'video', (3, 8, 16, 16, 3)),
    ('auto', 'image', (3, 16, 16, 24)),
    ('channels', 'image', (3, 16, 16, 24)),
    ('frame', 'image', (3, 16, 16, 3)),
    ('auto', 'sequence', (3, 8, 16 * 16 * 3)),
    ('frames', 'sequence', (3, 8, 16 * 16 * 3)),
])
def test_readings(reading, kind, shape):
  task, batch = _batch(channels=3, reading=reading)
  task.check_input_kind(kind, 'm')
  x, mask = task.adapt(batch, kind)
  assert x.shape == shape and mask is None and x.dtype == jnp.float32
  clips = batch['inputs'].astype(np.float32) / 255.0
  x = np.asarray(x)
  if len(shape) == 5:
    np.testing.assert_allclose(x, clips)
  elif shape[-1] == 24:  # frame-major channels: channel 3 t + c is frame t's colour c
    np.testing.assert_allclose(x[..., 3 * 5 + 1], clips[:, 5, ..., 1])
  elif shape[-1] == 3:
    np.testing.assert_allclose(x, clips[:, -1])
  else:
    np.testing.assert_allclose(x[:, 2], clips[:, 2].reshape(3, -1))


@pytest.mark.parametrize('kwargs,kind,message', [
    (dict(reading='frame'), 'video', "model 'm' reads video input but task moving_digits "
     "with reading='frame' gives images of the last frame only; use reading='video' or 'auto'"),
    (dict(reading='video'), 'image', "model 'm' reads image input but task moving_digits with "
     r"reading='video' gives video clips \[B, T, H, W, C\]; use reading='channels', 'frame' or "
     "'auto'"),
    (dict(reading='channels'), 'sequence', "reads sequence input but task moving_digits with "
     "reading='channels' gives images with the frames stacked as channels; use "
     "reading='frames' or 'auto'"),
    (dict(reading='frames'), 'image', "gives sequences of flattened frames"),
    (dict(), 'graph', "it reads graph input and this task gives video or image or sequence"),
])
def test_pairs_that_cannot_work_are_refused(kwargs, kind, message):
  with pytest.raises(ConfigError, match=message):
    tasks.build('moving_digits', **kwargs).check_input_kind(kind, 'm')


def test_bad_task_settings_are_refused():
  with pytest.raises(ConfigError, match='does not fit on a 12x12 canvas; use canvas >= 16'):
    tasks.build('moving_digits', canvas=12, scale=2)
  with pytest.raises(ConfigError, match="field channels must be one of 1, 3, not 2"):
    tasks.build('moving_digits', channels=2)
  with pytest.raises(ConfigError, match="field directions must be one of 4, 8, not 6"):
    tasks.build('moving_digits', directions=6)


def test_every_family_reads_the_task_by_its_input_kind():
  task = tasks.build('moving_digits')
  for name in models.names():
    task.check_input_kind(models.input_kind(name), name)
  assert {models.input_kind(n) for n in ('cnn3d', 'cnn_rnn', 'cnn_lstm', 'cnn_gru')} == {'video'}


VIDEO = jax.random.uniform(jax.random.PRNGKey(0), (2, 6, 8, 8, 3))


def _init_apply(module, x):
  """Variables and output, from one compiled program."""
  out, variables = jax.jit(module.init_with_output)(jax.random.PRNGKey(1), x)
  return variables, out


@pytest.mark.parametrize('kernel', [(3, 3, 3), (2, 3, 1)])
def test_both_conv3d_impls_are_flax_3d_convolution(kernel):
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from comparenets.models.video import Conv3D  # pylint: disable=g-import-not-at-top
  variables = Conv3D(5, kernel).init(jax.random.PRNGKey(2), VIDEO)
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # a non-zero bias
  reference = nn.Conv(5, kernel, padding='SAME').apply(variables, VIDEO)
  for impl in ('stacked', 'xla'):
    np.testing.assert_allclose(Conv3D(5, kernel, impl=impl).apply(variables, VIDEO), reference,
                               atol=1e-5)


def test_cnn3d_shapes_and_receptive_field():
  net = models.build('cnn3d', widths=(4, 6), time_pool_size=2)
  _, f = _init_apply(net, VIDEO)
  assert f.per_position.shape == (2, 1, 2, 2, 6) and f.summary.shape == (2, 24)
  assert net.receptive_field() == (1 + 2 + 1 + 2 * 2 + 2, 1 + 2 + 1 + 2 * 2 + 2)
  _, f = _init_apply(models.build('cnn3d', widths=(4,), global_pool='avg'), VIDEO)
  assert f.per_position.shape == (2, 6, 4, 4, 4) and f.summary.shape == (2, 4)
  with pytest.raises(ValueError, match='needs at least 8 frames of 8x8; this input is 6 '
                     'frames of 8x8'):
    _init_apply(models.build('cnn3d', widths=(4, 4, 4), time_pool_size=2), VIDEO)


def test_cnn_recurrent_shapes():
  x = VIDEO[:, :3]
  net = models.build('cnn_rnn', widths=(4,), hidden=5)  # cnn_lstm: in the test below
  variables, f = _init_apply(net, x)
  assert f.per_position.shape == (2, 3, 5) and f.summary.shape == (2, 5) and net.causal
  assert set(variables['params']) == {'encoder', 'recurrent'}
  # the recurrent net reads each frame's flattened 4x4x4 map
  assert variables['params']['recurrent']['layer0_fwd']['input']['kernel'].shape == (64, 5)
  bi = models.build('cnn_gru', widths=(4,), hidden=3, bidirectional=True)
  _, f = _init_apply(bi, x)
  assert f.per_position.shape == (2, 3, 6) and f.summary.shape == (2, 6) and not bi.causal


def test_cnn_lstm_is_the_conv_stack_on_every_frame_then_the_lstm():
  net = models.build('cnn_lstm', widths=(4, 5), hidden=7)
  variables, f = _init_apply(net, VIDEO)
  params = variables['params']
  encoder, recurrent = net.encoder(parent=None), net.recurrent(parent=None)
  encode = jax.jit(encoder.apply)
  per_frame = jnp.stack([encode({'params': params['encoder']}, VIDEO[:, t]).summary
                         for t in range(VIDEO.shape[1])], axis=1)
  assert per_frame.shape == (2, 6, 5 * 2 * 2)
  expected = jax.jit(recurrent.apply)({'params': params['recurrent']}, per_frame)
  np.testing.assert_allclose(f.per_position, expected.per_position, atol=1e-5)
  np.testing.assert_allclose(f.summary, expected.summary, atol=1e-5)
  # causal: the output at frame t does not change when later frames do
  later = VIDEO.at[:, 4:].set(0.0)
  g = jax.jit(net.apply)(variables, later)
  np.testing.assert_allclose(g.per_position[:, :4], f.per_position[:, :4], atol=1e-6)
  assert not np.allclose(g.per_position[:, 4:], f.per_position[:, 4:], atol=1e-3)


def _frame_order_invariant(net, x, *orders) -> list[bool]:
  """For each order of the frames: is the net's summary the same as for ``x``?"""
  batch = jnp.concatenate([x] + [x[:, np.asarray(order)] for order in orders])
  summary = _init_apply(net, batch)[1].summary.reshape(1 + len(orders), len(x), -1)
  return [bool(np.allclose(s, summary[0], atol=1e-5)) for s in summary[1:]]


def test_cnn3d_sees_the_order_of_the_frames():
  shuffled, reversed_ = [3, 0, 5, 1, 4, 2], [5, 4, 3, 2, 1, 0]
  # the check itself: a 3-D conv that never mixes frames (kernel 1 in time), averaged over
  # time, cannot tell the frames' order, and the check finds it invariant
  blind = models.build('cnn3d', widths=(4,), time_kernel_size=1, global_pool='avg')
  assert _frame_order_invariant(blind, VIDEO, shuffled, reversed_) == [True, True]
  # the default 3x3x3 convolution mixes neighbouring frames: the same check fails for it, even
  # when its map is averaged over time, for shuffled and for reversed frames (the task's
  # opposite direction), and it fails for the CNN-encoder + LSTM too
  net = models.build('cnn3d', widths=(4,), global_pool='avg')
  assert _frame_order_invariant(net, VIDEO, shuffled, reversed_) == [False, False]
  lstm = models.build('cnn_lstm', widths=(4,), hidden=5)
  assert _frame_order_invariant(lstm, VIDEO, shuffled, reversed_) == [False, False]


def test_unknown_video_model_fields_are_refused():
  with pytest.raises(ConfigError, match="model 'cnn_lstm' has no field 'cell'"):
    models.build('cnn_lstm', cell='gru')
  with pytest.raises(ConfigError, match="model 'cnn3d' field pool must be one of"):
    models.build('cnn3d', pool='median')
