"""Workdir paths that may be local or on a bucket (``gs://bucket/run``), through `etils.epath`.

Everything a run writes besides its checkpoints (``config.json``, ``metrics.jsonl``,
``results.json``, artifacts) goes through these helpers, so ``--workdir=gs://bucket/run`` works
like a local directory; Orbax writes the checkpoints to the same place by itself. ``gs://``
paths need ``gcsfs`` (``pip install comparenets[gcs]``) when TensorFlow is not installed: epath
reads and writes them through fsspec. A suite's workdir is read the same way: `find` gives the
runs below it (local or on a bucket) to the report, `summary` and `load_results`.

The checks a run makes on its workdir live here too: `check_free_space` and `prepare_workdir`
refuse, before the first write, a filesystem too small for two checkpoints and a workdir of
another experiment; `full_disk_is_one_error` turns running out of space mid-run into one
`WorkdirFullError` that says where the run will resume.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import importlib
import json
import os
import posixpath
import shutil
import threading
from typing import TYPE_CHECKING, Any, Iterator

from etils import epath

if TYPE_CHECKING:
  import ml_collections

from comparenets.errors import ConfigError, UserError, WorkdirFullError


def is_local(path: str | os.PathLike) -> bool:
  """Whether ``path`` is on this machine's filesystem (not ``gs://``, ``s3://``, ...)."""
  return '://' not in os.fspath(path)


def resolve(path: str | os.PathLike) -> str:
  """An absolute local path, or a bucket URI unchanged."""
  path = os.fspath(path)
  return os.path.abspath(path) if is_local(path) else path


def require_bucket_support(path: str | os.PathLike | None, name: str) -> None:
  """Refuses a ``gs://`` ``path`` (given as ``name``, e.g. ``--workdir``) that epath cannot
  open here, with the install command, before anything compiles or trains.

  epath reads and writes buckets through TensorFlow's gfile when TensorFlow is installed and
  through fsspec's gcsfs otherwise; without either the first write fails deep inside a run (an
  ImportError after compilation) and a gs:// data_dir reads as "not prepared".
  """
  if not path or not os.fspath(path).startswith('gs://'):
    return
  for module in ('gcsfs', 'tensorflow'):
    try:
      importlib.import_module(module)
      return
    except ImportError:
      continue
  raise ConfigError(f'{name}={os.fspath(path)} is on a bucket, and reading or writing gs:// '
                    'needs gcsfs, which is not installed: pip install gcsfs (or pip install -e '
                    '.[gcs])')


def join(workdir: str | os.PathLike, *parts: str) -> epath.Path:
  return epath.Path(resolve(workdir)).joinpath(*parts)


def _temporary(path: epath.Path) -> epath.Path:
  """A temporary name beside ``path`` that no other writer uses: this process's id and this
  thread's, so that two processes (shards on a shared filesystem) or threads writing the same
  file at once each rename a whole file of their own over it, never one the other is still
  writing. Hidden (a leading dot): a run directory's glob does not see one left by a crash."""
  return path.parent / f'.{path.name}.tmp-{os.getpid()}-{threading.get_ident()}'


@contextlib.contextmanager
def _replacing(path: epath.Path) -> Iterator[epath.Path]:
  """A temporary file of this writer's own (`_temporary`), renamed over ``path`` when the block
  ends; removed when the block fails (a full disk), so that failed writes leave nothing."""
  tmp = _temporary(path)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.lexists(tmp):
      os.unlink(tmp)


def write_text(path: epath.Path, text: str) -> None:
  """Writes a whole file so that readers see the old or the new contents, never a part, also
  while other processes write the same file (the last rename wins, whole).

  Locally: a temporary file of this writer's own (`_temporary`) renamed over the target. On a
  bucket an object appears only when its upload completes, so a direct write is already
  all-or-nothing (and the last upload wins).
  """
  if not is_local(path):
    path.write_text(text)
    return
  with _replacing(path) as tmp:
    tmp.write_text(text, encoding='utf-8')


def write_bytes(path: epath.Path, data: bytes) -> None:
  """`write_text` for bytes (a PNG): all or nothing, locally and on a bucket."""
  if not is_local(path):
    path.write_bytes(data)
    return
  with _replacing(path) as tmp:
    tmp.write_bytes(data)


def write_text_once(path: epath.Path, text: str) -> str:
  """Writes ``text`` to ``path`` unless the file exists, and returns the file's contents: the
  first writer's, when several write at once. What a measurement (timings) cached for later
  readers needs: every writer then goes on with the same numbers.

  Locally the first writer wins atomically (a hard link of a whole temporary file, which fails
  when the name exists). A bucket has no such operation through epath: a look, then a write,
  then a read back; two writers within one upload's time of each other may each read their
  own (the later upload then stays).
  """
  if not is_local(path):
    if not path.exists():
      path.write_text(text)
    return path.read_text()
  tmp = _temporary(path)
  try:
    tmp.write_text(text, encoding='utf-8')
    try:
      os.link(tmp, path)
    except FileExistsError:
      pass
    except OSError:  # no hard links there (some FUSE mounts): a look, then a rename
      if not path.exists():
        os.replace(tmp, path)
  finally:  # also when the write failed (a full disk): nothing of this writer's is left
    if os.path.lexists(tmp):
      os.unlink(tmp)
  return path.read_text(encoding='utf-8')


