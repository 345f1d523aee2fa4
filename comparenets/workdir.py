"""Workdir paths that may be local or on a bucket (``gs://bucket/run``), through `etils.epath`.

Everything a run writes besides its checkpoints (``config.json``, ``metrics.jsonl``,
``results.json``, artifacts) goes through these helpers, so ``--workdir=gs://bucket/run`` works
like a local directory; Orbax writes the checkpoints to the same place by itself. ``gs://``
paths need ``gcsfs`` (``pip install comparenets[gcs]``) when TensorFlow is not installed: epath
reads and writes them through fsspec.
"""

from __future__ import annotations

import os

from etils import epath


def is_local(path: str | os.PathLike) -> bool:
  """Whether ``path`` is on this machine's filesystem (not ``gs://``, ``s3://``, ...)."""
  return '://' not in os.fspath(path)


def resolve(path: str | os.PathLike) -> str:
  """An absolute local path, or a bucket URI unchanged."""
  path = os.fspath(path)
  return os.path.abspath(path) if is_local(path) else path


def join(workdir: str | os.PathLike, *parts: str) -> epath.Path:
  return epath.Path(resolve(workdir)).joinpath(*parts)


def write_text(path: epath.Path, text: str) -> None:
  """Writes a whole file so that readers see the old or the new contents, never a part.

  Locally: a temporary file renamed over the target. On a bucket an object appears only when
  its upload completes, so a direct write is already all-or-nothing.
  """
  if not is_local(path):
    path.write_text(text)
    return
  tmp = path.parent / (path.name + '.tmp')
  tmp.write_text(text, encoding='utf-8')
  os.replace(tmp, path)


def read_text(path: epath.Path) -> str | None:
  """The file's contents, or None when it does not exist."""
  return path.read_text() if path.exists() else None
