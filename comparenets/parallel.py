"""Data-parallel strategies (none / pmap / jit-sharded) and the feeding of their steps.

A strategy wraps the pure step functions of `comparenets.train` (``train_step(state, batch,
rng)``, ``eval_step(state, batch)``) for one way of laying state and batches out on devices:

* ``'none'``: one device, `jax.jit`;
* ``'pmap'``: `jax.pmap` over this process's devices, the state replicated on a leading axis and
  gradients averaged with `lax.pmean`;
* ``'jit'``: `jax.jit` with the batch sharded over a one-axis device mesh and the state
  replicated (what JAX recommends today).

`Parallel.run_steps` drives training between the loop's events: it reads this process's rows of
each batch, stacks ``train.steps_per_dispatch`` steps into one compiled call (`scan_steps`) where
no event falls between them, and puts batches on the devices ahead of use (`prefetch`) where
that hides a transfer. The loop sees only ``(first, last, state, metrics)`` per call, so this
module alone knows how many steps a call runs.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import json
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

import flax.jax_utils
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from comparenets.errors import ConfigError

# axis_name -> (train_step, eval_step); axis_name None: steps that see the whole batch
StepFns = Callable[[str | None], tuple[Callable, Callable]]


def this_process() -> tuple[int, int]:
  """(index, count): which rows of each global batch this process reads and feeds."""
  return jax.process_index(), jax.process_count()


def share(n: int, index: int, count: int) -> range:
  """Process ``index`` of ``count``'s contiguous share of ``n`` items (the shares tile
  ``range(n)``, in order; they differ in size by one at most)."""
  return range(n * index // count, n * (index + 1) // count)


def gather(value: Any) -> list[Any]:
  """``value`` (anything JSON holds) of every process of the run, in process order; in a
  one-process run, ``[value]`` with nothing sent. Every process must call it, at the same point
  (a collective, `multihost_utils.process_allgather`, of the values' JSON bytes)."""
  if jax.process_count() == 1:
    return [value]
  data = np.frombuffer(json.dumps(value).encode(), np.uint8)
  sizes = multihost_utils.process_allgather(np.array([data.size], np.int32)).reshape(-1)
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[:data.size] = data
  rows = np.asarray(multihost_utils.process_allgather(padded))
  return [json.loads(rows[i, :size].tobytes()) for i, size in enumerate(sizes)]


def host_is_device() -> bool:
  """Whether the devices are this process's CPU, in a one-process run: host arrays then need
  no putting on a device ahead of the step."""
  return jax.default_backend() == 'cpu' and jax.process_count() == 1


def scan_steps(train_step):
  """``steps(state, batches, rng)``: ``train_step`` over the leading axis of ``batches`` in
  one `lax.scan`, so k steps cost one dispatch; the metrics come back stacked ``[k]``. Each
  step folds its own step number into ``rng``, so k scanned steps are the k single steps."""
  def steps(state, batches, rng):
    return jax.lax.scan(lambda state, batch: train_step(state, batch, rng), state, batches)
  return steps


def dispatches(start: int, total: int, per_dispatch: int,
               every: Iterable[int]) -> list[tuple[int, int]]:
  """The (first, last) steps (1-based, inclusive) of each compiled call from ``start + 1`` to
  ``total``: at most ``per_dispatch`` steps, and a call ends on every multiple of each nonzero
  interval in ``every`` (logging, validation, checkpoints), so those happen at their exact
  steps whatever ``per_dispatch`` is."""
  every = [e for e in every if e > 0]
  out, first = [], start + 1
  while first <= total:
    last = min([total, first + per_dispatch - 1] + [(first - 1) // e * e + e for e in every])
    out.append((first, last))
    first = last + 1
  return out


def prefetch(produce: Callable[[Any], Any], items: Iterable, depth: int = 2) -> Iterator:
  """``produce(item)`` for each item, made up to ``depth`` items ahead on a background thread.

  Used for the next batches: reading them and putting them on the devices overlaps the steps
  running there instead of sitting between them. Close the generator to stop the thread.
  """
  items = iter(items)
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='prefetch') as pool:
    ahead = [pool.submit(produce, s) for s in itertools.islice(items, depth)]
    try:
      while ahead:
        result = ahead.pop(0).result()
        ahead.extend(pool.submit(produce, s) for s in itertools.islice(items, 1))
        yield result
    finally:
      for future in ahead:
        future.cancel()


class Parallel:
  """How state and batches live on devices, and the compiled steps that go with it.

  ``train_step(state, batch, rng)`` runs one step; ``train_steps(state, batches, rng)`` runs
  as many as ``batches`` stacks (see `scan_steps`), fed by ``shard_steps``; `run_steps` chooses
  between them.
  """
  mode = 'none'
  axis_name: str | None = None  # the device axis that the steps average over

  def __init__(self, step_fns: StepFns, steps_per_dispatch: int = 1):
    self.steps_per_dispatch = steps_per_dispatch
    self._compile(*step_fns(self.axis_name))

  def _compile(self, train_step, eval_step):
    """Sets ``train_step``, ``train_steps`` and ``eval_step`` from the pure steps."""
    self.train_step = jax.jit(train_step, donate_argnums=0)
    self.train_steps = jax.jit(scan_steps(train_step), donate_argnums=0)
    self.eval_step = jax.jit(eval_step)

  def memory_need(self, state, rng: jax.Array, sampler, start: int, total: int,
                  every: Iterable[int]) -> int | None:
    """Bytes on one device of the program of `run_steps`' first call, from XLA's own account
    of the compiled program (arguments, outputs and temporaries, less what the outputs reuse
    of the donated arguments). Compiles it without running it; ``state`` as `place` gives it.
    None where the backend gives no account.
    """
    (first, last), = dispatches(start, total, self.steps_per_dispatch, every)[:1]
    step = self.train_step if first == last else self.train_steps
    stats = step.lower(state, self._produce(sampler, (first, last)), rng).compile()
    stats = stats.memory_analysis()
    if isinstance(stats, (list, tuple)):  # one per device (pmap): they are the same program
      stats = stats[0] if stats else None
    if stats is None:
      return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes
               + stats.generated_code_size_in_bytes)

  def run_steps(self, state, rng: jax.Array, sampler, start: int, total: int,
                every: Iterable[int]) -> Iterator[tuple[int, int, Any, Any]]:
    """Trains from step ``start + 1`` to ``total`` on ``sampler``'s batches, yielding
    ``(first, last, state, metrics)`` after each compiled call is dispatched (not finished).

    A call runs at most ``steps_per_dispatch`` steps and ends on every multiple of each interval
    in ``every`` (`dispatches`); its metrics are scalars for one step, ``[k]`` arrays for k.
    Each call starts when the caller asks for the next item, so the caller bounds how far the
    host runs ahead. Close the generator to stop the batches made ahead.
    """
    calls = dispatches(start, total, self.steps_per_dispatch, every)
    produce = functools.partial(self._produce, sampler)
    # The next batches are put on the devices ahead, on a thread, so that the transfer
    # overlaps the step. Where the host is the device there is no transfer to hide, and on a
    # few cores the thread only competes with the step (BUILD_NOTES.md): batches come inline.
    batches = (produce(c) for c in calls) if host_is_device() else prefetch(produce, calls)
    try:
      for (first, last), batch in zip(calls, batches):
        step = self.train_step if first == last else self.train_steps
        state, metrics = step(state, batch, rng)
        yield first, last, state, metrics
    finally:
      batches.close()

  def _produce(self, sampler, call: tuple[int, int]):
    """The batches of one call (first, last): this process's rows, as the step takes them."""
    first, last = call
    if first == last:
      return self.feed(sampler.batch(first - 1, *this_process()))
    rows = [sampler.batch(s - 1, *this_process()) for s in range(first, last + 1)]
    return self.feed_steps({k: np.stack([r[k] for r in rows]) for k in rows[0]})

  def warm_up(self, state, rng: jax.Array, sampler, start: int, total: int,
              every: Iterable[int]) -> float:
    """Compiles (or reads from JAX's compilation cache) the program of `run_steps`' first call
    and runs it once on a copy of ``state`` (the run's own state is untouched), so that a clock
    started afterwards times training, not compilation; returns the seconds it took."""
    calls = dispatches(start, total, self.steps_per_dispatch, every)[:1]
    began = time.perf_counter()
    for first, last in calls:
      step = self.train_step if first == last else self.train_steps
      copy = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, state)
      jax.block_until_ready(step(copy, self._produce(sampler, (first, last)), rng))
    return time.perf_counter() - began

  def place(self, state):
    return jax.device_put(state, jax.devices()[0])

  def shard(self, batch):
    if jax.process_count() > 1:
      raise ConfigError("train.parallel='none' runs on one device; a multi-process run needs "
                        "'jit' or 'pmap'")
    return jax.device_put(batch, jax.devices()[0])

  def shard_steps(self, batches):
    """Batches of several steps stacked on a leading axis ``[k, B, ...]``."""
    return self.shard(batches)

  def feed(self, batch):
    """The batch as the compiled steps take it (train and eval): put on the devices (`shard`),
    except on a CPU with one process, where the devices share the host's memory and the host
    arrays go in as they are (the step's dispatch copies them, as cheaply as a prepared
    device array: BUILD_NOTES.md)."""
    return batch if host_is_device() else self.shard(batch)

  def feed_steps(self, batches):
    """`feed` for ``train_steps``: batches stacked ``[k, B, ...]``."""
    return batches if host_is_device() else self.shard_steps(batches)

  def checkpoint_target(self, state):
    """A tree with the shardings a restored checkpoint should have before `place`."""
    return state

  def savable(self, state):
    return state

  def host_state(self, state):
    """The state as one copy, for inspection and comparison across strategies."""
    return jax.device_get(self.savable(state))

  def host_metrics(self, metrics):
    if host_is_device():  # read in place: 400 scalars 0.3 ms, against 1.8 ms by device_get
      return jax.tree.map(np.asarray, metrics)
    return jax.device_get(metrics)


