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


# The longest tests on an empty compilation cache (BUILD_NOTES.md, "Where the cold time goes"),
# none with a module-scoped fixture that moving it would set up twice. They run first: under
# `--dist worksteal` a worker steals from the end of the other's queue, so what is left for last
# is short and the two workers end together, where one of these started last could run on alone
# for a minute.
LONG_FIRST = (
    'test_performance.py::test_benchmarks_run_on_tiny_shapes',
    'test_notebook.py::test_notebook_runs_top_to_bottom',
    'test_sweep.py::test_sigterm_mid_sweep_checkpoints_and_the_rerun_matches',
    'test_tfds_images.py::test_trains_end_to_end_on_mock_mnist',
    'test_cli.py::test_kill_9_midway_then_rerun_equals_an_uninterrupted_run',
    'test_super_resolution.py::test_quick_run_reports_model_and_bicubic',
    'test_structure.py::test_analyze_reports_params_receptive_field_and_memory',
    'test_conv.py::test_tcn_forms_share_parameters_outputs_and_gradients',
    'test_edges.py::test_quick_run_reports_ods_f_next_to_the_baselines',
)


def pytest_collection_modifyitems(items):
  def rank(item):
    name = item.nodeid.split('/')[-1].split('[')[0]
    return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)
  items.sort(key=rank)  # stable: everything else keeps its order
