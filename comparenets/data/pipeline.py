"""Batching of in-memory splits: a resumable training stream and padded evaluation batches.

The training batch of step s is a pure function of (seed, s): epoch e = s // steps_per_epoch
reads a permutation drawn from ``default_rng([seed, e])``. A run resumed from a checkpoint at
step s therefore sees exactly the batches an uninterrupted run would have seen.

In a multi-process run every process computes the same global indices (cheap) and reads only
the rows of its own contiguous share (``index`` of ``count``), the rows its devices hold; the
process shares of a global batch tile it exactly, so N processes see the data one process would.
A split is a dict of arrays in memory, or a `SourceSplit` that reads examples from a
random-access source (e.g. `tfds.data_source`) only when they are asked for. An evaluation
split may also be a `ProcessSplit`, whose examples are spread over the processes (each holds
its own), batched by its own rule.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence
import unittest.mock

import numpy as np

from comparenets.errors import ConfigError

Split = Mapping[str, np.ndarray]


READ_CHUNK = 1024  # records a `__getitems__` call asks for at most


def read_records(source: Sequence[Any], keys) -> list[Any]:
  """The records ``keys`` of a random-access source, in that order.

  A source with ``__getitems__`` (`tfds.data_source`'s ArrayRecord sources, grain's protocol)
  gets one call per chunk of keys: ArrayRecord then reads the records of a batch in parallel
  threads, against one at a time by ``source[i]`` (BUILD_NOTES, "Reading TFDS records in
  batches"). Any other sequence is indexed one key at a time.
  """
  keys = [int(k) for k in keys]
  getitems = getattr(source, '__getitems__', None)
  if getitems is None or _mocked(source):
    return [source[k] for k in keys]
  records = []
  for start in range(0, len(keys), READ_CHUNK):
    records.extend(getitems(keys[start:start + READ_CHUNK]))
  return records


def _mocked(source: Any) -> bool:
  """Whether ``source`` reads from `tfds.testing.mock_data`'s stand-in for ArrayRecord, whose
  ``__getitems__`` fails (tensorflow-datasets 4.9.10 sets it on a MagicMock, which calls it
  without its ``self``): such a source is read one record at a time."""
  return isinstance(getattr(source, 'data_source', None), unittest.mock.NonCallableMock)


class SourceSplit(Mapping):
  """A split read lazily from a random-access source: ``take(idx)`` reads just those examples.

  ``convert(example) -> {name: array}`` turns one source record into the split's fields;
  ``indices`` picks (and orders) the records of the source that form the split. Reading a
  whole field (``split['label']``) reads every record: it is there for inspection, the train
  loop only calls `take`.

  ``keep=True`` keeps every converted example (by its position in the split), so an example is
  read and converted once a process, not once an epoch: for sources whose conversion is the
  cost and whose converted rows are small (tokenized reviews), never for decoded images.
  """

  def __init__(self, source: Sequence[Any], convert: Callable[[Any], dict[str, np.ndarray]],
               keys: Sequence[str], indices: np.ndarray | None = None, keep: bool = False):
    self.source, self.convert, self._keys = source, convert, tuple(keys)
    self.indices = np.arange(len(source)) if indices is None else np.asarray(indices)
    self._columns = None
    self._kept: dict[int, dict[str, np.ndarray]] | None = {} if keep else None

  @property
  def num_examples(self) -> int:
    return len(self.indices)

  def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
    idx = [int(i) for i in np.asarray(idx).reshape(-1)]
    if self._kept is None:
      rows = [self.convert(r) for r in read_records(self.source, self.indices[idx])]
    else:
      new = sorted({i for i in idx if i not in self._kept})
      for i, r in zip(new, read_records(self.source, self.indices[new])):
        self._kept[i] = self.convert(r)  # one key at a time: safe under reading threads
      rows = [self._kept[i] for i in idx]
    return {k: np.stack([r[k] for r in rows]) for k in self._keys}

  def __getitem__(self, key):
    if self._columns is None:
      self._columns = self.take(np.arange(self.num_examples))
    return self._columns[key]

  def __iter__(self):
    return iter(self._keys)

  def __len__(self):
    return len(self._keys)


class ProcessSplit(Mapping):
  """An evaluation split whose examples are spread over the processes of a run, each process
  holding only its own, where an ordinary split is read whole by every process's rows of shared
  global batches (`eval_batches`).

  The arrays are this process's examples; ``sizes`` is every process's count, in process order,
  and the split is the examples of process 0, then of process 1, and so on (`split_size` is
  their sum). `eval_batches` gives process ``index``'s rows of global batch b as the b-th chunk of
  ``batch_size / count`` of its own examples, padded with zero rows of weight 0 once it has run
  out; every process yields the same number of batches (the evaluation step is a collective),
  as many as the process with the most examples needs. Each example is counted exactly once,
  but in another batch than one process puts it in, so sums agree with one process's to
  floating-point rounding. `take` and the arrays index this process's examples only.
  """

  def __init__(self, arrays: Mapping[str, np.ndarray], sizes: Sequence[int], index: int,
               count: int):
    sizes = [int(s) for s in sizes]
    if len(sizes) != count or not 0 <= index < count:
      raise ValueError(f'a ProcessSplit needs one size per process ({count}), got {sizes} '
                       f'for process {index}')
    self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
    if split_size(self.arrays) != sizes[index]:
      raise ValueError(f'process {index} holds {split_size(self.arrays)} examples, not the '
                       f'{sizes[index]} its size says')
    self.sizes, self.index, self.count = sizes, index, count

  @property
  def num_examples(self) -> int:
    return sum(self.sizes)

  def batches(self, batch_size: int, index: int, count: int) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of every global evaluation batch (the class docstring)."""
    if (index, count) != (self.index, self.count):
      raise ValueError(f'this split holds the examples of process {self.index} of '
                       f'{self.count}; it cannot be batched as process {index} of {count}')
    rows = process_rows(batch_size, index, count)
    per = rows.stop - rows.start
    for b in range(max(-(-size // per) for size in self.sizes)):
      idx = np.arange(b * per, min((b + 1) * per, self.sizes[index]))
      batch = {k: np.concatenate([v[idx], np.zeros((per - len(idx), *v.shape[1:]), v.dtype)])
               for k, v in self.arrays.items()}
      batch['weight'] = (np.arange(per) < len(idx)).astype(np.float32)
      yield batch

  def __getitem__(self, key):
    return self.arrays[key]

  def __iter__(self):
    return iter(self.arrays)

  def __len__(self):
    return len(self.arrays)


def take(split: Split, idx: np.ndarray) -> dict[str, np.ndarray]:
  """The examples ``idx`` of a split (only those are read from a `SourceSplit`)."""
  if isinstance(split, SourceSplit):
    return split.take(idx)
  return {k: v[idx] for k, v in split.items()}


def process_rows(n: int, index: int, count: int) -> slice:
  """The rows of a global batch of ``n`` that process ``index`` of ``count`` feeds."""
  if n % count:
    raise ValueError(f'a global batch of {n} does not split over {count} processes')
  per = n // count
  return slice(index * per, (index + 1) * per)


def split_size(split: Split) -> int:
  if isinstance(split, (SourceSplit, ProcessSplit)):
    return split.num_examples
  sizes = {len(v) for v in split.values()}
  if len(sizes) != 1:
    raise ValueError(f'arrays of one split differ in length: {sizes}')
  return sizes.pop()


def column(split: Split, key: str, chunk: int = 1024) -> np.ndarray:
  """One field of a split; a lazily read split (`SourceSplit`) is read in chunks
  rather than all fields at once."""
  if not isinstance(split, SourceSplit):
    return np.asarray(split[key])
  n = split_size(split)
  return np.concatenate([take(split, np.arange(i, min(i + chunk, n)))[key]
                         for i in range(0, n, chunk)])


class EpochSampler:
  """Shuffled, epoch-based, drop-remainder batches, addressable by step."""

  def __init__(self, split: Split, batch_size: int, seed: int):
    self.split = split
    self.size = split_size(split)
    if batch_size > self.size:
      raise ConfigError(f'train.batch_size={batch_size} is larger than the training split '
                        f'({self.size} examples); use a smaller batch')
    self.batch_size = batch_size
    self.seed = seed
    self.steps_per_epoch = self.size // batch_size
    self._epoch_perm = (-1, None)  # one tuple, replaced whole: threads may ask at once

  def indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    cached, perm = self._epoch_perm
    if epoch != cached:
      perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
      self._epoch_perm = (epoch, perm)
    return perm[i * self.batch_size:(i + 1) * self.batch_size]

  def batch(self, step: int, index: int = 0, count: int = 1) -> dict[str, np.ndarray]:
    """Process ``index`` of ``count``'s rows of the global batch of ``step`` (all by default)."""
    return take(self.split, self.indices(step)[process_rows(self.batch_size, index, count)])


class _StepRows:
  """``step -> sampler.batch(step, index, count)``: what grain's worker processes run (it is
  pickled into them with the sampler, its split and the split's source)."""

  def __init__(self, sampler: Any, index: int, count: int):
    self.sampler, self.index, self.count = sampler, index, count

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    return self.sampler.batch(int(step), self.index, self.count)


class StreamedSampler:
  """A sampler whose batches are read and converted ahead by ``workers`` grain worker processes
  (`grain.MapDataset.mp_prefetch`), for sources whose reading and decoding would otherwise
  hold up the step (a TFDS split on a host with cores to spare).

  The batches are the wrapped sampler's, step for step (a pure function of (seed, step)), and
  each process still reads only its rows: the stream is
  ``MapDataset.range(step, ...).map(sampler.batch for this process)``, so its item k is the
  batch of step ``step + k`` whichever worker made it. grain's own sharding
  (``ShardByJaxProcess``) is not used: it gives each process a disjoint shard of the records,
  so N processes would train on other batches than one process does, where here the process
  shares tile the one global batch (``process_rows``).

  The stream starts at the second of two consecutive steps asked for (the training loop's
  order) and serves steps in order from there; any other step (the batch that sizes the model,
  a warm-up, a resume) is read in this process, so a stray request never restarts the
  workers. ``close`` stops them (the train loop does at its end).
  """

  def __init__(self, sampler: Any, workers: int, ahead: int = 2):
    if workers < 1:
      raise ValueError(f'StreamedSampler needs at least one worker process (got {workers})')
    self.sampler, self.workers, self.ahead = sampler, workers, ahead
    self._stream, self._next, self._last = None, None, None

  def __getattr__(self, name):  # batch_size, seed, indices, ... of the wrapped sampler
    if name == 'sampler':
      raise AttributeError(name)
    return getattr(self.sampler, name)

  def batch(self, step: int, index: int = 0, count: int = 1) -> dict[str, np.ndarray]:
    key = (step, index, count)
    if self._stream is None and self._last == (step - 1, index, count):
      self._open(*key)
    if self._stream is not None and self._next == key:
      self._next = (step + 1, index, count)
      return next(self._stream)
    self._last = key
    return self.sampler.batch(step, index, count)

  def _open(self, step: int, index: int, count: int) -> None:
    import grain  # pylint: disable=g-import-not-at-top  # only a run that streams needs it
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():  # a notebook or a test: grain's workers read its absl
      flags.FLAGS.mark_as_parsed()   # flags, which then keep their defaults
    self.close()
    dataset = grain.MapDataset.range(step, step + 2**40).map(_StepRows(self.sampler, index,
                                                                          count))
    dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=1,
                                                        prefetch_buffer_size=self.ahead))
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=self.workers, per_worker_buffer_size=self.ahead))
    self._stream, self._next = iter(dataset), (step, index, count)

  def close(self) -> None:
    """Stops the worker processes (the next in-order batch starts them again)."""
    stream, self._stream, self._next, self._last = self._stream, None, None, None
    if stream is not None and hasattr(stream, 'close'):
      stream.close()


