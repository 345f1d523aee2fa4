"""Multi-process runs: `jax.distributed.initialize` before any device is touched, and the slice of
each global batch that this process feeds.

A run is multi-process when ``--num_processes`` > 1 is given, or when the environment says so: a
Cloud TPU VM slice with several workers (``TPU_WORKER_HOSTNAMES`` lists more than one host) or a
SLURM job step with several tasks (``SLURM_NTASKS`` > 1), or when ``COMPARENETS_MULTIPROCESS=auto``
is set (what ``scripts/launch_tpu.sh`` does: on a Cloud TPU VM the worker list is in the VM's
metadata, not in the environment, and only JAX asks the metadata server). On TPU and SLURM, JAX
finds the coordinator, process count and index itself. On CPU, collectives across processes go
through gloo.
"""

from __future__ import annotations

import os
from typing import Mapping

import jax
import numpy as np


def detected_processes() -> int:
  """How many processes the environment (Cloud TPU, SLURM) says this run has; 1 if none."""
  hosts = [h for h in os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]
  if len(hosts) > 1:
    return len(hosts)
  try:
    return max(1, int(os.environ.get('SLURM_NTASKS', '1')))
  except ValueError:
    return 1


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Joins the multi-process run if there is one; returns whether it did.

  Must run before anything touches a JAX device (the command line calls it first thing).
  """
  explicit = num_processes is not None and num_processes > 1
  auto = os.environ.get('COMPARENETS_MULTIPROCESS', '') == 'auto'
  if not explicit and not auto and detected_processes() <= 1:
    return False
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')  # CPU only; harmless elsewhere
  if explicit:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  else:
    jax.distributed.initialize()  # Cloud TPU / SLURM: everything from the environment
  return True


def process_slice(batch: Mapping[str, np.ndarray], index: int, count: int) -> dict:
  """This process's contiguous share of a global batch (the rows its devices hold)."""
  out = {}
  for key, value in batch.items():
    n = len(value)
    if n % count:
      raise ValueError(f'a global batch of {n} does not split over {count} processes')
    per = n // count
    out[key] = value[index * per:(index + 1) * per]
  return out
