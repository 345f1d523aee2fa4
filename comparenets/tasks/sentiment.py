"""Sentiment classification of IMDB movie reviews (TFDS ``imdb_reviews``), the article's own
example of what RNNs are for.

Real loading code: reviews are read through `tfds.data_source`, lower-cased and split into word
tokens (``<br />`` tags removed); the vocabulary is the ``vocab_size - 2`` most frequent tokens
of the training split (id 0 pads, id 1 stands for any other token); each review keeps its first
``max_length`` tokens and is padded to that length with a mask, so padded steps change nothing
(the recurrent layers freeze their state there, the TCN reads its output at the last real
token). The validation split is a seeded, stratified holdout of TFDS's training split.
"""

from __future__ import annotations

import collections
import dataclasses
import re

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

from comparenets import figures
from comparenets.data import pipeline
from comparenets.data import tfds_source
from comparenets.models.heads import ClassificationHead
from comparenets.tasks.base import Task
from comparenets.tasks.images import holdout

PAD, UNK = 0, 1
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str | bytes) -> list[str]:
  if isinstance(text, bytes):
    text = text.decode('utf-8', errors='replace')
  return _TOKEN.findall(text.lower().replace('<br />', ' '))


def build_vocab(token_lists, size: int) -> dict[str, int]:
  """The ``size - 2`` most frequent tokens (ties broken alphabetically) -> ids 2, 3, ..."""
  counts = collections.Counter(t for tokens in token_lists for t in tokens)
  ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size - 2]
  return {word: i + 2 for i, (word, _) in enumerate(ranked)}


def encode(tokens: list[str], vocab: dict[str, int], max_length: int):
  ids = np.full(max_length, PAD, np.int32)
  kept = [vocab.get(t, UNK) for t in tokens[:max_length]]
  ids[:len(kept)] = kept
  return ids, len(kept)


@dataclasses.dataclass
class Sentiment(Task):
  dataset: str = 'imdb_reviews'
  data_dir: str = ''
  vocab_size: int = 20000
  max_length: int = 256
  embed_dim: int = 64
  validation_fraction: float = 0.1
  split_seed: int = 0
  max_train_examples: int = 0    # 0 = all

  name = 'sentiment'
  input_kinds = ('sequence',)
  target_metric = 'accuracy'
  higher_is_better = True
  config_rules = {'vocab_size': {'min': 3}, 'split_seed': {'min': 0},
                  'max_train_examples': {'min': 0},
                  'validation_fraction': {'min': 0.001, 'max': 0.5}}

  def _read(self, split: str, limit: int = 0):
    source = tfds_source.open_split(self.dataset, split, self.data_dir or None)
    n = len(source) if not limit else min(limit, len(source))
    examples = pipeline.read_records(source, range(n))
    return ([tokenize(e['text']) for e in examples],
            np.array([int(e['label']) for e in examples], np.int32))

  def _encode_all(self, token_lists, labels):
    encoded = [encode(t, self.vocab, self.max_length) for t in token_lists]
    ids = np.stack([e[0] for e in encoded]) if encoded else np.zeros((0, self.max_length))
    lengths = np.array([e[1] for e in encoded], np.int32)
    mask = np.arange(self.max_length)[None] < np.maximum(lengths, 1)[:, None]
    return {'inputs': ids.astype(np.int32), 'mask': mask, 'label': labels}

  def splits(self):
    if not hasattr(self, '_splits'):
      tokens, labels = self._read('train', self.max_train_examples)
      order = np.arange(len(labels))
      (kept, kept_labels), (held, held_labels) = holdout(order, labels,
                                                          self.validation_fraction,
                                                          self.split_seed)
      train_tokens = [tokens[i] for i in kept]
      self.vocab = build_vocab(train_tokens, self.vocab_size)  # pylint: disable=attribute-defined-outside-init
      test_tokens, test_labels = self._read('test')
      self._splits = {  # pylint: disable=attribute-defined-outside-init
          'train': self._encode_all(train_tokens, kept_labels),
          'validation': self._encode_all([tokens[i] for i in held], held_labels),
          'test': self._encode_all(test_tokens, test_labels)}
    return self._splits

  def adapt(self, batch, kind):
    return batch['inputs'], batch['mask']

  def stem(self):
    return nn.Embed(self.vocab_size, self.embed_dim, name='embed')

  def head(self, hidden: tuple[int, ...] = (), dropout: float = 0.0):
    return ClassificationHead(2, tuple(hidden), dropout)

  def per_example(self, outputs, batch):
    labels = batch['label']
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, labels)
    correct = (jnp.argmax(outputs, -1) == labels).astype(jnp.float32)
    return {'loss': loss, 'accuracy': correct}

  def figures(self, predict):
    """The test split's confusion matrix (negative / positive)."""
    test = self.splits()['test']
    predicted = predict(test).argmax(-1)
    return {'confusion_matrix': figures.confusion_matrix(
        pipeline.column(test, 'label'), predicted, 2, ('negative', 'positive'),
        title=f'{self.dataset} test')}
