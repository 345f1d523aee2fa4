"""The command lines' CPU settings (comparenets.runtime); conftest applies them to this process."""

import platform
import resource

import jax
import jax.numpy as jnp
import pytest

from comparenets import runtime

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


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='mallopt is glibc only')
def test_freed_buffers_are_reused_without_page_faults():
  """A 32 MiB output written every call: glibc's default maps fresh pages for it each time (a
  fault per 4 KiB page, 8,192 a call); tuned, the heap hands back the freed block (no fault
  a call once the heap has grown to its working size)."""
  assert runtime.tune_malloc()
  f = jax.jit(lambda a: jax.lax.scan(lambda c, _: (c + 1.0, c), a, None, length=128))
  a = jnp.ones((64, 1024))
  for _ in range(25):  # the heap grows to its working size in the first calls
    jax.block_until_ready(f(a))
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(10):
    jax.block_until_ready(f(a))
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
  pages = 128 * 64 * 1024 * 4 / 4096
  assert faults < 0.25 * pages, (faults, pages)
