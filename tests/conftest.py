"""Test set-up: 8 simulated CPU devices, set before JAX starts (subprocesses inherit it), and
the command lines' CPU settings (`comparenets.runtime`), so the tests run what they run."""

import os
import shutil
import sys
import tempfile

import filelock
import pytest

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from comparenets import runtime  # pylint: disable=g-import-not-at-top,wrong-import-position
import faults  # pylint: disable=g-import-not-at-top,wrong-import-position  # (no JAX at import)

runtime.configure_cpu()
# JAX's persistent compilation cache, as the command lines use it (`runtime.enable_compilation_
# cache`): a test session compiles the same small programs in many tests; here they are
# compiled once. Its own directory, shared by the xdist workers and the command lines the tests
# start, so that the tests never read or fill a user's cache.
os.environ.setdefault('COMPARENETS_COMPILATION_CACHE',
                      os.path.join(tempfile.gettempdir(), f'comparenets-tests-xla-{os.getuid()}'))
runtime.enable_compilation_cache()


@pytest.fixture(scope='session')
def drill_reference(tmp_path_factory):
  """The workdir of one uninterrupted run of the drills' config (`faults.DRILL_CONFIG`, 8
  devices), which the kill -9 and SIGTERM drills of test_reliability.py and test_cli.py must
  reproduce. Trained once a test session: under xdist the first worker to ask trains it, under a
  lock, in the session's shared temporary directory, and the others read it."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    base = base.parent  # pytest-N/, shared by this session's workers (popen-gw0, popen-gw1...)
  workdir = base / 'drill-reference'
  with filelock.FileLock(str(base / 'drill-reference.lock')):
    if not (workdir / 'results.json').exists():
      partial = base / 'drill-reference.partial'  # a failed run leaves nothing to be read
      shutil.rmtree(partial, ignore_errors=True)  # nor anything to resume from
      proc = faults.run(faults.command(faults.DRILL_CONFIG, str(partial),
                                       faults.DRILL_OVERRIDES), devices=8, timeout=300)
      assert proc.returncode == 0, proc.stderr[-3000:]
      os.rename(partial, workdir)
  return str(workdir)
