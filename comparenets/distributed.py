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
from typing import Mapping, TYPE_CHECKING

if TYPE_CHECKING:  # only named in annotations: the watching parent imports this module
  import numpy as np

# JAX's own defaults for the two other timeouts, passed by name so that every timeout of a run is
# stated here: processes that have not all joined after INITIALIZATION_TIMEOUT_S end with an
# error (the hosts of a slice start minutes apart when one installs slower); a process that
# finished waits up to SHUTDOWN_TIMEOUT_S at the end for the others to finish too.
INITIALIZATION_TIMEOUT_S = 300
SHUTDOWN_TIMEOUT_S = 300
# How long a process may send no heartbeat before the coordination service declares it lost and
# ends every other process (`comparenets.watchdog` words that end). JAX's default, kept on
# purpose: the heartbeats come from a thread of their own, so a long compilation, a checkpoint
# write or a busy host does not delay them, and only a dead process or a cut network stops them
# for this long; a false alarm costs a restart of every host (compiling again, up to
# checkpoint_every steps again), a true one this many seconds of the surviving hosts' time.
# --heartbeat_timeout_s sets it (the tests use 5 s).
HEARTBEAT_TIMEOUT_S = 100


def is_multiprocess(num_processes: int | None = None) -> bool:
  """Whether this run has several processes: ``--num_processes`` > 1, or the environment says so
  (`detected_processes`, ``COMPARENETS_MULTIPROCESS=auto``)."""
  return ((num_processes is not None and num_processes > 1) or
          os.environ.get('COMPARENETS_MULTIPROCESS', '') == 'auto' or detected_processes() > 1)


def detected_processes() -> int:
  """How many processes the environment (Cloud TPU, SLURM) says this run has; 1 if none."""
  hosts = [h for h in os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]
  if len(hosts) > 1:
    return len(hosts)
  try:
    return max(1, int(os.environ.get('SLURM_NTASKS', '1')))
  except ValueError:
    return 1


def detected_process_id() -> int | None:
  """This process's index where the environment says it (SLURM, a TPU slice on GKE); None on a
  Cloud TPU VM, whose worker number only JAX asks the metadata server for."""
  for name in ('SLURM_PROCID', 'TPU_WORKER_ID'):
    try:
      return int(os.environ[name])
    except (KeyError, ValueError):
      continue
  return None


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
               process_id: int | None = None,
               heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S) -> bool:
  """Joins the multi-process run if there is one; returns whether it did.

  Must run before anything touches a JAX device (the command line calls it first thing).
  """
  if not is_multiprocess(num_processes):
    return False
  import jax  # pylint: disable=g-import-not-at-top  # here: the watching parent has no JAX
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')  # CPU only; harmless elsewhere
  timeouts = dict(initialization_timeout=INITIALIZATION_TIMEOUT_S,
                  heartbeat_timeout_seconds=heartbeat_timeout_s,
                  shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
  if num_processes is not None and num_processes > 1:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id, **timeouts)
  elif (devices := slurm_local_device_ids()) is not None:
    # the rest from SLURM's environment
    jax.distributed.initialize(local_device_ids=devices, **timeouts)
  else:  # Cloud TPU / SLURM: everything from the environment
    jax.distributed.initialize(**timeouts)
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
