"""Orbax checkpoints of the training state: save every N steps, keep K, resume from the newest.

A thin wrapper over ``orbax.checkpoint.CheckpointManager`` (``args=`` API). Saves are
asynchronous; orbax writes each step to a temporary directory and renames it when complete, so a
run killed mid-write leaves the previous step as the newest one it can see. Restores go against
an abstract target built from the *current* shardings, so a checkpoint written on 8 devices (or a
TPU) restores on 1 CPU device and vice versa.
"""

from __future__ import annotations

import gc
import logging as pylogging
from typing import Any

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from comparenets import workdir as workdirs
from comparenets.errors import CheckpointError


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs with the shardings of ``tree``: the restore target for orbax."""
  def to_struct(x):
    if isinstance(x, jax.Array):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x
  return jax.tree.map(to_struct, tree)


def complete_steps(directory: str | epath.PathLike) -> list[int]:
  """The steps of the finished checkpoints in ``directory`` (Orbax's own test: a step still
  being written is not one), without a manager: for a process that is not part of the run."""
  try:
    return sorted(ocp.utils.checkpoint_steps(directory))
  except (FileNotFoundError, NotADirectoryError):
    return []


class Checkpointer:
  """Save/restore of one pytree under ``<workdir>/checkpoints``."""

  def __init__(self, directory: str, *, every: int, keep: int = 3, async_save: bool = True):
    self.directory = workdirs.resolve(directory)  # a local path or gs://...
    self.every = every
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def should_save(self, step: int) -> bool:
    return self.every > 0 and step % self.every == 0

  def save(self, step: int, tree: Any, *, force: bool = False) -> bool:
    """Starts saving ``tree`` as ``step`` (asynchronously); returns whether a save started."""
    if not force and not self.should_save(step):
      return False
    if step in self._manager.all_steps():
      return False
    return self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)

  def restore(self, step: int, target: Any) -> Any:
    """Restores ``step`` into the structure, shapes, dtypes and shardings of ``target``."""
    asyncio_log = pylogging.getLogger('asyncio')
    level = asyncio_log.level
    asyncio_log.setLevel(pylogging.CRITICAL)  # orbax's failed reads: one message, not dozens
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_like(target)))
    except Exception as e:  # pylint: disable=broad-except  # orbax/tensorstore raise many kinds
      raise CheckpointError(f'the checkpoint at step {step} in {self.directory} cannot be '
                            f'restored into this run: {_first_line(e)}') from e
    finally:
      gc.collect()  # the failed reads' tasks report now, while the asyncio log is quiet
      asyncio_log.setLevel(level)

  def restore_latest(self, target: Any) -> tuple[int | None, Any]:
    """Restores the newest checkpoint that can be restored into ``target``.

    Returns ``(step, tree)``, or ``(None, target)`` when there is no checkpoint. A newer
    checkpoint that cannot be restored (truncated, corrupted, written by another config) is
    logged with its step and reason and moved aside to ``unreadable-step-N`` (kept for
    inspection, out of the manager's way; by process 0, `_move_aside`) once an older one
    restores. When none restores,
    nothing is moved and a `CheckpointError` lists every step's reason.
    """
    failures = []
    for step in sorted(self.all_steps(), reverse=True):
      try:
        tree = self.restore(step, target)
      except CheckpointError as e:
        logging.warning('%s', e)
        failures.append((step, e))
        continue
      if failures:
        self._move_aside([bad for bad, _ in failures], step)
      return step, tree
    if failures:
      reasons = '; '.join(f'step {s}: {_first_line(e.__cause__ or e)}' for s, e in failures)
      raise CheckpointError(
          f'no checkpoint in {self.directory} can be restored into this run ({reasons}). If '
          'the config changed, use a fresh --workdir; if the files are damaged, move the '
          'checkpoints folder aside to start over')
    return None, target

  def _move_aside(self, steps: list[int], kept: int) -> None:
    """Moves unreadable ``steps`` to ``unreadable-step-N``: process 0 only (the directory is
    shared by every process, on a shared filesystem or a bucket, and two renames of one
    directory race), while the others wait for it at a barrier before they look again."""
    for bad in steps:
      aside = workdirs.join(self.directory, f'unreadable-step-{bad}')
      if jax.process_index() == 0:
        workdirs.join(self.directory, str(bad)).rename(aside)
      logging.warning('fell back from step %d to step %d; step %d moved to %s', bad, kept,
                      bad, aside)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices('comparenets: unreadable checkpoints moved aside')
    self._manager.reload()

  def reached_preemption(self, step: int) -> bool:
    """True when JAX's multi-host preemption service says all hosts reached a sync point."""
    return self._manager.reached_preemption(step)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _first_line(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return text[0][:300] if text else type(e).__name__