def read_text(path: epath.Path) -> str | None:
  """The file's contents, or None when it does not exist."""
  return path.read_text() if path.exists() else None


# What a run keeps beside its results.json, none of which holds runs: `find` does not look
# inside them on a bucket, where every directory walked costs a listing (a request) and an
# Orbax checkpoint has dozens.
RUN_OUTPUTS = frozenset({'checkpoints', 'tensorboard', 'plots'})


def find(root: str | os.PathLike, name: str) -> list[str]:
  """The directories below ``root`` (itself included) that hold a file ``name``, relative to
  ``root`` (``'.'`` for itself), in the sorted order of the files' paths.

  Locally by glob, as always (symlinked directories followed, hidden ones skipped). On a bucket
  by walking it through epath (which refuses a ``**`` glob there), hidden directories and a
  run's own outputs (`RUN_OUTPUTS`) skipped.
  """
  root = os.fspath(root)
  if is_local(root):
    paths = sorted(glob.glob(os.path.join(root, '**', name), recursive=True))
    return [os.path.relpath(os.path.dirname(p), root) for p in paths]
  top = join(root)
  # walk yields its directories without the scheme through fsspec ('/bucket/dir'), with it
  # through TensorFlow's gfile: compare what follows the scheme
  base = str(top).split('://', 1)[-1].strip('/')
  found = []
  for directory, dirs, files in top.walk():
    dirs[:] = [d for d in dirs if not d.startswith('.') and d not in RUN_OUTPUTS]
    if name in files:
      found.append(posixpath.relpath(str(directory).split('://', 1)[-1].strip('/'), base))
  return sorted(found, key=lambda rel: posixpath.join(rel, name) if rel != '.' else name)


def _identity(as_dict: dict[str, Any]) -> dict[str, Any]:
  """The parts of a config (as its JSON) that make a checkpoint meaningful: changing them
  needs a new run. A sweep's members (seeds, learning rates) are part of it: they are the
  stacked checkpoint's shape; a single run's config names none."""
  out = {k: as_dict.get(k) for k in ('seed', 'model', 'task', 'head')}
  sweep = as_dict.get('sweep') or {}
  members = {'seeds': sweep.get('seeds', 1), 'learning_rates': list(sweep.get('learning_rates')
                                                                   or ())}
  out['sweep'] = None if members == {'seeds': 1, 'learning_rates': []} else members
  return out


def check_free_space(workdir: str, state) -> None:
  """Refuses a workdir whose filesystem cannot hold two checkpoints of ``state``."""
  if not is_local(workdir):
    return  # a bucket has no free space to ask for
  import jax  # pylint: disable=g-import-not-at-top  (on first use: `summary` needs no JAX)
  need = 2 * sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, 'nbytes'))
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  try:
    free = shutil.disk_usage(existing).free
  except OSError:
    return  # the write itself will say what is wrong
  if free < need:
    raise ConfigError(f'{os.path.abspath(workdir)} has {free / 1e6:.2f} MB free, and two '
                      f'checkpoints of this run need about {need / 1e6:.2f} MB; free some space '
                      'or choose another --workdir')


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict) -> str:
  """Creates ``workdir`` and saves the config there, refusing a workdir of another experiment."""
  import jax  # pylint: disable=g-import-not-at-top  (on first use: `summary` needs no JAX)
  workdir = resolve(workdir)
  path = join(workdir, 'config.json')
  text = read_text(path)
  if text is not None:
    old = _identity(json.loads(text))
    new = _identity(json.loads(config.to_json_best_effort()))
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
      raise ConfigError(f'{workdir} holds a run with a different {", ".join(changed)} section; '
                        'use a fresh --workdir (nothing was changed in this one)')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
      write_text(path, config.to_json_best_effort(indent=2))
  except OSError as e:
    raise ConfigError(f'cannot write to workdir {workdir}: {e.strerror or e}') from None
  return workdir


@contextlib.contextmanager
def full_disk_is_one_error(workdir: str) -> Iterator[None]:
  """Turns running out of space in a local ``workdir`` (an OSError, or tensorstore's text for it,
  from any writer) into a `WorkdirFullError` that names the newest complete checkpoint: the run
  resumes from there once space is freed."""
  try:
    yield
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if not _out_of_space(e) or not is_local(workdir):
      raise
    checkpoints = os.path.join(workdir, 'checkpoints')
    steps = sorted(int(p) for p in os.listdir(checkpoints)
                   if p.isdigit()) if os.path.isdir(checkpoints) else []
    kept = f'the newest complete checkpoint is step {steps[-1]}' if steps else (
        'no checkpoint was complete yet')
    raise WorkdirFullError(
        f'{os.path.abspath(workdir)} ran out of space (no space left on device); {kept}. '
        'Free some space and run the same command to resume') from None


def _out_of_space(error: BaseException) -> bool:
  """Whether an error (or one it came from) is ENOSPC; tensorstore reports it as text."""
  seen = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
      return True
    if 'No space left on device' in str(seen):
      return True
    seen = seen.__cause__ or seen.__context__
  return False
