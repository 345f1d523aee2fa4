"""The song task: Bach chorales from music21 as piano rolls, the splits by piece, the loss against
NumPy, the baselines on a hand-made roll, a missing music21, and a quick run of every family."""

import math
import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from music21 import converter, corpus, note, stream

from comparenets import tasks
from comparenets import train
from comparenets.data import chorales
from comparenets.errors import DatasetNotFoundError
from comparenets.experiment import load_config
from comparenets.tasks import song

# bwv66.6's first three beats, read by hand from music21's listing of the score
# (`corpus.parse('bach/bwv66.6').show('text')`), as MIDI keys per eighth note:
#   soprano C#5 (73) B4 (71) | A4 (69, a quarter) | B4 (71, a quarter)
#   alto    E4 (64, a quarter) | F#4 (66, a quarter) | E4 (64, a quarter)
#   tenor   A3 (57) B3 (59) | C#4 (61, a quarter) | B3 (59, a quarter)
#   bass    A3 (57) G#3 (56) | F#3 (54, a quarter) | G#3 (56, a quarter)
# (tenor and bass start on the same A3: one key)
BWV66_6_EIGHTHS = [{57, 64, 73}, {56, 59, 64, 71}, {54, 61, 66, 69}, {54, 61, 66, 69},
                   {56, 59, 64, 71}, {56, 59, 64, 71}]
# beat 6 (quarter-note offset 5.0): soprano C#5 a quarter, alto E4 then A4 (69), tenor A3 then
# E4 (64), bass A3 then C#3 (49), eighths
BWV66_6_OFFSET_5 = [{57, 64, 73}, {49, 64, 69, 73}]


def keys(roll, step):
  return set(np.flatnonzero(roll[step]).tolist())


def test_known_chorale_converts_to_the_notes_read_by_hand():
  score = corpus.parse('bach/bwv66.6')
  roll = chorales.piano_roll(score, 2)
  assert roll.shape == (72, 128)  # ten measures: a quarter pickup, eight of 4/4, three beats
  assert [keys(roll, t) for t in range(6)] == BWV66_6_EIGHTHS
  assert [keys(roll, t) for t in (10, 11)] == BWV66_6_OFFSET_5
  sixteenths = chorales.piano_roll(score, 4)
  assert sixteenths.shape == (144, 128)
  assert [keys(sixteenths, t) for t in range(0, 12, 2)] == BWV66_6_EIGHTHS
  assert keys(sixteenths, 1) == keys(sixteenths, 0) and keys(sixteenths, 3) == keys(sixteenths, 2)


def test_short_off_grid_notes_ties_and_grace_notes():
  part = stream.Part()
  part.insert(0.0, note.Note('C4', quarterLength=0.25))
  part.insert(0.25, note.Note('D4', quarterLength=0.25))     # between two eighth-note steps
  tied = [note.Note('E4', quarterLength=0.5), note.Note('E4', quarterLength=1.0)]
  part.insert(0.5, tied[0])
  part.insert(1.0, tied[1])
  part.insert(2.0, note.Note('G4').getGrace())                # a grace note: no duration
  part.insert(2.0, note.Note('F4', quarterLength=0.5))
  roll = chorales.piano_roll(part, 2)
  assert [keys(roll, t) for t in range(len(roll))] == [{60}, {64}, {64}, {64}, {65}]
  assert keys(chorales.piano_roll(part, 4), 1) == {62}


def test_splits_keep_variants_of_a_chorale_together_and_are_fixed():
  names = [f'bwv{i}.{j}' for i in range(1, 41) for j in (1, 2)] + ['bwv3.1-a', 'bwv7.2-sc']
  parts = chorales.split_pieces(names, 0.15, 0.15, seed=0)
  assert sorted(sum(parts.values(), [])) == sorted(names)
  for split, members in parts.items():
    assert members == sorted(members)
    others = {chorales.piece_group(n) for s, m in parts.items() if s != split for n in m}
    assert not {chorales.piece_group(n) for n in members} & others
  for split in ('test', 'validation'):
    assert len({chorales.piece_group(n) for n in parts[split]}) == round(0.15 * 80)
  assert parts == chorales.split_pieces(list(reversed(names)), 0.15, 0.15, seed=0)
  assert parts != chorales.split_pieces(names, 0.15, 0.15, seed=1)


