"""Reading prepared TFDS datasets without TensorFlow, through `tfds.data_source`.

`tfds.data_source` gives random access to datasets prepared in the ``array_record`` format. A
dataset that is not prepared on this machine (and cannot be downloaded: this code never asks
TFDS to download) is a `DatasetNotFoundError` whose message says how to prepare it.
"""

from __future__ import annotations

from comparenets.errors import DatasetNotFoundError


def prepare_hint(name: str, data_dir: str | None) -> str:
  where = f' --data_dir={data_dir}' if data_dir else ''
  return (f'prepare it on a machine with network access: pip install tensorflow '
          f'tensorflow-datasets; tfds build {name} --file_format=array_record{where} '
          f'(then copy the data directory here and pass --config.task.data_dir=DIR)')


def open_split(name: str, split: str, data_dir: str | None = None):
  """A random-access source of one split of a prepared dataset."""
  # TFDS takes seconds to import: only runs of TFDS datasets load it
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
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
