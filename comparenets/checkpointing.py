"""Orbax checkpoints of the training state: save every N steps, keep K, resume from the newest.

A thin wrapper over ``orbax.checkpoint.CheckpointManager`` (``args=`` API). Saves are
asynchronous; orbax writes each step to a temporary directory and renames it when complete, so a
run killed mid-write leaves the previous step as the newest one it can see. Restores go against
an abstract target built from the *current* shardings, so a checkpoint written on 8 devices (or a
TPU) restores on 1 CPU device and vice versa.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from comparenets.errors import ConfigError


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs with the shardings of ``tree``: the restore target for orbax."""
  def to_struct(x):
    if isinstance(x, jax.Array):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x
  return jax.tree.map(to_struct, tree)


class Checkpointer:
  """Save/restore of one pytree under ``<workdir>/checkpoints``."""

  def __init__(self, directory: str, *, every: int, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
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
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_like(target)))
    except (ValueError, KeyError, TypeError) as e:
      raise ConfigError(
          f'the checkpoint at step {step} in {self.directory} does not fit this config '
          f'({_first_line(e)}); run with a fresh --workdir, or restore the config that wrote '
          'it (saved as config.json beside it)') from e

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _first_line(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return text[0][:300] if text else type(e).__name__
