"""J. S. Bach's four-part chorales from music21's corpus, as piano rolls cached on disk.

music21 (BSD) ships its corpus in the wheel: every score file under ``music21/corpus/bach/``
(``.mxl``, ``.xml`` and ``.krn``; 413 files in music21 10.5.1, the Riemenschneider analyses
aside). The chorales kept are those with exactly four parts (368 of the 413: the SATB settings;
44 of the others add instrumental lines such as horns, trumpets and timpani, one has two).

The conversion (`piano_roll`), fixed and tested: time steps of ``1 / steps_per_quarter`` quarter
notes (2: one step per eighth note) from the score's start (a pickup measure's); a MIDI
key is on at step t when a note of that pitch, in any part, sounds at the step's start
(onset <= t / steps_per_quarter < onset + duration). Notes shorter than a step that start
between two step starts are skipped (they are passing ornaments in the chorales), tied notes read
as one held note, a unison of two voices is one key, grace notes (no duration) are dropped and
repeats are not expanded. Rolls keep all 128 MIDI keys; the task crops them to the range the
four-part chorales use, MIDI 36 to 88 (C2 to E6, 53 keys; `LOWEST_KEY`, `HIGHEST_KEY`), fixed
here so that a model's size does not depend on reading the data, and checked when the rolls
are loaded.

Parsing the scores takes about 10 s on 2 CPU cores (17 s on one; one process per core), so it is
done once per
(music21 version, resolution, conversion version): the rolls go into one ``.npz`` under the
cache directory (``$XDG_CACHE_HOME/comparenets``, else ``~/.cache/comparenets``), written
atomically so that a run killed while writing leaves no half file.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.metadata
import math
import multiprocessing
import os
import tempfile

from absl import logging
import numpy as np

from comparenets import runtime
from comparenets.errors import DatasetNotFoundError

INSTALL = "pip install 'music21>=10.5,<11'"
# Bump when `piano_roll` or the choice of files changes: old caches are then left unread.
CONVERSION_VERSION = 1
PARTS = 4
KEYS = 128
LOWEST_KEY, HIGHEST_KEY = 36, 88   # MIDI; measured over the 368 chorales of music21 10.5.1
EXTENSIONS = ('mxl', 'xml', 'krn')


def default_cache_dir() -> str:
  return runtime.user_cache_dir()


def music21_version() -> str:
  """The installed music21's version (read from its metadata, without importing it)."""
  try:
    return importlib.metadata.version('music21')
  except importlib.metadata.PackageNotFoundError:
    raise DatasetNotFoundError(_missing('music21 is not installed')) from None


def _missing(what: str) -> str:
  return (f'{what}; the song task reads the Bach chorales that ship in its wheel: {INSTALL} '
          f'(then run the same command again)')


def _music21():
  """The music21 module, or a `DatasetNotFoundError` naming the install command."""
  try:
    # music21 takes a third of a second to import and only preparing the cache needs it
    import music21  # pylint: disable=g-import-not-at-top
    from music21 import corpus  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise DatasetNotFoundError(_missing('music21 is not installed')) from None
  except Exception as e:  # pylint: disable=broad-except  # a broken install raises anything
    raise DatasetNotFoundError(_missing(
        f'music21 is installed but does not import ({type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""}); reinstall it')) from None
  return music21


def chorale_paths() -> list[str]:
  """The score files of the Bach chorales in the installed music21's corpus, sorted by name."""
  music21 = _music21()
  paths = music21.corpus.getComposer('bach', fileExtensions=EXTENSIONS)
  if not paths:
    raise DatasetNotFoundError(_missing('music21 is installed but its corpus has no Bach '
                                        'chorales (a build without the corpus?); reinstall it'))
  return sorted((str(p) for p in paths), key=os.path.basename)


def piece_name(path: str) -> str:
  """``.../bwv112.5-sc.mxl`` -> ``bwv112.5-sc``."""
  base = os.path.basename(path)
  return base.rsplit('.', 1)[0]


def piece_group(name: str) -> str:
  """The chorale a file sets: its BWV number, without a variant suffix (``bwv112.5-sc`` and
  ``bwv112.5`` are versions of one chorale, so they go to one split)."""
  return name.split('-', 1)[0]


def piano_roll(score, steps_per_quarter: int) -> np.ndarray:
  """A music21 score as a bool piano roll ``[T, 128]`` (MIDI keys), as the module docstring
  describes; T covers the score up to its last sounding step."""
  notes = score.flatten().notes
  end = max((float(n.offset) + float(n.duration.quarterLength) for n in notes), default=0.0)
  roll = np.zeros((math.ceil(end * steps_per_quarter - 1e-9), KEYS), bool)
  for n in notes:
    start = float(n.offset)
    stop = start + float(n.duration.quarterLength)
    first = math.ceil(start * steps_per_quarter - 1e-9)
    last = math.ceil(stop * steps_per_quarter - 1e-9)
    for pitch in getattr(n, 'pitches', ()):
      roll[first:last, pitch.midi] = True
  return roll