def _first_replica(x: jax.Array) -> jax.Array:
  """The copy of a pmap-replicated value on this process's first device."""
  # one process: the shard drops the device axis; several: it keeps it with size 1
  return x.addressable_data(0).reshape(x.shape[1:])


class PmapParallel(Parallel):
  """`jax.pmap` over all local devices; state replicated on the leading axis."""
  mode = 'pmap'
  axis_name = 'batch'

  def _compile(self, train_step, eval_step):
    self.n = jax.local_device_count()
    self.train_step = jax.pmap(train_step, axis_name=self.axis_name, in_axes=(0, 0, None),
                               donate_argnums=0)
    self.train_steps = jax.pmap(scan_steps(train_step), axis_name=self.axis_name,
                                in_axes=(0, 0, None), donate_argnums=0)
    self.eval_step = jax.pmap(eval_step, axis_name=self.axis_name)

  def place(self, state):
    return flax.jax_utils.replicate(state)

  def shard(self, batch):  # this process's rows, split over its devices
    return jax.tree.map(lambda x: x.reshape((self.n, -1) + x.shape[1:]), batch)

  def feed(self, batch):  # host arrays split over the devices; pmap puts them there
    return self.shard(batch)

  def feed_steps(self, batches):
    return self.shard_steps(batches)

  def shard_steps(self, batches):  # [k, B, ...] -> [devices, k, B / devices, ...]
    return jax.tree.map(
        lambda x: np.swapaxes(x.reshape((x.shape[0], self.n, -1) + x.shape[2:]), 0, 1),
        batches)

  def savable(self, state):
    state = jax.tree.map(_first_replica, state)
    if jax.process_count() > 1:  # per-process copies: orbax writes host arrays from process 0
      state = jax.device_get(state)
    return state

  def checkpoint_target(self, state):
    return jax.device_get(state) if jax.process_count() > 1 else state

  def host_metrics(self, metrics):
    return jax.device_get(jax.tree.map(_first_replica, metrics))