def test_loss_and_metrics_against_numpy():
  rng = np.random.default_rng(0)
  task = tasks.build('song')
  logits = rng.normal(size=(3, 5, 53)).astype(np.float32)
  target = (rng.random((3, 5, 53)) < 0.1).astype(np.uint8)
  mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.float32)
  per = task.per_example(jnp.asarray(logits), {'target': target, 'mask': mask})
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum(-1)
  np.testing.assert_allclose(per['nll_sum'], (bce * mask).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(per['loss'], (bce * mask).sum(-1) / 5, rtol=1e-5)
  sums = {k: float(np.sum(v)) for k, v in per.items()}
  sums['count'] = 3
  metrics = task.finalize(sums)
  assert metrics['nll'] == pytest.approx((bce * mask).sum() / 9, rel=1e-5)
  on, truth = p > 0.5, target == 1
  real = mask[..., None] > 0
  tp, fp, fn = ((a & real).sum() for a in (on & truth, on & ~truth, ~on & truth))
  assert metrics['frame_accuracy'] == pytest.approx(tp / (tp + fp + fn))


def _roll(steps, length):
  roll = np.zeros((length, chorales.HIGHEST_KEY - chorales.LOWEST_KEY + 1), np.uint8)
  for t, on in enumerate(steps):
    roll[t, list(on)] = 1
  return roll


def test_baselines_on_a_hand_made_roll():
  task = tasks.build('song')
  task._pieces = {  # pylint: disable=protected-access
      'train': {'a': _roll([{0}, {0, 1}, {1}, {1}], 4), 'b': _roll([{0}, set()], 2)},
      'validation': {'c': _roll([{0}, {0}], 2)},
      'test': {'d': _roll([{0}, {0}, {1}], 3)}}
  base = task.baselines('test')
  # previous frame: within pieces (not from a's end to b's start) 5 keys were on and 3 stayed
  # on; of the 4 x 53 - 5 = 207 that were off, 1 came on
  stay, start = 3 / 5, 1 / 207
  nll = -(math.log(stay) + math.log(1 - stay) + math.log(start) + 103 * math.log(1 - start))
  assert base['previous_frame']['nll'] == pytest.approx(nll / 2, rel=1e-5)
  assert base['previous_frame']['frame_accuracy'] == pytest.approx(1 / 3)  # tp 1, fp 1, fn 1
  # key frequency over 6 training steps, add-one smoothed: keys 0 and 1 (3 + 1) / 8, the others
  # 1 / 8; both test steps have one of the two on and the other off
  nll = 2 * math.log(2) + 51 * math.log(8 / 7)
  assert base['key_frequency']['nll'] == pytest.approx(nll, rel=1e-5)
  assert base['key_frequency']['frame_accuracy'] == 0.0  # no key above 0.5: nothing called on


def test_training_windows_come_from_one_piece_each():
  task = tasks.build('song', length=4)
  task._pieces = {  # pylint: disable=protected-access
      'train': {'a': _roll([{t} for t in range(10)], 10), 'b': _roll([{40}, {41}], 2)},
      'validation': {}, 'test': {}}
  batch = task.train_sampler(16, seed=0).batch(0)
  assert batch['inputs'].shape == (16, 4, 53) and batch['mask'].shape == (16, 4)
  for inputs, target, mask in zip(batch['inputs'], batch['target'], batch['mask']):
    real = int(mask.sum())
    assert real in (1, 4) and mask[:real].all()
    np.testing.assert_array_equal(inputs[1:real], target[:real - 1])  # the next step
    first = inputs[0].argmax()
    assert first in range(10) and real == 4 or first == 40 and target[0].argmax() == 41


def test_a_missing_music21_is_one_error_naming_the_install(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, 'music21', None)  # `import music21` raises ImportError
  task = tasks.build('song', cache_dir=str(tmp_path))
  with pytest.raises(DatasetNotFoundError) as error:
    task.splits()
  message = str(error.value)
  assert "music21 is not installed" in message and "pip install 'music21>=10.5,<11'" in message
  assert '\n' not in message
  assert not os.listdir(tmp_path)  # nothing half-written


@pytest.fixture(scope='module')
def small_cache(tmp_path_factory):
  """A cache of the first 14 chorale files, converted by the real code (the whole corpus
  takes 10 to 20 s to parse)."""
  cache = tmp_path_factory.mktemp('chorales')
  paths = chorales.chorale_paths()[:14]
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(chorales, 'chorale_paths', lambda: paths)
    rolls = chorales.load(str(cache), 2)
  assert len(rolls) >= 12
  return str(cache)


def test_cache_is_written_once_and_read_back(small_cache):
  path = chorales.cache_path(small_cache, 2)
  assert os.listdir(small_cache) == [os.path.basename(path)]
  chorales.load.cache_clear()
  reread = chorales.load(small_cache, 2)
  assert os.listdir(small_cache) == [os.path.basename(path)]
  for path in chorales.chorale_paths()[:3]:  # bwv1.6 adds a horn: not a four-part chorale
    score = converter.parse(path)
    name = chorales.piece_name(path)
    if len(score.parts) == 4:
      np.testing.assert_array_equal(reread[name], chorales.piano_roll(score, 2))
    else:
      assert name not in reread
  assert 'bwv1.6' not in reread and len(reread) >= 12


def test_quick_run_of_every_family(small_cache, tmp_path):
  for model in ('tcn', 'rnn', 'lstm', 'gru'):
    config = load_config('song', f'model={model},quick', {'task.cache_dir': small_cache})
    config.model.update({'channels': 16} if model == 'tcn' else {'hidden': 16})
    config.train.update(steps=4, log_every=2, eval_every=0, checkpoint_every=0,
                        parallel='none')
    results = train.train_and_evaluate(config, str(tmp_path / model))
    assert results['steps'] == 4 and results['target_metric'] == 'nll'
    assert 0 < results['test']['nll'] < 60 and 0 <= results['test']['frame_accuracy'] <= 1
    assert set(results['baselines']) == {'previous_frame', 'key_frequency'}
    assert results['beats_baselines_everywhere'] in (True, False)
    assert os.path.exists(tmp_path / model / 'plots' / 'piano_roll.png')


def test_song_needs_a_causal_sequence_model():
  task = song.Song()
  with pytest.raises(ValueError, match="cannot feed model 'cnn'"):
    task.check_input_kind('image', 'cnn')