def _parse_roll(path: str, steps_per_quarter: int):
  """One score file as ``(piece name, `piano_roll`)`` when it is a four-part chorale, else
  ``None``; run in `convert`'s worker processes (a roll is small to send back, a score not)."""
  music21 = _music21()
  try:
    # straight from the source: music21's default also writes a gzipped pickle of every score
    # to its scratch directory (/tmp/music21), which doubled the cold parse (37 s against 17 s
    # for the whole corpus on one core) and leaves 400 files behind for a one-time conversion
    score = music21.converter.parse(path, forceSource=True, storePickle=False)
  except Exception as e:  # pylint: disable=broad-except  # music21's parsers raise many kinds
    raise DatasetNotFoundError(_missing(
        f'music21 could not parse {os.path.basename(path)} from its own corpus '
        f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}); reinstall '
        f'it')) from None
  if len(score.parts) != PARTS:
    return None
  return piece_name(path), piano_roll(score, steps_per_quarter)


def convert(paths: list[str], steps_per_quarter: int,
            workers: int | None = None) -> dict[str, np.ndarray]:
  """Parses ``paths`` and keeps the four-part chorales: ``{'names': str [N], 'lengths': int
  [N], 'rolls': bool [sum of lengths, 128]}`` (the rolls one after another, in the order of
  ``paths``). The files are parsed by ``workers`` processes (default: one per CPU core;
  music21's parser is pure Python), started fresh (``spawn``: the caller may hold JAX's
  threads, which a fork would copy mid-flight)."""
  _music21()  # a missing music21 is one error here, before any process starts
  workers = min(len(paths), workers or os.cpu_count() or 1)
  parse = functools.partial(_parse_roll, steps_per_quarter=steps_per_quarter)
  if workers <= 1:
    parsed = [parse(p) for p in paths]
  else:
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
      parsed = list(pool.map(parse, paths, chunksize=max(1, len(paths) // (4 * workers))))
  parsed = [p for p in parsed if p is not None]
  rolls = [roll for _, roll in parsed]
  return {'names': np.array([name for name, _ in parsed]),
          'lengths': np.array([len(r) for r in rolls], np.int64),
          'rolls': np.concatenate(rolls) if rolls else np.zeros((0, KEYS), bool)}


def cache_path(cache_dir: str, steps_per_quarter: int) -> str:
  return os.path.join(cache_dir or default_cache_dir(),
                      f'bach_chorales_music21-{music21_version()}_{steps_per_quarter}perquarter_'
                      f'v{CONVERSION_VERSION}.npz')


@functools.lru_cache(maxsize=4)
def load(cache_dir: str, steps_per_quarter: int) -> dict[str, np.ndarray]:
  """``{name: bool roll [T, 128]}`` of every four-part chorale, in name order: read from the
  cache, or converted from the installed music21 and cached first."""
  path = cache_path(cache_dir, steps_per_quarter)
  if not os.path.exists(path):
    paths = chorale_paths()  # a missing music21 is an error before anything is announced
    logging.info('preparing the Bach chorales from music21 (parsing takes 10 to 20 s, '
                 'once) into %s', path)
    data = convert(paths, steps_per_quarter)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.npz.tmp')
    try:
      with os.fdopen(fd, 'wb') as f:
        np.savez_compressed(f, **data)
      os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep the cache from the machine's other users
      os.replace(tmp, path)
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
  with np.load(path) as data:
    outside = np.flatnonzero(np.delete(data['rolls'].any(0),
                                       np.arange(LOWEST_KEY, HIGHEST_KEY + 1)))
    if outside.size:
      raise ValueError(f'the chorales in {path} use MIDI keys outside {LOWEST_KEY}..'
                       f'{HIGHEST_KEY} (another music21 version?): widen LOWEST_KEY, '
                       f'HIGHEST_KEY in comparenets/data/chorales.py')
    rolls = np.split(data['rolls'].astype(bool), np.cumsum(data['lengths'])[:-1])
    return dict(zip(data['names'].tolist(), rolls))


def split_pieces(names: list[str], validation_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, list[str]]:
  """Pieces into train / validation / test by chorale (`piece_group`): the sorted groups in a
  permutation drawn from ``seed``; the first ``round(test_fraction * groups)`` are test, the
  next ``round(validation_fraction * groups)`` validation, the rest train. Each split lists its
  pieces in name order."""
  groups = sorted({piece_group(n) for n in names})
  order = np.random.default_rng(seed).permutation(len(groups))
  n_test = round(test_fraction * len(groups))
  n_val = round(validation_fraction * len(groups))
  which = {}
  for rank, g in enumerate(order):
    which[groups[g]] = 'test' if rank < n_test else 'validation' if rank < n_test + n_val \
        else 'train'
  out = {'train': [], 'validation': [], 'test': []}
  for name in sorted(names):
    out[which[piece_group(name)]].append(name)
  return out
