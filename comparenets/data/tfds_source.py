"""Reading prepared TFDS datasets without TensorFlow, through `tfds.data_source`.

`tfds.data_source` gives random access to datasets prepared in the ``array_record`` format. A
dataset that is not prepared on this machine (and cannot be downloaded: this code never asks
TFDS to download) is a `DatasetNotFoundError` whose message says how to prepare it.

A ``gs://`` data_dir (any non-local one) is copied to this host first (`local_data_dir`): the
prepared dataset's directory, once per host, into the data cache (``$COMPARENETS_DATA_CACHE``,
else ``$XDG_CACHE_HOME/comparenets/tfds``, else ``~/.cache/comparenets/tfds``). ArrayRecord's
reader is C++ and does not read through epath: on a bucket path it bypasses gcsfs (with no
network it hangs at the first record), so every host of a pod reads its own local copy.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import threading
from typing import Mapping

from absl import logging
from etils import epath

from comparenets import workdir as workdirs
from comparenets.errors import DatasetNotFoundError

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
  base = environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'comparenets', 'tfds')


def local_data_dir(name: str, data_dir: str) -> str:
  """A local data directory with dataset ``name`` as prepared in the bucket ``data_dir``.

  The dataset's prepared directory (``NAME[/CONFIG]/VERSION``, TFDS's layout) is copied whole,
  once per host and bucket, into `cache_root` under a name made of ``data_dir``; the copy is
  written to a temporary directory of this process and renamed into place, so processes of one
  host copying at once leave one whole copy, and a copy cut short is never read. A dataset not
  prepared in the bucket is a `DatasetNotFoundError`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # seconds to import
  data_dir = data_dir.rstrip('/')
  try:
    builder = tfds.builder(name, data_dir=data_dir)  # reads dataset_info.json through epath
    prepared = builder.is_prepared()
  except Exception:  # pylint: disable=broad-except  # tfds raises several kinds
    prepared = False
  if not prepared:
    raise DatasetNotFoundError(f'TFDS dataset {name!r} is not prepared in {data_dir}; '
                               f'{prepare_hint(name, data_dir)}')
  remote = epath.Path(builder.data_dir)
  relative = posixpath.relpath(os.fspath(remote), data_dir)
  root = os.path.join(cache_root(), re.sub(r'[^A-Za-z0-9._-]+', '_', data_dir))
  target = os.path.join(root, *relative.split('/'))
  if os.path.isdir(target):
    return root
  os.makedirs(os.path.dirname(target), exist_ok=True)
  tmp = f'{target}.tmp-{os.getpid()}-{threading.get_ident()}'
  files = list(_files(remote))
  logging.info('copying TFDS dataset %s (%d files) from %s to %s, once for this host', name,
               len(files), remote, target)
  try:
    for path in files:
      local = os.path.join(tmp, *posixpath.relpath(os.fspath(path), os.fspath(remote)).split('/'))
      os.makedirs(os.path.dirname(local), exist_ok=True)
      copy_file(path, local)
    try:
      os.rename(tmp, target)
    except OSError:
      if not os.path.isdir(target):  # not another process's copy, renamed first: a real error
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return root


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
