"""Character-level language modelling and text generation.

Training batches are random windows of ``length + 1`` characters of the training stream (a pure
function of (seed, step)); validation and test use fixed, non-overlapping windows (at most
``eval_windows`` of them). The model reads ``length`` characters and predicts each next one;
the metric is bits per character. Only causal backbones can do this honestly (a bidirectional
RNN would read the answer), which the train loop checks through ``requires_causal``.

After training the run saves ``samples.txt``: ``num_samples`` continuations of ``seed_text``,
``sample_length`` characters each, sampled at ``temperature``.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from comparenets.data import text as text_data
from comparenets.data.pipeline import GeneratedSampler
from comparenets.models.heads import PerPositionHead
from comparenets.tasks.base import Task
from comparenets import workdir as workdirs

CORPORA = ('stdlib', 'tiny_shakespeare')


def generate(model: nn.Module, variables, seed_ids: np.ndarray, length: int,
             temperature: float, rng) -> np.ndarray:
  """Samples ``length`` ids after ``seed_ids`` with a causal model, one at a time.

  The model runs on a fixed-size buffer (seed + continuation) so that there is one compilation;
  being causal, its output at position i depends only on positions <= i.
  """
  seed_len = len(seed_ids)
  total = seed_len + length
  buf = jnp.zeros((1, total), jnp.int32).at[0, :seed_len].set(jnp.asarray(seed_ids))

  def body(i, carry):
    buf, rng = carry
    logits = model.apply(variables, buf, None)[0, i - 1]
    rng, key = jax.random.split(rng)
    token = jax.random.categorical(key, logits / temperature)
    return buf.at[0, i].set(token.astype(jnp.int32)), rng

  buf, _ = jax.jit(lambda b, r: jax.lax.fori_loop(seed_len, total, body, (b, r)))(buf, rng)
  return np.asarray(buf[0])


@dataclasses.dataclass
class CharLM(Task):
  corpus: str = 'stdlib'
  data_dir: str = ''
  length: int = 128
  embed_dim: int = 64
  eval_windows: int = 512
  seed_text: str = 'def '
  sample_length: int = 300
  num_samples: int = 3
  temperature: float = 0.8

  name = 'char_lm'
  input_kinds = ('sequence',)
  requires_causal = True
  target_metric = 'bpc'
  higher_is_better = False
  config_rules = {'corpus': {'choices': CORPORA}, 'length': {'min': 2},
                  'temperature': {'min': 0.01}}

  def corpus_splits(self) -> dict[str, np.ndarray]:
    if not hasattr(self, '_corpus'):
      self._corpus = (text_data.stdlib_corpus() if self.corpus == 'stdlib' else  # pylint: disable=attribute-defined-outside-init
                      text_data.tfds_corpus(self.corpus, self.data_dir or None))
    return self._corpus

  def _windows(self, stream: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    idx = starts[:, None] + np.arange(self.length + 1)[None]
    w = stream[idx].astype(np.int32)
    return {'inputs': w[:, :-1], 'target': w[:, 1:]}

  def train_sampler(self, batch_size, seed):
    stream = self.corpus_splits()['train']
    high = len(stream) - self.length - 1
    return GeneratedSampler(lambda rng, n: self._windows(stream, rng.integers(0, high, n)),
                            batch_size, seed)

  def splits(self):
    out = {}
    for split in ('validation', 'test'):
      stream = self.corpus_splits()[split]
      starts = np.arange(0, len(stream) - self.length - 1, self.length)[:self.eval_windows]
      out[split] = self._windows(stream, starts)
    return out

  def adapt(self, batch, kind):
    return batch['inputs'], None

  def stem(self):
    return nn.Embed(text_data.VOCAB, self.embed_dim, name='embed')

  def head(self):
    return PerPositionHead(text_data.VOCAB)

  def per_example(self, outputs, batch):
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs, batch['target']).mean(-1)
    return {'loss': ce, 'bpc': ce / math.log(2)}

  def write_artifacts(self, model, variables, workdir, rng):
    seed_ids = text_data.encode(self.seed_text)
    samples = []
    for i in range(self.num_samples):
      ids = generate(model, variables, seed_ids, self.sample_length, self.temperature,
                     jax.random.fold_in(rng, i))
      samples.append(text_data.decode(ids))
    workdirs.write_text(workdirs.join(workdir, 'samples.txt'), ''.join(
        f'=== sample {i} (temperature {self.temperature}, seed {self.seed_text!r})\n{sample}\n'
        for i, sample in enumerate(samples)))
    return {'samples': samples}
