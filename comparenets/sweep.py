"""Members in one program: the seeds and learning rates of one experiment trained together.

A config's ``sweep`` section names them: ``seeds`` (how many; the members' seeds are ``seed``,
``seed + 1``, ...), ``learning_rates`` (peak learning rates; empty: the train section's one) and
``form`` (how one compiled step runs the members). Each (learning rate, seed) member is exactly
the single run of its own config (`Member.config`: that seed, that learning rate, no sweep):
the same initial parameters, the same batch order (its own sampler), the same dropout keys, the
same schedule. What the members share is the compiled program: one train step updates every
member's state, stacked on a leading axis, so that a CPU or an accelerator that one small model
leaves mostly idle runs several at once, and one Orbax checkpoint holds them all.

* The learning rate is a value in each member's optimizer state (`optax.inject_hyperparams`),
  so members with different rates share one optimizer and one program.
* ``form='vmap'`` batches the members' steps (`jax.vmap`: one matrix product for all members);
  ``form='map'`` runs them one after another inside the program (`jax.lax.map`);
  ``form='separate'`` trains them one after another as separate single runs (each with its own
  checkpoints), where one program would be slower than that. Which pays depends on the model
  and the backend; ``'auto'`` picks by measurement (`auto_form`).
* The batch of a step is every member's own batch stacked on axis 1, ``[B, members, ...]``,
  so the data-parallel strategies split axis 0 over devices as they do for one run; the member
  axis is replicated on every device (each device runs every member on its rows).
* NaN or Inf in one member: with ``train.on_nonfinite='skip'`` that member's update is skipped
  (as in a single run); with ``'stop'`` that member is halted at that step (its state kept as
  it was before it) and the others train on. The halt is decided on the device, so a resumed
  sweep halts the same members at the same steps.

Member ``i`` is written as an ordinary run in ``<workdir>/seed<N>/`` (one learning rate) or
``<workdir>/lr<value>/seed<N>/`` (several), with its own config.json, results.json,
metrics.jsonl, plots and TensorBoard files; ``<workdir>/sweep.json`` lists the members and how
each ended. Each finished member's final state is also saved as an ordinary final checkpoint in
its own directory (`save_member`), so that it restores like the single run it equals.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from comparenets import models
from comparenets.checkpointing import Checkpointer
from comparenets.config_utils import check_fields, check_values
from comparenets.errors import ConfigError

SWEEP_DEFAULTS = {'seeds': 1, 'learning_rates': (), 'form': 'auto'}
FORMS = ('auto', 'vmap', 'map', 'separate')


@dataclasses.dataclass(frozen=True)
class Member:
  """One (learning rate, seed) of a sweep: ``subdir`` is its run directory under the sweep's
  workdir, ``config`` the config of the single run it equals."""
  seed: int
  learning_rate: float
  subdir: str
  config: ml_collections.ConfigDict


def _rate(value: Any, what: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ConfigError(f'{what} must be a number, not {value!r}')
  if not math.isfinite(value) or value <= 0:
    raise ConfigError(f'{what} must be a positive, finite number, not {value!r}')
  return float(value)


def check_sweep(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config's sweep section with its defaults, checked; raises `ConfigError`."""
  given = dict(config.get('sweep') or {})
  check_fields('the sweep section', given, SWEEP_DEFAULTS)
  rates = given.pop('learning_rates', ())
  if isinstance(rates, (int, float, str)):
    rates = (rates,)
  rates = tuple(_rate(r, f'sweep.learning_rates[{i}]') for i, r in enumerate(rates))
  if len(set(rates)) != len(rates):
    raise ConfigError(f'sweep.learning_rates={rates} names a learning rate twice')
  sweep = {**SWEEP_DEFAULTS, **check_values('sweep', given, SWEEP_DEFAULTS,
                                            {'seeds': {'min': 1}, 'form': {'choices': FORMS}})}
  sweep['learning_rates'] = rates
  return sweep


