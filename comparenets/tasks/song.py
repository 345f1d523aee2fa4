"""Polyphonic music: next-step prediction of J. S. Bach's chorales as piano rolls (music21).

The data is music21's own corpus (`comparenets.data.chorales`: the four-part chorales, one step
per eighth note by default, cached once), cropped to the 53 MIDI keys the chorales use (36 to
88). Pieces, not
steps, are split into train / validation / test (seeded; variants of one chorale stay together).

The model reads the frames up to step t and gives, per key, the logit of that key sounding at
step t + 1 (a sigmoid per key: several keys sound at once). As in Bai et al. (2018, JSB Chorales,
after Boulanger-Lewandowski et al., 2012) the metric is the negative log-likelihood per time
step, in nats: the binary cross-entropy summed over keys, averaged over every predicted step of
the split (each piece's first step is not predicted). Frame accuracy is Bay et al.'s (2009)
TP / (TP + FP + FN) over all (step, key) pairs with keys called on at probability > 0.5.

Training batches are windows of ``length + 1`` steps of training pieces (a piece drawn with
probability proportional to its predicted steps, the start uniform; shorter pieces padded and
masked), a pure function of (seed, step). Validation and test read whole pieces, padded on the
right to the split's longest and masked: a causal model's output at a real step never sees the
padding, so each piece is scored exactly as it would be alone.

After training, two baselines are scored on the test pieces by the same code and go into
``results.json`` under 'baselines' (with ``beats_baselines``): 'previous_frame' repeats the
last frame (a key stays on with probability P(on | on), comes on with P(on | off), both counted
on the training pieces, so that its NLL is finite; at threshold 0.5 its frames are the previous
frame's) and 'key_frequency' gives each key its frequency on the training pieces (add-one
smoothed).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import optax

from comparenets import figures
from comparenets.data import chorales
from comparenets.data.pipeline import GeneratedSampler
from comparenets.models.heads import PerPositionHead
from comparenets.tasks.base import Task, make_predict

SPLITS = ('train', 'validation', 'test')


def pad_pieces(rolls: list[np.ndarray], length: int | None = None) -> dict[str, np.ndarray]:
  """Pieces ``[T_i, K]`` as next-step examples padded to ``length`` predicted steps (default:
  the longest piece's): ``inputs`` (steps 0..T-2) and ``target`` (steps 1..T-1), uint8
  ``[N, L, K]``, and ``mask`` float32 ``[N, L]``, 1 on the real steps."""
  length = length or max(len(r) - 1 for r in rolls)
  keys = rolls[0].shape[1]
  out = {'inputs': np.zeros((len(rolls), length, keys), np.uint8),
         'target': np.zeros((len(rolls), length, keys), np.uint8),
         'mask': np.zeros((len(rolls), length), np.float32)}
  for i, roll in enumerate(rolls):
    n = min(len(roll) - 1, length)
    out['inputs'][i, :n] = roll[:n]
    out['target'][i, :n] = roll[1:n + 1]
    out['mask'][i, :n] = 1.0
  return out


@dataclasses.dataclass
class Song(Task):
  cache_dir: str = ''            # '' = $XDG_CACHE_HOME/comparenets (or ~/.cache/comparenets)
  steps_per_quarter: int = 2     # 2: one step per eighth note; 1 as Boulanger-Lewandowski's JSB
  length: int = 64               # predicted steps per training window
  validation_fraction: float = 0.15
  test_fraction: float = 0.15
  split_seed: int = 0

  name = 'song'
  input_kinds = ('sequence',)
  requires_causal = True
  target_metric = 'nll'
  higher_is_better = False
  config_rules = {'steps_per_quarter': {'choices': (1, 2, 4)}, 'length': {'min': 1},
                  'validation_fraction': {'min': 0.05, 'max': 0.4},
                  'test_fraction': {'min': 0.05, 'max': 0.4}, 'split_seed': {'min': 0}}

  def pieces(self) -> dict[str, dict[str, np.ndarray]]:
    """``{split: {name: uint8 roll [T, K]}}``, keys cropped to MIDI ``chorales.LOWEST_KEY``
    to ``chorales.HIGHEST_KEY``."""
    if not hasattr(self, '_pieces'):
      rolls = chorales.load(self.cache_dir, self.steps_per_quarter)
      low, high = chorales.LOWEST_KEY, chorales.HIGHEST_KEY
      names = chorales.split_pieces(list(rolls), self.validation_fraction, self.test_fraction,
                                    self.split_seed)
      self._pieces = {  # pylint: disable=attribute-defined-outside-init
          split: {n: rolls[n][:, low:high + 1].astype(np.uint8) for n in names[split]}
          for split in SPLITS}
      empty = [s for s in SPLITS if not self._pieces[s]]
      if empty:
        raise ValueError(f'no pieces in the {" and ".join(empty)} split of {len(rolls)}')
    return self._pieces

  def splits(self):
    if not hasattr(self, '_splits'):
      self._splits = {  # pylint: disable=attribute-defined-outside-init
          split: pad_pieces(list(p.values())) for split, p in self.pieces().items()}
    return self._splits

  def train_sampler(self, batch_size, seed):
    rolls = list(self.pieces()['train'].values())
    weights = np.array([len(r) - 1 for r in rolls], float)

    def generate(rng, n):
      which = rng.choice(len(rolls), n, p=weights / weights.sum())
      windows = []
      for i in which:
        start = rng.integers(0, max(len(rolls[i]) - 1 - self.length, 0) + 1)
        windows.append(rolls[i][start:start + self.length + 1])
      return pad_pieces(windows, self.length)

    return GeneratedSampler(generate, batch_size, seed)

  def adapt(self, batch, kind):
    return batch['inputs'].astype(jnp.float32), None

  def head(self):
    return PerPositionHead(chorales.HIGHEST_KEY - chorales.LOWEST_KEY + 1)

  def per_example(self, outputs, batch):
    logits = outputs.astype(jnp.float32)
    target = batch['target'].astype(jnp.float32)
    mask = batch['mask'].astype(jnp.float32)
    nll = (optax.sigmoid_binary_cross_entropy(logits, target).sum(-1) * mask).sum(-1)
    on, truth = logits > 0, target > 0.5
    count = lambda hits: (hits.sum(-1) * mask).sum(-1).astype(jnp.float32)
    return {'loss': nll / mask.shape[-1], 'nll_sum': nll, 'steps': mask.sum(-1),
            'tp': count(on & truth), 'fp': count(on & ~truth), 'fn': count(~on & truth)}

  def finalize(self, sums):
    tp, fp, fn = (float(sums[k]) for k in ('tp', 'fp', 'fn'))
    return {'loss': float(sums['loss']) / float(sums['count']),
            'nll': float(sums['nll_sum']) / float(sums['steps']),
            'frame_accuracy': tp / max(tp + fp + fn, 1.0)}

  def baseline_probabilities(self, split: str = 'test') -> dict[str, np.ndarray]:
    """``{name: [N, L, K]}`` probabilities of each key at each next step of ``split``'s pieces,
    from statistics of the training pieces (see the module docstring)."""
    train = np.concatenate(list(self.pieces()['train'].values())).astype(bool)
    now, after = train[:-1], train[1:]
    # pairs of steps inside one piece only: drop the pairs that cross from a piece to the next
    ends = np.cumsum([len(r) for r in self.pieces()['train'].values()])[:-1] - 1
    keep = np.ones(len(now), bool)
    keep[ends] = False
    now, after = now[keep], after[keep]
    stay = (after & now).sum() / max(now.sum(), 1)
    start = (after & ~now).sum() / max((~now).sum(), 1)
    frequency = (train.sum(0) + 1.0) / (len(train) + 2.0)
    inputs = self.splits()[split]['inputs'].astype(bool)
    return {'previous_frame': np.where(inputs, stay, start),
            'key_frequency': np.broadcast_to(frequency, inputs.shape)}

  def baselines(self, split: str = 'test') -> dict[str, dict[str, float]]:
    """The baselines scored like the model (probabilities as logits, through `per_example`)."""
    out = {}
    for name, p in self.baseline_probabilities(split).items():
      p = np.clip(p, 1e-7, 1 - 1e-7)
      out[name] = self.score(np.log(p) - np.log1p(-p), split)
    return out

  def write_artifacts(self, model, variables, workdir, rng):
    del workdir, rng
    base = self.baselines('test')
    logits = make_predict(self, model, 'sequence', variables)(self.splits()['test'])
    model_metrics = self.score(logits, 'test')
    beats = {name: model_metrics['nll'] < b['nll'] for name, b in base.items()}
    return {'baselines': base, 'beats_baselines': beats,
            'beats_baselines_everywhere': all(beats.values())}

  def figures(self, predict):
    """The first test piece (up to 64 quarter notes): its piano roll and the model's
    probabilities for each step (from the steps before it)."""
    test = self.splits()['test']
    name = next(iter(self.pieces()['test']))
    steps = int(test['mask'][0].sum())
    steps = min(steps, 64 * self.steps_per_quarter)
    logits = predict({k: v[:1] for k, v in test.items()})[0, :steps]
    return {'piano_roll': figures.piano_roll(
        test['target'][0, :steps], 1.0 / (1.0 + np.exp(-logits)), chorales.LOWEST_KEY,
        self.steps_per_quarter,
        title=f'{name} (test): true notes and next-step probabilities, from step 1')}
