"""The command lines' CPU settings (comparenets.runtime); conftest applies them to this process."""

import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from comparenets import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAG = 'xla_cpu_experimental_ynn_fusion_type'


HEAPS = 'xla_multiheap_size_constraint_per_heap'
BOTH = [f'--{FLAG}=reduce,individual_dot', f'--{HEAPS}=33554432']


def test_xla_flags_appended_once_and_a_users_value_kept():
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8', 'JAX_PLATFORMS': 'cpu'}
  assert runtime.add_xla_flags(env) == BOTH
  assert env['XLA_FLAGS'] == ' '.join(['--xla_force_host_platform_device_count=8', *BOTH])
  assert runtime.add_xla_flags(env) == []  # a second call changes nothing
  mine = {'XLA_FLAGS': f'--{FLAG}=dot', 'JAX_PLATFORMS': 'cpu'}
  assert runtime.add_xla_flags(mine) == BOTH[1:]
  assert mine['XLA_FLAGS'] == f'--{FLAG}=dot {BOTH[1]}'
  empty = {'JAX_PLATFORMS': 'cpu'}
  runtime.add_xla_flags(empty)
  assert empty['XLA_FLAGS'] == ' '.join(BOTH)
  gpu = {'JAX_PLATFORMS': 'cuda,cpu'}  # the heap flag reaches GPU compilers too: not there
  assert runtime.add_xla_flags(gpu) == BOTH[:1]


def test_cpu_only_is_what_jax_could_find(monkeypatch):
  assert runtime.cpu_only({'JAX_PLATFORMS': 'cpu'})
  assert not runtime.cpu_only({'JAX_PLATFORMS': 'tpu'})
  assert not runtime.cpu_only({'JAX_PLATFORMS': 'cuda,cpu'})
  installed = set()  # what find_spec and the jax_plugins entry points report, whatever is here
  monkeypatch.setattr(importlib.util, 'find_spec',
                      lambda name, *a: object() if name in installed else None)
  monkeypatch.setattr(importlib.metadata, 'entry_points',
                      lambda group: ['xla_cuda12'] if 'entry point' in installed else [])
  assert runtime.cpu_only({})  # no GPU or TPU plugin
  installed.add('libtpu')
  assert not runtime.cpu_only({})  # what a TPU VM has
  assert runtime.cpu_only({'JAX_PLATFORMS': 'cpu'})  # unless told to use the CPU only
  installed.clear()
  installed.add('entry point')
  assert not runtime.cpu_only({})  # a GPU plugin registered by its package


def test_opt_out_and_too_late():
  env = {'COMPARENETS_CPU_TUNING': '0'}
  assert runtime.configure_cpu(env) == {'xla_flags': [], 'malloc': False,
                                       'single_replica_saves': False}
  assert env == {'COMPARENETS_CPU_TUNING': '0'}
  jax.devices()  # the backend is up: flags set now would be ignored, so it refuses
  with pytest.raises(RuntimeError, match='before JAX touches a device'):
    runtime.configure_cpu({})


def test_this_process_runs_with_the_flag():
  """XLA read the flag: the convolution is XLA's own op, not a YNNPACK fusion (the default)."""
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  x, w = jnp.ones((8, 14, 14, 32)), jnp.ones((3, 3, 32, 64))  # XLA's default: a YNN fusion
  text = jax.jit(conv).lower(x, w).compile().as_text()
  assert 'convolution(' in text and '__ynn_fusion' not in text