def check_fits(need: int | None, limit: tuple[int, str] | None, count: int, form: str) -> None:
  """Raises `ConfigError` when the compiled program of ``count`` members needs more than the
  memory ``limit`` (bytes per device, and what it is; `runtime.device_memory_limit`) has.

  ``need`` is XLA's account of the program on one device (`Parallel.memory_need`); unknown
  need or limit passes (XLA's own out-of-memory error is then what a user sees).
  """
  if need is None or limit is None or need <= limit[0]:
    return
  gib = lambda n: f'{n / 2**30:.2f} GiB' if n >= 2**30 else f'{n / 2**20:.1f} MiB'
  raise ConfigError(
      f'the sweep\'s {count} members ({form}) need {gib(need)} per device for one train '
      f'step, more than the {gib(limit[0])} of {limit[1]}: train fewer members per run '
      f'(sweep.seeds, sweep.learning_rates), sweep.form=separate (one member at a time), or '
      f'a smaller train.batch_size')


def is_sweep(config: ml_collections.ConfigDict) -> bool:
  """Whether the config trains several members (or names its learning rates in a sweep)."""
  sweep = check_sweep(config)
  return sweep['seeds'] > 1 or bool(sweep['learning_rates'])


def rate_name(rate: float) -> str:
  """A learning rate as a directory name: ``lr0.001``, ``lr3e-05`` (what the report parses)."""
  return f'lr{rate:g}'


def members(config: ml_collections.ConfigDict) -> list[Member]:
  """Every (learning rate, seed) member of the config's sweep, learning rates outermost."""
  sweep = check_sweep(config)
  rates = sweep['learning_rates']
  base = int(config.get('seed', 0))
  out = []
  for rate in rates or (float(config.train.learning_rate),):
    for seed in range(base, base + sweep['seeds']):
      single = ml_collections.ConfigDict(config.to_dict())
      single.seed = seed
      single.train.learning_rate = rate
      single.sweep = ml_collections.ConfigDict(dict(SWEEP_DEFAULTS))
      subdir = f'{rate_name(rate)}/seed{seed}' if rates else f'seed{seed}'
      out.append(Member(seed, rate, subdir, single))
  return out


def auto_form(model_name: str, backend: str | None = None) -> str:
  """How a sweep runs the members of ``model_name`` on ``backend``, by measurement
  (BUILD_NOTES.md, "Members in one program": members trained per second against as many
  separate runs, 2 CPU cores, the quick suite's tasks). On XLA:CPU the recurrent families run
  in one program, the GRU and the simple RNN with the members in turn (digits: GRU 1.40x, RNN
  2.22x; 1.04x to 1.11x on the quick suite's sequence tasks), the LSTM batched: on idle cores
  3 LSTM members batched trained 1.14x (digits) and 1.11x (adding T=50) faster than in turn,
  where the GRU and the RNN were 0.92x to 1.0x (BUILD_NOTES.md, "Re-timed on idle cores").
  Models with convolutions gain nothing there in
  one program: batched, 0.59x to 1.12x (a batched convolution becomes a grouped one; the 2-D
  CNN gains 12 % on 8x8 digits and loses on larger inputs, the 3-D CNN, TCN and CNN+LSTM
  lose), and in turn 0.14x (a convolution inside the program's loop loses XLA:CPU's fast
  path); so their members train one after another as separate runs. On accelerators, where
  one small model leaves most of the chip idle, every model is batched (to be measured by
  ``scripts/bench/gpu.sh``)."""
  backend = backend or jax.default_backend()
  if backend != 'cpu':
    return 'vmap'
  if models.family(model_name) != 'recurrent':
    return 'separate'
  return 'vmap' if model_name == 'lstm' else 'map'


