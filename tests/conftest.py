"""Test set-up: 8 simulated CPU devices, set before JAX starts (subprocesses inherit it), and
the command lines' CPU settings (`comparenets.runtime`), so the tests run what they run."""

import os
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from comparenets import runtime  # pylint: disable=g-import-not-at-top,wrong-import-position

runtime.configure_cpu()
