"""A stand-in for `sbatch` and `srun` that sets what the real ones set, for tests on one machine.

What the real ones set, from SLURM's documentation:
- sbatch (https://slurm.schedmd.com/sbatch.html, OUTPUT ENVIRONMENT VARIABLES): SLURM_JOB_ID,
  SLURM_JOB_NUM_NODES / SLURM_NNODES, SLURM_JOB_NODELIST, SLURM_NTASKS, SLURM_NTASKS_PER_NODE,
  SLURM_TASKS_PER_NODE, SLURM_GPUS_PER_TASK or SLURM_GPUS_PER_NODE as requested;
- srun (https://slurm.schedmd.com/srun.html, OUTPUT ENVIRONMENT VARIABLES), for each task:
  SLURM_PROCID (rank in the step), SLURM_LOCALID (rank on its node), SLURM_NODEID,
  SLURM_NTASKS, SLURM_STEP_NODELIST, SLURM_STEP_NUM_NODES, SLURM_STEP_NUM_TASKS,
  SLURM_STEP_TASKS_PER_NODE, SLURM_GPUS_ON_NODE;
- the GPU GRES plugin (https://slurm.schedmd.com/gres.html, GPU Management): CUDA_VISIBLE_DEVICES
  per task, the GPUs the task was given; with cgroups constraining devices (ConstrainDevices=yes,
  the common setup) the task sees only those, numbered from 0. So one task per node sees
  ``0,1,...,G-1``; under ``--gpus-per-task=1`` (which implies ``--gpu-bind=per_task:1``) every
  task sees ``0``.
The nodes are all this machine (``localhost``): JAX takes the first one as the coordinator.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading


def sbatch_env(script: str, job_id: int) -> dict[str, str]:
  """The variables sbatch sets for a script with these #SBATCH lines."""
  opts = dict(re.findall(r'^#SBATCH --([a-z-]+)=(\S+)$', script, re.M))
  nodes, per_node = int(opts['nodes']), int(opts['ntasks-per-node'])
  env = {'SLURM_JOB_ID': str(job_id), 'SLURM_JOB_NUM_NODES': str(nodes),
         'SLURM_NNODES': str(nodes), 'SLURM_JOB_NODELIST': ','.join(['localhost'] * nodes),
         'SLURM_NTASKS': str(nodes * per_node), 'SLURM_NTASKS_PER_NODE': str(per_node),
         'SLURM_TASKS_PER_NODE': f'{per_node}(x{nodes})' if nodes > 1 else str(per_node)}
  for key in ('gpus-per-task', 'gpus-per-node'):
    if key in opts:
      env['SLURM_' + key.upper().replace('-', '_')] = opts[key]
  return env


def task_env(env: dict[str, str], procid: int) -> dict[str, str]:
  """What srun adds for task ``procid`` of a step inheriting sbatch's ``env``."""
  nodes, per_node = int(env['SLURM_JOB_NUM_NODES']), int(env['SLURM_NTASKS_PER_NODE'])
  if 'SLURM_GPUS_PER_TASK' in env:
    gpus_here = per_node * int(env['SLURM_GPUS_PER_TASK'])
    visible = ','.join(str(i) for i in range(int(env['SLURM_GPUS_PER_TASK'])))
  else:
    gpus_here = int(env.get('SLURM_GPUS_PER_NODE', '0'))
    visible = ','.join(str(i) for i in range(gpus_here))
  out = dict(env, SLURM_PROCID=str(procid), SLURM_LOCALID=str(procid % per_node),
             SLURM_NODEID=str(procid // per_node), SLURM_NTASKS=str(nodes * per_node),
             SLURM_STEP_ID='0', SLURM_STEP_NODELIST=env['SLURM_JOB_NODELIST'],
             SLURM_STEP_NUM_NODES=str(nodes), SLURM_STEP_NUM_TASKS=str(nodes * per_node),
             SLURM_STEP_TASKS_PER_NODE=env['SLURM_TASKS_PER_NODE'],
             SLURM_GPUS_ON_NODE=str(gpus_here))
  if visible:
    out['CUDA_VISIBLE_DEVICES'] = visible
  return out


def srun(argv: list[str]) -> int:
  """``srun [--options] program args...``: every task at once, its exit status the worst of
  theirs. Of srun's options only ``--label`` changes anything here: each line of a task's
  stderr is prefixed with its task number and ``: ``, as srun does."""
  options = []
  while argv and argv[0].startswith('-'):
    options.append(argv.pop(0))
  label = '--label' in options or '-l' in options
  procs = [subprocess.Popen(argv, env=task_env(dict(os.environ), i), text=True,
                            stderr=subprocess.PIPE if label else None)
           for i in range(int(os.environ['SLURM_NTASKS']))]
  if label:
    def relay(i, stream):
      for line in stream:
        sys.stderr.write(f'{i}: {line}')
    threads = [threading.Thread(target=relay, args=(i, p.stderr)) for i, p in enumerate(procs)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
  codes = [p.wait() for p in procs]
  return max(codes, key=abs)


if __name__ == '__main__':
  sys.exit(srun(sys.argv[1:]))