def run_inputs(setup: Any, seed: int):
  """``(samplers, sampler, init_rng, step_rng)`` of a run: one sampler per member (its own
  seed's batch order; the run's own for a single run), the sampler the steps read (the
  members' stacked, `StackedSampler`), and the keys a single run with that seed splits from
  ``PRNGKey(seed)``, stacked over the members of a sweep."""
  seeds = [m.seed for m in setup.members] or [seed]
  samplers = [setup.task.train_sampler(setup.train['batch_size'], s) for s in seeds]
  keys = jnp.stack([jax.random.split(jax.random.PRNGKey(s)) for s in seeds])
  if setup.members:
    return samplers, StackedSampler(samplers), keys[:, 0], keys[:, 1]
  return samplers, samplers[0], keys[0, 0], keys[0, 1]


class StackedSampler:
  """Each member's own batches (its own seed's order), stacked on axis 1: ``[B, members,
  ...]``. Axis 0 stays the batch, which the data-parallel strategies split over devices."""

  def __init__(self, samplers: Sequence[Any]):
    self.samplers = list(samplers)

  def batch(self, step: int, index: int = 0, count: int = 1) -> dict[str, np.ndarray]:
    rows = [s.batch(step, index, count) for s in self.samplers]
    return {k: np.stack([r[k] for r in rows], axis=1) for k in rows[0]}


def member_steps(train_step: Callable, eval_step: Callable, form: str, halt: bool):
  """The steps of the stacked state from one member's pure steps.

  ``train_step(state, batch, rng)`` of the result takes the stacked state (leaves
  ``[members, ...]``), the stacked batch ``[B, members, ...]`` and the members' keys
  ``[members, 2]``; its metrics are ``[members]``, with ``halted`` added. ``eval_step(state,
  batch)`` evaluates every member on the same (unstacked) batch. With ``halt``, a member whose
  loss or gradients are not finite keeps the state it had before that step from then on.
  """
  def one(state, batch, rng):
    new, metrics = train_step(state, batch, rng)
    halted = state.halted
    if halt:
      halted = halted | (metrics['nonfinite'] > 0)
      new = jax.tree.map(lambda n, o: jnp.where(halted, o, n), new, state)
    metrics['halted'] = halted.astype(jnp.float32)
    return new.replace(halted=halted), metrics

  if form == 'vmap':
    return (jax.vmap(one, in_axes=(0, 1, 0)), jax.vmap(eval_step, in_axes=(0, None)))
  if form != 'map':
    raise ValueError(f'form {form!r}')

  def train_in_turn(state, batch, rng):
    batch = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), batch)
    return jax.lax.map(lambda a: one(*a), (state, batch, rng))

  def eval_in_turn(state, batch):
    return jax.lax.map(lambda s: eval_step(s, batch), state)

  return train_in_turn, eval_in_turn


def member_tree(tree: Any, i: int) -> Any:
  """Member ``i``'s slice of a stacked (host) tree."""
  return jax.tree.map(lambda a: a[i], tree)


def save_member(state: Any, directory: str, step: int) -> None:
  """Saves a finished member's state (a host slice of the stacked one) as the final checkpoint
  of its single run: the optimizer state without the injected learning rate
  (``opt_state.inner_state``), no halted flag. Its run directory then restores, resumes and is
  analysed (`comparenets.analysis.invariance`) like any run's. Every process calls it."""
  state = state.replace(opt_state=state.opt_state.inner_state, halted=None)
  checkpointer = Checkpointer(directory, every=0, keep=1, async_save=False)
  try:
    checkpointer.save(step, state, force=True)
  finally:
    checkpointer.close()


def write_summary(path, members_: Sequence[Member], ended: Sequence[dict[str, Any]],
                  form: str, write_text: Callable) -> None:
  """``sweep.json``: the members, their directories and how each ended."""
  text = json.dumps({'form': form, 'members': [
      {'seed': m.seed, 'learning_rate': m.learning_rate, 'workdir': m.subdir, **e}
      for m, e in zip(members_, ended)]}, indent=2)
  write_text(path, text)


__all__ = ['SWEEP_DEFAULTS', 'FORMS', 'Member', 'check_sweep', 'is_sweep', 'members',
           'rate_name', 'auto_form', 'run_inputs', 'StackedSampler', 'member_steps', 'member_tree',
           'save_member', 'write_summary']
