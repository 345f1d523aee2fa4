"""Two processes x 4 simulated CPU devices, joined by jax.distributed over 127.0.0.1 (gloo),
train like one process with 8 devices and like one device; their checkpoint restores in one."""

import json
import os
import random
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from comparenets import distributed

import fake_slurm
import faults

OVERRIDES = ['--config.train.steps=20', '--config.train.checkpoint_every=10',
             '--config.train.log_every=10', '--config.train.eval_every=0',
             '--config.model.hidden=32']
CONFIG = 'experiments/digits.py:model=lstm,quick'


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _two_processes(workdir, parallel, timeout=150, extra=(), returncode=0):
  port = _free_port()
  cmd = faults.command(CONFIG, workdir, OVERRIDES + [f'--config.train.parallel={parallel}',
                                                     *extra])
  procs = [subprocess.Popen(cmd + [f'--coordinator_address=127.0.0.1:{port}',
                                   '--num_processes=2', f'--process_id={i}'],
                            cwd=faults.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=faults.environment(4)) for i in range(2)]
  errs = [p.communicate(timeout=timeout)[1] for p in procs]
  for p, err in zip(procs, errs):
    assert p.returncode == returncode, err[-3000:]
  return errs


def _slurm_job_id():
  """A job id whose coordinator port (JAX: 61440 + id % 4096, slurm_cluster.py) is free here."""
  for _ in range(100):
    port = random.randrange(61440, 65536)
    with socket.socket() as s:
      try:
        s.bind(('127.0.0.1', port))
      except OSError:
        continue
    return port - 61440 + 4096
  raise RuntimeError('no free port in 61440..65535')


def _srun_two_processes(workdir, parallel, tmp_path):
  """launch_slurm.sh's job script, one process per GPU (2 on one node), through a srun that
  sets what the real one sets (tests/fake_slurm.py): JAX finds everything from SLURM's
  variables, and each process drives the one device its CUDA_VISIBLE_DEVICES leaves it.
  Returns each process's stderr."""
  out = subprocess.run(
      ['bash', os.path.join(faults.ROOT, 'scripts', 'launch_slurm.sh'), f'--config={CONFIG}',
       f'--workdir={workdir}', '--nodes=1', '--gpus-per-node=2', '--per=gpu',
       f'--python={sys.executable}', f'--script={tmp_path}/job.sbatch', '--dry-run', '--',
       *OVERRIDES, f'--config.train.parallel={parallel}'],
      capture_output=True, text=True, check=True).stdout.splitlines()
  script = '\n'.join(out[1:-2]).replace('srun ', 'srun --label ')  # stderr lines by task
  srun = tmp_path / 'bin' / 'srun'
  srun.parent.mkdir()
  srun.write_text(f'#!{sys.executable}\nimport sys\n'
                  f'sys.path.insert(0, {os.path.dirname(__file__)!r})\n'
                  'import fake_slurm\nsys.exit(fake_slurm.srun(sys.argv[1:]))\n')
  srun.chmod(0o755)
  env = dict(faults.environment(4), **fake_slurm.sbatch_env(script, _slurm_job_id()))
  env['PATH'] = f'{srun.parent}:{env["PATH"]}'
  env.pop('COMPARENETS_MULTIPROCESS', None)
  proc = subprocess.run(['bash', '-c', script], env=env, capture_output=True, text=True,
                        timeout=150)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stderr.splitlines()
  return ['\n'.join(l[3:] for l in lines if l.startswith(f'{i}: ')) for i in range(2)]


def _one_process(workdir, devices, *extra):
  proc = faults.run(faults.command(CONFIG, workdir, OVERRIDES + list(extra)), devices=devices,
                    timeout=150)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-3, atol=2e-4), a, b)


@pytest.fixture(scope='module')
def references(tmp_path_factory):
  base = tmp_path_factory.mktemp('single')
  _one_process(str(base / 'eight'), 8)
  _one_process(str(base / 'one'), 1)
  return {'eight': faults.final_params(str(base / 'eight')),
          'one': faults.final_params(str(base / 'one'))}


# jit: started the way launch_slurm.sh and the real srun start them; pmap: by hand, with
# --coordinator_address/--num_processes/--process_id (as is the checkpoint test below).
@pytest.mark.parametrize('parallel,started', [('jit', 'srun'), ('pmap', 'flags')])
def test_two_processes_train_like_one(tmp_path, references, parallel, started):
  workdir = str(tmp_path / 'two')
  errs = (_srun_two_processes(workdir, parallel, tmp_path) if started == 'srun' else
          _two_processes(workdir, parallel))
  assert '8 devices' in errs[0]  # process 0 logs, and sees the global device count
  assert 'parameters' not in errs[1]  # process 1 keeps quiet
  step, params = faults.final_params(workdir)
  assert step == references['eight'][0] == 20
  _close(params, references['eight'][1])
  _close(params, references['one'][1])
  results = json.loads(open(os.path.join(workdir, 'results.json')).read())
  assert results['devices'] == 8


def test_checkpoint_of_two_processes_resumes_in_one(tmp_path):
  workdir = str(tmp_path / 'two')
  _two_processes(workdir, 'jit')
  resumed = _one_process(workdir, 8, '--config.train.steps=30')
  assert 'resuming from the checkpoint at step 20' in resumed.stderr
  results = json.loads(open(os.path.join(workdir, 'results.json')).read())
  assert results['resumed_from'] == 20 and results['steps'] == 30


@pytest.mark.parametrize('extra,message', [
    (['--config.train.batch_size=12'],
     "train.batch_size=12 does not divide over the 8 devices (2 processes x 4) of "
     "train.parallel='jit'; use a multiple of 8 (it is the global batch, over all processes)"),
    (['--config.train.parallel=none'],
     "train.parallel='none' runs on one device, and this run has 2 processes; use 'jit' or "
     "'pmap'"),
])
def test_a_config_that_cannot_run_on_two_processes_is_one_line_each(tmp_path, extra, message):
  workdir = tmp_path / 'bad'
  errs = _two_processes(str(workdir), 'jit', extra=extra, returncode=2)
  for err in errs:
    assert f'comparenets: error: {message}' in err.splitlines()
  assert not workdir.exists()  # refused before anything was written


def test_process_slices_tile_the_global_batch():
  batch = {'x': np.arange(16).reshape(8, 2)}
  parts = [distributed.process_slice(batch, i, 4)['x'] for i in range(4)]
  np.testing.assert_array_equal(np.concatenate(parts), batch['x'])
  with pytest.raises(ValueError, match='a global batch of 8 does not split over 3 processes'):
    distributed.process_slice(batch, 0, 3)


def test_environment_detection(monkeypatch):
  monkeypatch.delenv('SLURM_NTASKS', raising=False)
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w0,w1,w2,w3')
  assert distributed.detected_processes() == 4
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'localhost')
  assert distributed.detected_processes() == 1
  monkeypatch.setenv('SLURM_NTASKS', '16')
  assert distributed.detected_processes() == 16
