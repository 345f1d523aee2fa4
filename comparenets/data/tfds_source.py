"""Reading prepared TFDS datasets without TensorFlow, through `tfds.data_source`.

`tfds.data_source` gives random access to datasets prepared in the ``array_record`` format. A
dataset that is not prepared on this machine (and cannot be downloaded: this code never asks
TFDS to download) is a `DatasetNotFoundError` whose message says how to prepare it.

A ``gs://`` data_dir (any non-local one) is copied to this host first (`local_data_dir`): the
prepared dataset's directory, once per host, into the data cache (``$COMPARENETS_DATA_CACHE``,
else ``$XDG_CACHE_HOME/comparenets/tfds``, else ``~/.cache/comparenets/tfds``). ArrayRecord's
reader is C++ and does not read through epath: on a bucket path it bypasses gcsfs (with no
network it hangs at the first record), so every host of a pod reads its own local copy. The
bucket is asked once per process for each (dataset, bucket); a host whose bucket cannot be
reached reads a complete copy it made before, with a warning.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import threading
from typing import Mapping

from absl import logging
from etils import epath
import filelock

from comparenets import runtime
from comparenets import workdir as workdirs
from comparenets.errors import DataCopyError, DatasetNotFoundError, UserError

COPY_BLOCK = 16 * 2**20  # bytes per read while copying a dataset's files


def prepare_hint(name: str, data_dir: str | None) -> str:
  where = f' --data_dir={data_dir}' if data_dir else ''
  return (f'prepare it on a machine with network access: pip install tensorflow '
          f'tensorflow-datasets; tfds build {name} --file_format=array_record{where} '
          f'(then copy the data directory here and pass --config.task.data_dir=DIR)')


def cache_root(environ: Mapping[str, str] | None = None) -> str:
  """Where datasets read from a bucket are copied on each host (module docstring)."""
  environ = os.environ if environ is None else environ
  if environ.get('COMPARENETS_DATA_CACHE'):
    return environ['COMPARENETS_DATA_CACHE']
  return os.path.join(runtime.user_cache_dir(environ), 'tfds')


# (dataset, bucket data_dir, cache root) -> the local data directory, for this process
_LOCAL_DIRS: dict[tuple[str, str, str], str] = {}
_LOCAL_DIRS_LOCK = threading.Lock()


def local_data_dir(name: str, data_dir: str) -> str:
  """A local data directory with dataset ``name`` as prepared in the bucket ``data_dir``,
  found once per process for each (dataset, bucket, data cache): a process opening several
  splits asks the bucket once (`copy_from_bucket` does the work)."""
  key = (name, data_dir.rstrip('/'), cache_root())
  with _LOCAL_DIRS_LOCK:
    if key not in _LOCAL_DIRS:
      _LOCAL_DIRS[key] = copy_from_bucket(name, data_dir)
    return _LOCAL_DIRS[key]


def copy_from_bucket(name: str, data_dir: str) -> str:
  """A local data directory with dataset ``name`` as prepared in the bucket ``data_dir``.

  The dataset's prepared directory (``NAME[/CONFIG]/VERSION``, TFDS's layout) is copied whole
  into `cache_root`, under a name made of ``data_dir`` (and a hash of it, so that two buckets
  never share a copy). One process of a host copies while the others wait on a file lock; the
  copy is written to a temporary directory and renamed into place, so a copy cut short is never
  read. A copy whose dataset_info.json differs from the bucket's (the dataset prepared again) is
  replaced. A dataset not prepared in the bucket is a `DatasetNotFoundError`; a copy that fails
  (space, permissions, the network) a `DataCopyError` naming the cache. A bucket that cannot be
  reached, where this host has a complete copy (one renamed into place), gives that copy, with
  a warning that it may be of an older preparation; without a copy it is a
  `DatasetNotFoundError` that says the bucket could not be read.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # seconds to import
  data_dir = data_dir.rstrip('/')
  cause = ''
  try:
    builder = tfds.builder(name, data_dir=data_dir)  # reads dataset_info.json through epath
    prepared = builder.is_prepared()
  except Exception as e:  # pylint: disable=broad-except  # tfds raises several kinds
    prepared, cause = False, f' ({_first_line(e)})'
  slug = re.sub(r'[^A-Za-z0-9._-]+', '_', data_dir)[-80:]
  root = os.path.join(cache_root(),
                      f'{slug}-{hashlib.sha256(data_dir.encode()).hexdigest()[:8]}')
  if not prepared:
    unreachable = _unreachable(data_dir)
    if unreachable is None:
      raise DatasetNotFoundError(f'TFDS dataset {name!r} is not prepared in {data_dir}{cause}; '
                                 f'{prepare_hint(name, data_dir)}')
    return _without_bucket(name, data_dir, root, unreachable)
  remote = epath.Path(builder.data_dir)
  target = os.path.join(root, *posixpath.relpath(os.fspath(remote), data_dir).split('/'))
  try:
    info = (remote / INFO).read_text()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with filelock.FileLock(f'{target}.lock'):
      if not _copied(target, info):
        _copy_tree(name, remote, target)
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # OSError, gcsfs's and fsspec's own
    raise DataCopyError(
        f'TFDS dataset {name!r} could not be copied from {remote} to this host\'s data cache '
        f'{target} ({_first_line(e)}); free space there or choose another cache with '
        f'COMPARENETS_DATA_CACHE=DIR, then run the same command again') from None
  return root


