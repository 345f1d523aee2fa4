"""Test set-up: 8 simulated CPU devices, set before JAX starts (subprocesses inherit it), and
the command lines' CPU settings (`comparenets.runtime`), so the tests run what they run."""

import os
import sys
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from comparenets import runtime  # pylint: disable=g-import-not-at-top,wrong-import-position

runtime.configure_cpu()
# JAX's persistent compilation cache, as the command lines use it (`runtime.enable_compilation_
# cache`): a test session compiles the same small programs in many tests; here they are
# compiled once. Its own directory, shared by the xdist workers and the command lines the tests
# start, so that the tests never read or fill a user's cache.
os.environ.setdefault('COMPARENETS_COMPILATION_CACHE',
                      os.path.join(tempfile.gettempdir(), f'comparenets-tests-xla-{os.getuid()}'))
runtime.enable_compilation_cache()
