"""Multi-process runs: `jax.distributed.initialize` before any device is touched, and the slice of
each global batch that this process feeds.

A run is multi-process when ``--num_processes`` > 1 is given, or when the environment says so: a
Cloud TPU VM slice with several workers (``TPU_WORKER_HOSTNAMES`` lists more than one host) or a
SLURM job step with several tasks (``SLURM_NTASKS`` > 1), or when ``COMPARENETS_MULTIPROCESS=auto``
is set (what ``scripts/launch_tpu.sh`` does: on a Cloud TPU VM the worker list is in the VM's
metadata, not in the environment, and only JAX asks the metadata server). On TPU and SLURM, JAX
finds the coordinator, process count and index itself. On CPU, collectives across processes go
through gloo.

On SLURM, JAX would also restrict each process to the GPU whose ordinal is ``SLURM_LOCALID``
(jax/_src/clusters/cluster.py), which is wrong both ways this code is launched: with one process
per node that process drives only GPU 0 of its node's eight, and with one process per GPU
(``--gpus-per-task=1``) SLURM has already left each task one visible GPU, ordinal 0, so local
rank 1 asks for an ordinal that does not exist. `slurm_local_device_ids` gives JAX the right list:
every GPU ``CUDA_VISIBLE_DEVICES`` leaves visible to this task.
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


def _tasks_per_node(spec: str) -> list[int]:
  """SLURM's compressed task counts, ``'2(x3),1'`` -> ``[2, 2, 2, 1]``."""
  counts = []
  for part in spec.split(','):
    count, _, repeat = part.partition('(x')
    counts += [int(count)] * (int(repeat.rstrip(')')) if repeat else 1)
  return counts


def slurm_local_device_ids(env: Mapping[str, str] | None = None) -> list[int] | None:
  """The GPU ordinals this SLURM task drives, or None where JAX's own choice stands.

  srun sets ``CUDA_VISIBLE_DEVICES`` for each task to the GPUs it was given (all of the node's
  for one task per node; its own one under ``--gpus-per-task=1``, numbered from 0 where
  cgroups constrain devices, by its index on the node where they do not): CUDA numbers the
  visible ones 0..n-1, and this task drives all of them. Without ``CUDA_VISIBLE_DEVICES`` every
  task sees every GPU of the node: several tasks there split them by ``SLURM_LOCALID``; a single
  one drives the ``SLURM_GPUS_ON_NODE`` GPUs. ``JAX_LOCAL_DEVICE_IDS``, if set, wins.
  """
  env = os.environ if env is None else env
  if 'SLURM_JOB_ID' not in env or 'SLURM_LOCALID' not in env or 'JAX_LOCAL_DEVICE_IDS' in env:
    return None
  visible = [d for d in env.get('CUDA_VISIBLE_DEVICES', '').split(',') if d.strip()]
  if visible:
    return list(range(len(visible)))
  try:
    here = _tasks_per_node(env.get('SLURM_STEP_TASKS_PER_NODE', env.get('SLURM_TASKS_PER_NODE',
                                                                       '1')))
    tasks_here = here[min(int(env.get('SLURM_NODEID', '0')), len(here) - 1)]
    gpus = int(env.get('SLURM_GPUS_ON_NODE', '0'))
  except ValueError:
    return None
  if tasks_here > 1:
    return [int(env['SLURM_LOCALID'])]
  return list(range(gpus)) if gpus > 1 else None


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
  elif (devices := slurm_local_device_ids()) is not None:
    jax.distributed.initialize(local_device_ids=devices)  # the rest from SLURM's environment
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