INFO = 'dataset_info.json'


def _first_line(e: BaseException) -> str:
  return (str(e).splitlines() or [type(e).__name__])[0]


def _without_bucket(name: str, data_dir: str, root: str, why: str) -> str:
  """``root`` when it holds a complete copy of the dataset, for a bucket that cannot be reached
  (``why``), with a warning; else the error that says so."""
  copy = _complete_copy(name, root)
  if copy is None:
    raise DatasetNotFoundError(
        f'TFDS dataset {name!r} cannot be read: the bucket {data_dir} cannot be reached '
        f'({why}) and this host has no copy of the dataset in {root}; check the network and '
        f'access to the bucket (gcloud storage ls {data_dir}), or {prepare_hint(name, data_dir)}')
  logging.warning('TFDS dataset %s: the bucket %s cannot be reached (%s); reading this host\'s '
                  'complete copy in %s, made earlier (if the dataset was prepared again since, '
                  'this copy is of the older preparation)', name, data_dir, why, copy)
  return root


def _unreachable(data_dir: str) -> str | None:
  """Why the bucket ``data_dir`` cannot be reached, or None when it answers (a listing, or a
  missing folder, is an answer). Asked only when TFDS found no prepared dataset there: a
  filesystem's ``exists`` reads any error as "missing", so that alone cannot tell."""
  try:
    next(iter(epath.Path(data_dir).iterdir()), None)
  except FileNotFoundError:
    return None
  except Exception as e:  # pylint: disable=broad-except  # gcsfs's and fsspec's own
    return f'{type(e).__name__}: {_first_line(e)}'
  return None


def _complete_copy(name: str, root: str) -> str | None:
  """The dataset's directory in this host's copy ``root`` when a complete copy is there (a copy
  is renamed into place whole, so its dataset_info.json says it is complete), else None."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    target = os.fspath(tfds.builder(name, data_dir=root).data_dir)
  except Exception:  # pylint: disable=broad-except  # no such dataset or copy
    return None
  return target if os.path.isfile(os.path.join(target, INFO)) else None


def _copied(target: str, info: str) -> bool:
  """Whether ``target`` is a whole copy of the dataset whose dataset_info.json is ``info``."""
  try:
    with open(os.path.join(target, INFO), encoding='utf-8') as f:
      return f.read() == info
  except FileNotFoundError:
    return False


def _copy_tree(name: str, remote: epath.Path, target: str) -> None:
  """Copies ``remote``'s files into ``target`` through a temporary directory renamed into place
  (an older copy at ``target`` is replaced whole)."""
  tmp = f'{target}.tmp-{os.getpid()}-{threading.get_ident()}'
  old = f'{target}.old-{os.getpid()}-{threading.get_ident()}'
  files = list(_files(remote))
  logging.info('copying TFDS dataset %s (%d files) from %s to %s, once for this host', name,
               len(files), remote, target)
  try:
    for path in files:
      local = os.path.join(tmp, *posixpath.relpath(os.fspath(path), os.fspath(remote)).split('/'))
      os.makedirs(os.path.dirname(local), exist_ok=True)
      copy_file(path, local)
    if os.path.isdir(target):  # prepared again since it was copied
      logging.info('the copy in %s is of an older preparation: replaced', target)
      os.rename(target, old)
    os.rename(tmp, target)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def copy_file(path: epath.Path, local: str) -> None:
  """Copies one file of a bucket (or any epath) to the local path ``local``, in blocks."""
  with path.open('rb') as src, open(local, 'wb') as dst:
    shutil.copyfileobj(src, dst, COPY_BLOCK)


def _files(folder: epath.Path):
  """Every file below ``folder`` (epath refuses ``rglob`` on a bucket; TFDS's version
  directories are flat, so this is one listing)."""
  for path in folder.iterdir():
    if path.is_dir():
      yield from _files(path)
    else:
      yield path


def open_split(name: str, split: str, data_dir: str | None = None):
  """A random-access source of one split of a prepared dataset (from a bucket: of this host's
  copy, `local_data_dir`)."""
  # TFDS takes seconds to import: only runs of TFDS datasets load it
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if data_dir and not workdirs.is_local(data_dir):
    data_dir = local_data_dir(name, data_dir)
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except  # tfds raises several kinds
    try:
      prepared = tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # pylint: disable=broad-except
      prepared = False
    if not prepared:
      raise DatasetNotFoundError(
          f'TFDS dataset {name!r} is not prepared in '
          f'{data_dir or "the default TFDS data directory (~/tensorflow_datasets)"}; '
          f'{prepare_hint(name, data_dir)}') from None
    raise DatasetNotFoundError(
        f'TFDS dataset {name!r} is prepared but cannot be read without TensorFlow '
        f'({str(e).splitlines()[0]}); rebuild it in the array_record format: '
        f'{prepare_hint(name, data_dir)}') from None