class GeneratedSampler:
  """Training batches generated on the fly: batch(step) = generate(default_rng([seed, step]), B).

  With ``rows=True`` the generator is called as ``generate(rng, B, rows)`` and returns only
  the rows ``rows`` (a slice) of that global batch: for batches cut from data that costs
  reading (DIV2K's decoded images), so that each process reads only what its rows need. Such a
  generator must draw the same random numbers whatever ``rows`` is, so that the rows equal
  those of the whole batch.
  """

  def __init__(self, generate: Callable[..., dict[str, np.ndarray]], batch_size: int,
               seed: int, rows: bool = False):
    self.generate, self.batch_size, self.seed, self.rows = generate, batch_size, seed, rows

  def batch(self, step: int, index: int = 0, count: int = 1) -> dict[str, np.ndarray]:
    """Process ``index`` of ``count``'s rows of the global batch of ``step`` (all by default).

    Each process generates the global batch (so the data does not depend on the process
    count) and keeps its rows; a ``rows`` generator makes only those.
    """
    rows = process_rows(self.batch_size, index, count)
    rng = np.random.default_rng([self.seed, step])
    if self.rows:
      return self.generate(rng, self.batch_size, rows)
    full = self.generate(rng, self.batch_size)
    return {k: v[rows] for k, v in full.items()}


