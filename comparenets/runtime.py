"""Process-wide CPU settings that the command lines apply before JAX starts.

Three XLA and allocator settings, each measured on the 2-core CPU of BUILD_NOTES.md ("What changed
for speed"), and one of orbax's:

* The C allocator (glibc only): XLA:CPU takes every buffer of a step from ``malloc``, and glibc
  serves a large request with a fresh ``mmap`` that it unmaps on ``free``, so every step paid a
  page fault for each 4 KiB it wrote (a recurrent layer's stacked outputs: one fault per page,
  every call). `tune_malloc` keeps freed memory in the heap for reuse (no ``mmap`` for large
  blocks, no trimming below 2 GiB, a 64 MiB top pad, two arenas per core so XLA's worker
  threads reuse theirs).
  The price is a resident size that stays at its peak, which a training process has anyway.
* XLA:CPU's library fusions: by default XLA hands convolutions to YNNPACK, whose weight gradient
  is the slowest op of a CNN step; `XLA_CPU_FLAGS` keeps YNNPACK for dots and reductions only,
  which leaves convolutions to XLA's own (Eigen) kernels.
* XLA's temporary buffers: XLA puts all temporaries of a program in one block, which for a
  recurrent layer or a video CNN is 75-135 MiB, and XLA's threads ask ``malloc`` for it. glibc
  serves a thread's request over 64 MiB (the largest heap of a thread's arena) from a fresh
  ``mmap`` whatever ``mallopt`` says, and unmaps it on ``free``, so those steps paid a page
  fault per 4 KiB again. `XLA_CPU_ONLY_FLAGS` caps each temporary block at 32 MiB (XLA's
  ``xla_multiheap_size_constraint_per_heap``), which thread heaps serve and keep. This flag is
  not CPU-specific, so it is only set where JAX can run on nothing but the CPU
  (`cpu_only`): GPU and TPU runs keep XLA's default.

A fourth is not XLA's: where JAX runs on the CPU alone (`cpu_only`), `single_replica_saves`
turns off orbax's replica-parallel saving of `jax.Array`s, which orbax itself turns off for GPUs
only. With several CPU devices a replicated train state has a replica on each, and orbax had each
replica save its part, slicing it first: one compiled program per (array shape, part), about
40 ms each, so a run on 8 devices compiled one slice per device for every shape of its state
(1,337 of them in the test suite, 54 s). On a CPU the replicas share the host's memory, so
nothing is gained: one replica writes each array.

`configure_cpu` applies them unless ``COMPARENETS_CPU_TUNING=0``; a flag already in
``XLA_FLAGS`` is left as the user set it. Library code never calls it: importing comparenets in a
notebook changes nothing in the process.

`run_once` compiles a program that runs once (a model's initialisation) with
`ONCE_CPU_COMPILER_OPTIONS` on the CPU: for that program alone, not process-wide.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import logging
import os
import pkgutil
import platform
from typing import Mapping, MutableMapping

import filelock

# flag -> value, appended to XLA_FLAGS unless the flag is already there
XLA_CPU_FLAGS = {'xla_cpu_experimental_ynn_fusion_type': 'reduce,individual_dot'}
# the same, for flags that also reach GPU and TPU compilers: only where JAX can use the CPU alone
XLA_CPU_ONLY_FLAGS = {'xla_multiheap_size_constraint_per_heap': str(32 * 2**20)}

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8


# A model's initialisation runs once, so its program's speed does not matter, but XLA:CPU's
# compilation of it does: every parameter's random numbers (threefry, then the initialiser's
# arithmetic) cost about 0.15 s of LLVM each at XLA's default optimisation. At LLVM's -O1 the
# program compiles in about half the time (digits: 0.8-1.5 s -> 0.4-0.6 s a model) and gives
# bitwise the same parameters (tests/test_train.py; BUILD_NOTES.md, "Compiling the
# initialisation at -O1"). Train and eval steps, which run many times, keep XLA's default.
ONCE_CPU_COMPILER_OPTIONS = {'xla_backend_optimization_level': 1}


def run_once(fn, *args):
  """``jax.jit(fn)(*args)`` for a program run once, compiled with `ONCE_CPU_COMPILER_OPTIONS` on
  the CPU (other backends: their defaults, not measured). Inside a trace (``jax.eval_shape`` of
  a state, a sweep's jitted member) it is a nested jit, which takes no compiler options, and
  compiles with the program around it."""
  import jax  # pylint: disable=g-import-not-at-top  # runtime.py is read before JAX starts
  traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args))
  cpu = not traced and jax.default_backend() == 'cpu'
  return jax.jit(fn, compiler_options=ONCE_CPU_COMPILER_OPTIONS if cpu else None)(*args)


def tune_malloc() -> bool:
  """glibc's ``mallopt``: large blocks from the heap, kept after ``free``; False where the C
  library is not glibc (nothing changed)."""
  if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
    return False
  try:
    libc = ctypes.CDLL('libc.so.6')
  except OSError:
    return False
  # arenas: glibc's default (8 per core) left XLA's threads faulting in fresh heaps; one arena
  # made small steps wait on its lock (digits LSTM step 2.43 -> 2.86 ms); two per core kept
  # most of both (BUILD_NOTES.md; measured on 2 cores only)
  arenas = 2 * (os.cpu_count() or 1)
  # a top pad of 64 MiB (a thread arena's largest heap) keeps glibc from deleting a thread's
  # emptied heap, which it does whatever the trim threshold: in fresh processes the faulting
  # ones went from 3 of 8 to 1 of 8 (BUILD_NOTES.md)
  settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 64 * 2**20),
              (_M_ARENA_MAX, arenas))
  return all(libc.mallopt(option, value) == 1 for option, value in settings)


def cpu_only(environ: Mapping[str, str] | None = None) -> bool:
  """Whether JAX can only run on the CPU here: ``JAX_PLATFORMS`` names nothing else, or no
  GPU/TPU plugin is installed (what JAX itself looks for when it starts: modules under the
  ``jax_plugins`` namespace or its entry points, and ``libtpu``). Starts nothing."""
  environ = os.environ if environ is None else environ
  platforms = environ.get('JAX_PLATFORMS', '') or environ.get('JAX_PLATFORM_NAME', '')
  if platforms:
    return {p.strip().lower() for p in platforms.split(',') if p.strip()} <= {'cpu'}
  if importlib.util.find_spec('libtpu') is not None:
    return False
  if importlib.metadata.entry_points(group='jax_plugins'):
    return False
  namespace = importlib.util.find_spec('jax_plugins')
  return namespace is None or not any(
      pkgutil.iter_modules(namespace.submodule_search_locations or []))


def add_xla_flags(environ: MutableMapping[str, str] | None = None) -> list[str]:
  """Appends `XLA_CPU_FLAGS` to ``XLA_FLAGS``, and `XLA_CPU_ONLY_FLAGS` where `cpu_only`
  (each unless set there already); returns those added."""
  environ = os.environ if environ is None else environ
  current = environ.get('XLA_FLAGS', '')
  present = {part.lstrip('-').split('=', 1)[0] for part in current.split()}
  flags = {**XLA_CPU_FLAGS, **(XLA_CPU_ONLY_FLAGS if cpu_only(environ) else {})}
  added = [f'--{name}={value}' for name, value in flags.items() if name not in present]
  if added:
    environ['XLA_FLAGS'] = ' '.join([current, *added]).strip()
  return added


def single_replica_saves(environ: Mapping[str, str] | None = None) -> bool:
  """Where `cpu_only`, registers orbax's `jax.Array` handler (as orbax builds its default one)
  with ``use_replica_parallel=False``, for every checkpoint this process saves; returns whether
  it did. Touches no device."""
  if not cpu_only(environ):
    return False
  import jax  # pylint: disable=g-import-not-at-top  # runtime.py is read before JAX starts
  from orbax.checkpoint import type_handlers  # pylint: disable=g-import-not-at-top
  from orbax.checkpoint._src.metadata import array_metadata_store  # pylint: disable=g-import-not-at-top
  handler = type_handlers.ArrayHandler(array_metadata_store=array_metadata_store.Store(),
                                       use_replica_parallel=False)
  absl_logger = logging.getLogger('absl')  # orbax warns that it overrides its default handler
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    type_handlers.register_type_handler(jax.Array, handler, override=True)
  finally:
    absl_logger.setLevel(level)
  return True


def configure_cpu(environ: MutableMapping[str, str] | None = None) -> dict[str, object]:
  """All four settings, for a command line to call first thing; returns what it applied.

  Must run before JAX initialises its backend (XLA reads its flags once); raises RuntimeError
  otherwise, since the flags would be silently ignored.
  """
  environ = os.environ if environ is None else environ
  if environ.get('COMPARENETS_CPU_TUNING', '1') == '0':
    return {'xla_flags': [], 'malloc': False, 'single_replica_saves': False}
  # imported here, not at the top: runtime.py is read before JAX by the tests' conftest and the
  # command lines, and asks JAX only whether its backend has started
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    raise RuntimeError('configure_cpu() must run before JAX touches a device: its XLA flags '
                       'are read once, when the backend starts')
  return {'xla_flags': add_xla_flags(environ), 'malloc': tune_malloc(),
          'single_replica_saves': single_replica_saves(environ)}


def user_cache_dir(environ: Mapping[str, str] | None = None) -> str:
  """This user's cache of comparenets (compiled programs, parsed chorales, datasets copied from
  a bucket): ``$XDG_CACHE_HOME/comparenets``, else ``~/.cache/comparenets``."""
  environ = os.environ if environ is None else environ
  base = environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'comparenets')


def compilation_cache_dir(environ: Mapping[str, str] | None = None) -> str | None:
  """Where the command lines keep compiled programs: ``$COMPARENETS_COMPILATION_CACHE``
  (empty: none), else ``$XDG_CACHE_HOME/comparenets/xla`` (``~/.cache/...``)."""
  environ = os.environ if environ is None else environ
  if 'COMPARENETS_COMPILATION_CACHE' in environ:
    return environ['COMPARENETS_COMPILATION_CACHE'] or None
  return os.path.join(user_cache_dir(environ), 'xla')


def enable_compilation_cache(environ: Mapping[str, str] | None = None) -> str | None:
  """JAX's persistent compilation cache for the command lines (`compilation_cache_dir`):
  a program compiled once (a sweep's members trained one after another, a suite run again, the
  same experiment at another seed) is read back instead of compiled again: 3.4 s of a 6.7 s
  digits CNN run (BUILD_NOTES.md, "Members in one program"). Every program is kept, however
  quick its compilation, up to 2 GiB (the least recently used go first). Returns the directory, or None when turned off. Compile times that are
  themselves measurements (`comparenets.analysis.structure`) are taken with the cache off."""
  import jax  # pylint: disable=g-import-not-at-top  # after configure_cpu's XLA flags
  path = compilation_cache_dir(environ)
  if path:
    drop_unfinished_cache_entries(path)
    jax.config.update('jax_compilation_cache_dir', path)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
    jax.config.update('jax_compilation_cache_max_size', 2 * 2**30)  # least recently used go
  return path


def drop_unfinished_cache_entries(path: str) -> list[str]:
  """Deletes the entries of JAX's compilation cache in ``path`` whose write never finished; returns
  their names.

  JAX writes an entry as two files, the program (``<key>-cache``) and then its last use
  (``<key>-atime``), and before every later write it reads the ``-atime`` of every ``-cache``
  file to find what to evict. A process killed between the two writes (``kill -9``, the OOM
  killer, a lost host) leaves a program without its ``-atime``, and from then on every write
  into that cache fails with a FileNotFoundError warning: nothing new is kept and every run
  compiles everything again (found in a cache of 2026-12-01 whose three such entries had
  stopped all writes). Such an entry is also the one whose program may be cut short, so it is
  deleted, under the lock JAX itself takes (``.lockfile``). Local directories only."""
  if '://' in path or not os.path.isdir(path):
    return []
  dropped = []
  try:
    with filelock.FileLock(os.path.join(path, '.lockfile'), timeout=10):
      names = set(os.listdir(path))
      for name in sorted(names):
        if name.endswith('-cache') and name[:-len('cache')] + 'atime' not in names:
          try:
            os.remove(os.path.join(path, name))
          except FileNotFoundError:
            continue
          dropped.append(name)
  except filelock.Timeout:  # another process holds the cache: it stays as it is
    pass
  return dropped


# train.steps_per_dispatch on an accelerator: see default_steps_per_dispatch
ACCELERATOR_STEPS_PER_DISPATCH = 25


def default_steps_per_dispatch(backend: str) -> int:
  """``train.steps_per_dispatch`` for ``backend`` (``jax.default_backend()``).

  * CPU: 1. The host is the device, so a dispatch costs little: the train loop ran at 0.94
    (digits CNN) and 0.97 (LSTM) of the bare compiled step with one step per call (BUILD_NOTES.md,
    issue 19), while k steps in one `lax.scan` ran the CNN 7x slower (XLA:CPU's convolutions
    inside a ``while`` loop).
  * GPU and TPU: 25. On an H200 a digits step takes 0.4-0.6 ms and the loop reached only 31%
    (LSTM) and 37% (CNN) of the bare step, about 1 ms of host work per call; 25 steps a call
    spread that over 10-15 ms of device work (about 90%), and 25 divides the default logging
    (100), validation and checkpoint (500) intervals, so every call runs 25 steps and only one
    program is compiled. Not yet measured on a GPU: ``scripts/bench/gpu.sh`` times 1, 5, 25 and
    100.
  """
  return 1 if backend == 'cpu' else ACCELERATOR_STEPS_PER_DISPATCH


def device_memory_limit() -> tuple[int, str] | None:
  """How many bytes one program may use on each of this process's devices, and what that is.

  An accelerator reports its own limit (``memory_stats()['bytes_limit']``). On a CPU the devices
  are the host, so the host's available memory (``MemAvailable`` in /proc/meminfo) is shared by
  every local device. None where neither is known.
  """
  import jax  # pylint: disable=import-outside-toplevel  (this module configures JAX first)
  device = jax.local_devices()[0]
  stats = device.memory_stats() if device.platform != 'cpu' else None
  if stats and stats.get('bytes_limit'):
    return int(stats['bytes_limit']), f'{device.device_kind} memory'
  try:
    with open('/proc/meminfo') as f:
      fields = dict(line.split(':', 1) for line in f)
    available = int(fields['MemAvailable'].split()[0]) * 1024
  except (OSError, KeyError, ValueError):
    return None
  return available // jax.local_device_count(), (
      f'the host\'s available memory shared by {jax.local_device_count()} CPU devices'
      if jax.local_device_count() > 1 else "the host's available memory")