class JitParallel(Parallel):
  """`jax.jit` over global arrays: the batch sharded over a 1-D mesh ``('data',)``, the state
  replicated.

  The step inside is a `jax.shard_map` of the same pure step that pmap runs: each device runs
  the whole model on its shard and the gradients are averaged once with `lax.pmean`. Left to
  itself, XLA's SPMD partitioner all-reduces the recurrent weight gradient inside the backward
  time loop (one collective per time step: seen in the compiled HLO of an LSTM step), which is
  slow and, on simulated CPU devices under load, stalled the collective's rendezvous until XLA
  aborted the process.
  """
  mode = 'jit'
  axis_name = 'data'

  def _compile(self, train_step, eval_step):
    self.mesh = Mesh(np.array(jax.devices()), ('data',))
    self.replicated = NamedSharding(self.mesh, P())
    self.data = NamedSharding(self.mesh, P('data'))
    # check_vma=False gives pmap's semantics: gradients are per-device values that the step
    # averages itself. With it on, the gradient of a replicated weight used on sharded data is
    # summed by autodiff where the weight is used, i.e. again inside the time loop.
    shard = functools.partial(jax.shard_map, mesh=self.mesh, check_vma=False)
    sharded_train = shard(train_step, in_specs=(P(), P('data'), P()), out_specs=(P(), P()))
    sharded_eval = shard(eval_step, in_specs=(P(), P('data')), out_specs=P())
    self.data_steps = NamedSharding(self.mesh, P(None, 'data'))
    sharded_steps = shard(scan_steps(train_step), in_specs=(P(), P(None, 'data'), P()),
                          out_specs=(P(), P()))
    self.train_steps = jax.jit(sharded_steps, in_shardings=(self.replicated, self.data_steps,
                                                            self.replicated),
                               out_shardings=(self.replicated, self.replicated),
                               donate_argnums=0)
    self.train_step = jax.jit(sharded_train, in_shardings=(self.replicated, self.data,
                                                           self.replicated),
                              out_shardings=(self.replicated, self.replicated),
                              donate_argnums=0)
    self.eval_step = jax.jit(sharded_eval, in_shardings=(self.replicated, self.data),
                             out_shardings=self.replicated)

  def place(self, state):
    return jax.device_put(state, self.replicated)

  def shard(self, batch):  # this process's rows of the global batch
    if jax.process_count() == 1:
      return jax.device_put(batch, self.data)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.data, x), batch)

  def shard_steps(self, batches):  # [k, this process's rows, ...], rows over the devices
    if jax.process_count() == 1:
      return jax.device_put(batches, self.data_steps)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.data_steps, x), batches)

  def checkpoint_target(self, state):
    return self.place(state)


STRATEGIES = {'none': Parallel, 'pmap': PmapParallel, 'jit': JitParallel}
MODES = tuple(STRATEGIES)


def make(train: Mapping[str, Any], step_fns: StepFns) -> Parallel:
  """The strategy a checked train config names (``parallel``, ``steps_per_dispatch``)."""
  return STRATEGIES[train['parallel']](step_fns, train['steps_per_dispatch'])
