"""Text corpora as byte streams: the running interpreter's standard library source (embedded,
always there offline) and TFDS ``tiny_shakespeare`` (when prepared).

Text is read as UTF-8 bytes, so the vocabulary is the 256 byte values ("characters" below; the
standard library's source is almost entirely ASCII, where a byte is a character).
"""

from __future__ import annotations

import functools
import glob
import os
import sysconfig
import zlib

import numpy as np

from comparenets.data import pipeline
from comparenets.data import tfds_source

VOCAB = 256
SPLITS = ('train', 'validation', 'test')


def stdlib_split_of(filename: str) -> str:
  """A stable split for a file, from the CRC-32 of its name: 10 % test, 10 % validation."""
  bucket = zlib.crc32(os.path.basename(filename).encode()) % 10
  return 'test' if bucket == 0 else 'validation' if bucket == 1 else 'train'


@functools.lru_cache(maxsize=2)
def stdlib_corpus() -> dict[str, np.ndarray]:
  """The top-level ``*.py`` files of this interpreter's standard library, split by file.

  Returns ``{split: uint8 [n]}``; files are joined with a blank line between them.
  """
  directory = sysconfig.get_paths()['stdlib']
  files = sorted(glob.glob(os.path.join(directory, '*.py')))
  if not files:
    raise FileNotFoundError(f'no standard library source files in {directory}')
  parts: dict[str, list[bytes]] = {s: [] for s in SPLITS}
  for path in files:
    with open(path, 'rb') as f:
      parts[stdlib_split_of(path)].append(f.read())
  return {s: np.frombuffer(b'\n\n'.join(chunks), np.uint8).copy() for s, chunks in parts.items()}


def tfds_corpus(name: str = 'tiny_shakespeare', data_dir: str | None = None):
  """A TFDS text dataset whose splits each hold examples with a 'text' feature."""
  out = {}
  for split in SPLITS:
    source = tfds_source.open_split(name, split, data_dir)
    texts = [r['text'] for r in pipeline.read_records(source, range(len(source)))]
    joined = b'\n\n'.join(t if isinstance(t, bytes) else str(t).encode() for t in texts)
    out[split] = np.frombuffer(joined, np.uint8).copy()
  return out


def decode(ids) -> str:
  return bytes(np.asarray(ids, np.uint8).tolist()).decode('utf-8', errors='replace')


def encode(text: str) -> np.ndarray:
  return np.frombuffer(text.encode('utf-8'), np.uint8).astype(np.int32)