_TEMP_BLOCKS = """
import glob, json, os, re, sys, tempfile
import jax, jax.numpy as jnp

def scan_three_outputs(x):
  def step(c, _):
    c = jnp.tanh(c * 1.01)
    return c, (c * 2, c * 3, c * 4)
  _, ys = jax.lax.scan(step, x, None, length=64)  # each [64, 64, 2048] float32: 32 MiB
  return sum(jnp.sum(y * y) for y in ys)

blocks = {}
for name, options in json.loads(sys.argv[1]).items():
  with tempfile.TemporaryDirectory() as dump:
    jax.jit(scan_three_outputs, compiler_options={'xla_dump_to': dump, **options}).lower(
        jnp.ones((64, 2048))).compile()
    (path,) = glob.glob(os.path.join(dump, '*after_optimizations-buffer-assignment.txt'))
    with open(path, encoding='utf-8') as f:
      text = f.read()
  blocks[name] = [int(size) for size in
                  re.findall(r'allocation \\d+: size (\\d+), preallocated-temp', text)]
print(json.dumps(blocks))
"""


def test_temporaries_come_in_blocks_that_a_threads_heap_keeps():
  """XLA read the heap flag: 96 MiB of temporaries come as blocks of at most 32 MiB, which
  glibc serves from a thread's heap and keeps; in XLA's default single block (over a thread
  heap's 64 MiB) they came from a fresh mmap at every call (the faults: BUILD_NOTES.md).
  The buffer assignment is XLA's dump, written only when XLA compiles: the compilation runs in
  a process without the persistent cache (whose key ignores the dump directory, so a cached
  program, as on a second run of the tests, dumps nothing). It inherits this process's
  XLA_FLAGS, the command lines' settings."""
  env = dict(os.environ)
  env.pop('COMPARENETS_COMPILATION_CACHE', None)
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  options = {'tuned': {}, 'default': {HEAPS: -1}}
  out = subprocess.run([sys.executable, '-c', _TEMP_BLOCKS, json.dumps(options)], env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  blocks = json.loads(out.stdout.strip().splitlines()[-1])
  tuned, default = blocks['tuned'], blocks['default']
  assert max(tuned) <= 32 * 2**20 and sum(tuned) >= 96 * 2**20, tuned
  assert max(default) >= 96 * 2**20, default


_FAULTS = """
import ctypes, resource, sys
from comparenets import runtime
if sys.argv[1] == 'tuned':
  assert runtime.tune_malloc()
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 64 * 2**20  # past glibc's largest mmap threshold (32 MiB)
def write_and_free():  # as XLA does with a step's buffers (numpy would ask for huge pages)
  block = libc.malloc(SIZE)
  ctypes.memset(block, 1, SIZE)
  libc.free(block)
for _ in range(3):
  write_and_free()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
  write_and_free()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='mallopt is glibc only')
def test_freed_blocks_are_reused_without_page_faults():
  """The settings are in effect: a 64 MiB block written and freed again and again. glibc's
  default maps fresh pages for it each time (a fault per 4 KiB page, 16,384 a call); tuned, the
  heap hands back the freed block. Each in a fresh process. (What this does for XLA's buffers,
  which its threads allocate, is measured by the benchmarks: BUILD_NOTES.md.)"""
  pages = 64 * 2**20 / 4096
  env = dict(os.environ, COMPARENETS_CPU_TUNING='0')
  faults = {}
  for mode in ('default', 'tuned'):
    out = subprocess.run([sys.executable, '-c', _FAULTS, mode], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    faults[mode] = float(out.split()[-1])
  assert faults['default'] > 0.9 * pages and faults['tuned'] < 0.01 * pages, (faults, pages)


def test_default_steps_per_dispatch_is_one_on_a_cpu_and_fills_the_default_intervals():
  from comparenets.config_utils import TRAIN_DEFAULTS  # pylint: disable=g-import-not-at-top
  assert runtime.default_steps_per_dispatch('cpu') == 1
  for backend in ('gpu', 'tpu'):
    k = runtime.default_steps_per_dispatch(backend)
    assert k > 1
    # every call of the default intervals runs k steps: one compiled program
    for interval in ('log_every', 'eval_every', 'checkpoint_every'):
      assert TRAIN_DEFAULTS[interval] % k == 0, interval


_COMPILE_INTO_CACHE = '''
import sys, warnings
from comparenets import runtime
runtime.enable_compilation_cache({'COMPARENETS_COMPILATION_CACHE': sys.argv[1]})
import jax, jax.numpy as jnp
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter('always')
  jax.jit(lambda x: x * 3.0 + 1.0)(jnp.arange(5.0)).block_until_ready()
print([str(w.message) for w in caught if 'compilation cache' in str(w.message)])
'''


def test_a_cache_entry_whose_write_was_cut_short_no_longer_stops_every_write(tmp_path):
  """JAX reads every entry's ``-atime`` before it writes; a ``-cache`` file without one (its
  process killed between the two writes) made every later write fail. The command lines drop
  such entries first: a new program is written, with its ``-atime``, and no warning."""
  cache = tmp_path / 'xla'
  cache.mkdir()
  (cache / 'jit_cut-0123-cache').write_bytes(b'half a program')
  (cache / 'jit_kept-4567-cache').write_bytes(b'a program')
  (cache / 'jit_kept-4567-atime').write_bytes((1).to_bytes(8, 'little'))
  out = subprocess.run([sys.executable, '-c', _COMPILE_INTO_CACHE, str(cache)], cwd=ROOT,
                       capture_output=True, text=True, check=True).stdout
  assert out.strip() == '[]'  # no 'Error writing persistent compilation cache entry'
  names = set(os.listdir(cache))
  assert 'jit_cut-0123-cache' not in names and 'jit_kept-4567-cache' in names
  written = {n[:-len('-cache')] for n in names if n.endswith('-cache')} - {'jit_kept-4567'}
  assert written and all(f'{key}-atime' in names for key in written)
  assert runtime.drop_unfinished_cache_entries(str(cache)) == []  # nothing left unfinished
  assert runtime.drop_unfinished_cache_entries(str(tmp_path / 'none')) == []


def test_checkpoints_of_a_replicated_state_slice_nothing_on_the_cpu(tmp_path):
  """conftest's `configure_cpu` registered orbax's array handler without replica-parallel saving:
  a state replicated over the 8 CPU devices is saved without compiling a slice per replica (which
  orbax's default handler does), and restores equal."""
  from jax._src import monitoring  # pylint: disable=g-import-not-at-top
  from orbax.checkpoint import type_handlers  # pylint: disable=g-import-not-at-top
  from orbax.checkpoint._src.metadata import array_metadata_store  # pylint: disable=g-import-not-at-top
  from comparenets.checkpointing import Checkpointer  # pylint: disable=g-import-not-at-top
  assert type_handlers.get_type_handler(jax.Array)._use_replica_parallel is False  # pylint: disable=protected-access
  mesh = jax.sharding.Mesh(jax.devices(), ('data',))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  compiled = []

  def record(event, duration, **kwargs):
    del duration
    if event == '/jax/core/compile/backend_compile_duration':
      compiled.append(kwargs.get('fun_name'))

  def save(directory, rows):  # a shape no other test saves, so no slice program is cached
    tree = {'w': jax.device_put(jnp.arange(rows * 24.0).reshape(rows, 24), replicated)}
    ckpt = Checkpointer(str(directory), every=1)
    ckpt.save(1, tree)
    ckpt.wait()
    restored = ckpt.restore(1, tree)
    assert (jax.device_get(restored['w']) == jax.device_get(tree['w'])).all()

  monitoring.register_event_duration_secs_listener(record)
  try:
    save(tmp_path / 'single', 40)
    assert 'jit(slice)' not in compiled, compiled
    # orbax's own default (replica-parallel on a CPU): every replica slices its part
    default = type_handlers.ArrayHandler(array_metadata_store=array_metadata_store.Store())
    type_handlers.register_type_handler(jax.Array, default, override=True)
    save(tmp_path / 'parallel', 48)
    assert compiled.count('jit(slice)') == 8, compiled
  finally:
    monitoring.unregister_event_duration_listener(record)
    assert runtime.single_replica_saves()  # this process's handler again
