"""Sentiment classification of IMDB movie reviews (TFDS ``imdb_reviews``), the article's own
example of what RNNs are for.

Real loading code: reviews are read through `tfds.data_source`, lower-cased and split into word
tokens (``<br />`` tags removed); the vocabulary is the ``vocab_size - 2`` most frequent tokens
of the training split (id 0 pads, id 1 stands for any other token); each review keeps its first
``max_length`` tokens and is padded to that length with a mask, so padded steps change nothing
(the recurrent layers freeze their state there, the TCN reads its output at the last real
token). The validation split is a seeded, stratified holdout of TFDS's training split.

Per host: each process of a run reads and tokenizes only its contiguous share of the training
records at start; the labels (for the stratified holdout) and then the token counts of the
kept reviews are gathered from every process and summed (`parallel.gather`), so every process
builds the one vocabulary a single process builds. Nothing is encoded up front: the splits are
`pipeline.SourceSplit` views whose ``take`` reads, tokenizes and encodes only the rows asked
for, so each process reads only its rows of each training and evaluation batch
(``read_workers`` > 0: training batches read and tokenized ahead by grain worker processes).
Each encoded review is kept once read (``keep=True``, about 1.3 KB at ``max_length`` 256), so a
review is tokenized once a process, not once an epoch.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

from comparenets import figures
from comparenets import parallel
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
  return vocab_of_counts(collections.Counter(t for tokens in token_lists for t in tokens), size)


def vocab_of_counts(counts: collections.Counter, size: int) -> dict[str, int]:
  """`build_vocab` from token counts (``{token: count}``)."""
  ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size - 2]
  return {word: i + 2 for i, (word, _) in enumerate(ranked)}


def encode(tokens: list[str], vocab: dict[str, int], max_length: int):
  ids = np.full(max_length, PAD, np.int32)
  kept = [vocab.get(t, UNK) for t in tokens[:max_length]]
  ids[:len(kept)] = kept
  return ids, len(kept)


def encode_example(example, vocab: dict[str, int], max_length: int) -> dict[str, np.ndarray]:
  """One TFDS review as the split's fields: 'inputs' (ids), 'mask' (the real tokens; an empty
  review keeps its first, padding, step so that it has a state) and 'label'."""
  ids, n = encode(tokenize(example['text']), vocab, max_length)
  return {'inputs': ids, 'mask': np.arange(max_length) < max(n, 1),
          'label': np.asarray(example['label'], np.int32)}


def label_of(example) -> dict[str, np.ndarray]:
  return {'label': np.asarray(example['label'], np.int32)}


FIELDS = ('inputs', 'mask', 'label')


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
  read_workers: int = 0          # grain worker processes reading training batches ahead

  name = 'sentiment'
  input_kinds = ('sequence',)
  target_metric = 'accuracy'
  higher_is_better = True
  config_rules = {'vocab_size': {'min': 3}, 'split_seed': {'min': 0},
                  'max_train_examples': {'min': 0}, 'read_workers': {'min': 0},
                  'validation_fraction': {'min': 0.001, 'max': 0.5}}

  def splits(self):
    if not hasattr(self, '_splits'):
      data_dir = self.data_dir or None
      train = tfds_source.open_split(self.dataset, 'train', data_dir)
      test = tfds_source.open_split(self.dataset, 'test', data_dir)
      n = len(train) if not self.max_train_examples else min(self.max_train_examples, len(train))
      mine = parallel.share(n, *parallel.this_process())
      records = pipeline.read_records(train, mine)
      labels = np.concatenate([np.asarray(l, np.int32) for l in
                               parallel.gather([int(r['label']) for r in records])])
      (kept, _), (held, _) = holdout(np.arange(n), labels, self.validation_fraction,
                                     self.split_seed)
      is_kept = np.isin(mine, kept)
      mine_counted = collections.Counter(t for r, k in zip(records, is_kept) if k
                                         for t in tokenize(r['text']))
      counts = collections.Counter()
      for part in parallel.gather(mine_counted):  # every process's, summed: the whole split's
        counts.update(part)
      self.vocab = vocab_of_counts(counts, self.vocab_size)  # pylint: disable=attribute-defined-outside-init
      convert = functools.partial(encode_example, vocab=self.vocab, max_length=self.max_length)
      split = lambda source, idx: pipeline.SourceSplit(source, convert, FIELDS, idx, keep=True)
      self._splits = {'train': split(train, kept), 'validation': split(train, held),  # pylint: disable=attribute-defined-outside-init
                      'test': split(test, None)}
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
    labels = pipeline.SourceSplit(test.source, label_of, ('label',), test.indices)  # untokenized
    return {'confusion_matrix': figures.confusion_matrix(
        pipeline.column(labels, 'label'), predicted, 2, ('negative', 'positive'),
        title=f'{self.dataset} test')}
