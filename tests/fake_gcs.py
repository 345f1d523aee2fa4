"""An in-memory fsspec filesystem standing in for ``gs://`` (no network), and the ``bucket``
fixture that installs it: what epath (and so `comparenets.workdir`) reads and writes a bucket
through when gcsfs is installed. A test module uses it with ``from fake_gcs import bucket``.

Checkpoints are not covered: Orbax writes ``gs://`` arrays through tensorstore's GCS driver,
which needs the real service.
"""

import os
import sys
import types

import fsspec
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import _registry  # pylint: disable=g-importing-member
import pytest


class FakeGCS(MemoryFileSystem):
  """fsspec's in-memory filesystem answering to ``gs://`` (what epath asks fsspec for)."""
  protocol = ('gs', 'gcs')
  store = {}
  pseudo_dirs = ['']

  @classmethod
  def _strip_protocol(cls, path):
    for prefix in ('gs://', 'gcs://'):
      if path.startswith(prefix):
        path = path[len(prefix):]
    return MemoryFileSystem._strip_protocol(path)


@pytest.fixture
def bucket(monkeypatch, tmp_path_factory):
  """An empty stand-in bucket for the test; yields a run directory on it. The test runs in an
  empty directory of its own, which must stay empty: a gs:// path mistaken for a local one
  would appear there."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(FakeGCS, 'store', {})
  monkeypatch.setattr(FakeGCS, 'pseudo_dirs', [''])
  cwd = tmp_path_factory.mktemp('cwd')
  monkeypatch.chdir(cwd)
  for name in ('gs', 'gcs'):
    fsspec.register_implementation(name, FakeGCS, clobber=True)
  # what `workdir.require_bucket_support` looks for: the stand-in is this session's gcsfs
  monkeypatch.setitem(sys.modules, 'gcsfs', types.ModuleType('gcsfs'))
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  yield 'gs://bucket/runs/one'
  for name in ('gs', 'gcs'):
    _registry.pop(name, None)
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  assert not os.listdir(cwd), 'something was written locally'


def upload(local: str, remote: str) -> None:
  """Copies the tree ``local`` to ``remote`` on the stand-in bucket, file by file."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  for folder, _, files in os.walk(local):
    for name in files:
      path = os.path.join(folder, name)
      target = epath.Path(remote) / os.path.relpath(path, local)
      target.parent.mkdir(parents=True, exist_ok=True)
      with open(path, 'rb') as f:
        target.write_bytes(f.read())
