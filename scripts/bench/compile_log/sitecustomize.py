"""Logs every JAX trace, lowering and XLA compilation of a process and of every process it
starts: put this directory on PYTHONPATH (Python imports ``sitecustomize`` at start-up).

    PYTHONPATH=scripts/bench/compile_log COMPILE_LOG=/tmp/compiles.log \\
      COMPARENETS_COMPILATION_CACHE=/tmp/empty-cache python -m pytest -n 2 tests
    python scripts/bench/compile_log/summarize.py /tmp/compiles.log

One tab-separated line per event: pid, JAX's event name, the function, seconds, and the test
that was running (``PYTEST_CURRENT_TEST``, which subprocesses inherit). A measurement tool, not
part of comparenets: it registers a `jax.monitoring` listener once ``jax._src.dispatch`` is
imported, so JAX is neither imported early nor configured differently.
"""

import importlib.abc
import importlib.util
import os
import sys

LOG = os.environ.get('COMPILE_LOG', '/tmp/compiles.log')
EVENTS = ('/jax/core/compile/jaxpr_trace_duration',
          '/jax/core/compile/jaxpr_to_mlir_module_duration',
          '/jax/core/compile/backend_compile_duration',
          '/jax/compilation_cache/compile_time_saved_sec')


def _register():
  from jax._src import monitoring  # pylint: disable=g-import-not-at-top

  def record(event, duration, **kwargs):
    if event in EVENTS:
      with open(LOG, 'a') as f:
        f.write(f"{os.getpid()}\t{event}\t{kwargs.get('fun_name', '')}\t{duration:.4f}\t"
                f"{os.environ.get('PYTEST_CURRENT_TEST', '-')}\n")

  monitoring.register_event_duration_secs_listener(record)


class _AfterDispatch(importlib.abc.MetaPathFinder):
  """Registers the listener right after JAX imports ``jax._src.dispatch``."""

  def find_spec(self, name, path, target=None):
    del path, target
    if name != 'jax._src.dispatch':
      return None
    sys.meta_path.remove(self)
    spec = importlib.util.find_spec(name)
    exec_module = spec.loader.exec_module

    def exec_then_register(module):
      exec_module(module)
      _register()

    spec.loader.exec_module = exec_then_register
    return spec


sys.meta_path.insert(0, _AfterDispatch())
