"""The command lines' CPU settings (comparenets.runtime); conftest applies them to this process."""

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


def test_xla_flags_appended_once_and_a_users_value_kept():
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  assert runtime.add_xla_flags(env) == [f'--{FLAG}=reduce,individual_dot']
  assert env['XLA_FLAGS'] == (f'--xla_force_host_platform_device_count=8 '
                              f'--{FLAG}=reduce,individual_dot')
  assert runtime.add_xla_flags(env) == []  # a second call changes nothing
  mine = {'XLA_FLAGS': f'--{FLAG}=dot'}
  assert runtime.add_xla_flags(mine) == [] and mine['XLA_FLAGS'] == f'--{FLAG}=dot'
  empty = {}
  runtime.add_xla_flags(empty)
  assert empty['XLA_FLAGS'] == f'--{FLAG}=reduce,individual_dot'


def test_opt_out_and_too_late():
  env = {'COMPARENETS_CPU_TUNING': '0'}
  assert runtime.configure_cpu(env) == {'xla_flags': [], 'malloc': False}
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