def eval_batches(split: Split, batch_size: int, index: int = 0,
                 count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Every example exactly once, in batches of exactly ``batch_size`` (so one compilation).

  The last batch is padded by repeating examples; ``weight`` is 1 for real examples and 0 for
  padding, so weighted sums count each example once. With ``count`` > 1 each batch is process
  ``index``'s rows of the global batch, and only those are read. A `ProcessSplit` (each
  process holding its own examples) is batched by its own rule: each process's rows are a
  chunk of its own examples.
  """
  if isinstance(split, ProcessSplit):
    yield from split.batches(batch_size, index, count)
    return
  n = split_size(split)
  rows = process_rows(batch_size, index, count)
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    real = len(idx)
    if real < batch_size:
      idx = np.concatenate([idx, np.zeros(batch_size - real, idx.dtype)])
    batch = take(split, idx[rows])
    batch['weight'] = (np.arange(batch_size) < real).astype(np.float32)[rows]
    yield batch


def generated_splits(generate: Callable[[np.random.Generator, int], dict[str, np.ndarray]],
                     data_seed: int, validation_size: int, test_size: int
                     ) -> dict[str, dict[str, np.ndarray]]:
  """The fixed validation and test sets of a task whose data is generated (``generate(rng, n)``),
  from spawn keys that no training batch uses (training batches are ``default_rng([seed,
  step])``, with an empty spawn key). Entropy lists would not do: SeedSequence reads [0, 2, 0]
  as the same number as [0, 2], the batch of step 2."""
  rng = lambda split: np.random.default_rng(np.random.SeedSequence(data_seed,
                                                                   spawn_key=(split,)))
  return {'validation': generate(rng(1), validation_size), 'test': generate(rng(2), test_size)}
