"""Two processes x 4 simulated CPU devices, joined by jax.distributed over 127.0.0.1 (gloo),
train like one process with 8 devices and like one device; their checkpoint restores in one; a
lost process ends the other with one line, and the same command resumes exactly."""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

from comparenets import distributed
from comparenets import watchdog

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


def _start_two(workdir, parallel, extra=()):
  port = _free_port()
  cmd = faults.command(CONFIG, workdir, OVERRIDES + [f'--config.train.parallel={parallel}',
                                                     *extra])
  return [subprocess.Popen(cmd + [f'--coordinator_address=127.0.0.1:{port}',
                                  '--num_processes=2', f'--process_id={i}'],
                           cwd=faults.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, env=faults.environment(4)) for i in range(2)]


def _two_processes(workdir, parallel, timeout=150, extra=(), returncode=0):
  procs = _start_two(workdir, parallel, extra)
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


@pytest.fixture(scope='module')
def two_process_run(tmp_path_factory):
  """An uninterrupted 2-process jit run: its workdir (not to be changed: copy it) and final
  (step, parameters)."""
  workdir = str(tmp_path_factory.mktemp('two') / 'run')
  _two_processes(workdir, 'jit')
  return workdir, faults.final_params(workdir)


def test_checkpoint_of_two_processes_resumes_in_one(tmp_path, two_process_run):
  workdir = str(tmp_path / 'two')
  shutil.copytree(two_process_run[0], workdir)
  resumed = _one_process(workdir, 8, '--config.train.steps=30')
  assert 'resuming from the checkpoint at step 20' in resumed.stderr
  results = json.loads(open(os.path.join(workdir, 'results.json')).read())
  assert results['resumed_from'] == 20 and results['steps'] == 30


HEARTBEAT_S = 5


def _kill_host(proc):
  """SIGKILL to a command line and to the training child it watches (`comparenets.watchdog`),
  the child first: a host that goes away."""
  children = open(f'/proc/{proc.pid}/task/{proc.pid}/children').read().split()
  assert len(children) == 1, children  # the watched child, in a session of its own
  os.kill(int(children[0]), signal.SIGKILL)
  proc.kill()


def test_a_lost_process_ends_the_other_with_one_line_and_the_rerun_resumes_exactly(
    tmp_path, two_process_run):
  workdir = str(tmp_path / 'lost')
  extra = [f'--heartbeat_timeout_s={HEARTBEAT_S}']
  procs = _start_two(workdir, 'jit', extra)
  deadline = time.monotonic() + 150
  while not faults.checkpoint_steps(workdir) and time.monotonic() < deadline:
    time.sleep(0.005)
  assert faults.checkpoint_steps(workdir)  # mid-run: 20 steps, a checkpoint every 10
  assert not os.path.exists(os.path.join(workdir, 'results.json'))
  _kill_host(procs[1])
  lost_at = time.monotonic()
  err = procs[0].communicate(timeout=HEARTBEAT_S + 60)[1]
  ended_after = time.monotonic() - lost_at
  procs[1].communicate()
  # within the heartbeat timeout, JAX's detection (checked every second) and the line's
  # listing of the checkpoints (imports Orbax: 4 s on 2 loaded cores)
  assert ended_after < HEARTBEAT_S + 30, ended_after
  assert procs[0].returncode == 75, err[-3000:]
  step = max(faults.checkpoint_steps(workdir))
  line = err.rstrip('\n').splitlines()[-1]
  # JAX's heartbeat check, or (sometimes, at once) gloo seeing the socket close
  found = re.fullmatch(
      r"comparenets: error: process 1 of 2 was lost \((no heartbeat for 5 s, --heartbeat_"
      r"timeout_s|a collective operation with it failed); JAX's report is in (\S+)\); the "
      r'newest complete checkpoint is step (\d+) in (\S+); run the same command on every host '
      r'to resume from it', line)
  assert found, line
  assert int(found.group(3)) == step and found.group(4) == f'{workdir}/checkpoints'
  report = open(found.group(2)).read()
  assert ('stopped sending heartbeats' if 'heartbeat' in found.group(1) else 'gloo') in report
  os.remove(found.group(2))
  assert 'Check failure stack trace' not in err and 'Fatal Python error' not in err

  errs = _two_processes(workdir, 'jit', extra=extra)  # the same command on both hosts
  assert f'resuming from the checkpoint at step {step} in {workdir}' in errs[0]
  final_step, params = faults.final_params(workdir)
  assert final_step == two_process_run[1][0] == 20
  jax.tree.map(np.testing.assert_array_equal, params, two_process_run[1][1])


def _relay(data: bytes) -> watchdog._Relay:  # pylint: disable=protected-access
  read, write = os.pipe()
  os.write(write, data)
  os.close(write)
  relay = watchdog._Relay(read)  # pylint: disable=protected-access
  relay.pump()
  os.close(read)
  return relay


def test_the_relay_shows_the_log_and_holds_the_fatal_report(capfd):
  log = b'I1201 train.py:304] step 10/20: loss=2.3\n 50%|#####     | 10/20\r'
  report = (b'E1201 coordination_service_agent.cc:289] Polled an error from coordination '
            b'service\nF1201 client.h:80] Terminating process\n*** Check failure stack trace ***\n')
  relay = _relay(log + report)
  assert capfd.readouterr().err == log.decode()  # the bar's carriage return passes too
  assert relay.report == report and relay.tail == log
  relay = _relay(log)
  assert capfd.readouterr().err == log.decode() and not relay.report


_COORDINATOR_GONE = (b"F1201 client.h:80] Terminating process because the JAX distributed "
                     b"service detected fatal errors. absl::Status: UNAVAILABLE: Failed to send "
                     b"RPC to coordination service. Either the leader task was preempted/died\n")
_TWO_SILENT = (b'E1201 coordination_service.cc:1549] Use error polling to propagate the '
               b'following error to all tasks: UNAVAILABLE: The following tasks are unhealthy '
               b'(stopped sending heartbeats):\n/job:jax_worker/replica:0/task:2\n3\nThe tasks '
               b'have crashed. Check the task logs\n')
_GLOO = (b"terminate called after throwing an instance of 'gloo::EnforceNotMet'\n  what():  "
         b'[enforce fail at gloo/transport/tcp/pair.cc:459]\n')


@pytest.mark.parametrize('code,stderr,me,count,said', [
    (-6, _COORDINATOR_GONE, 3, 4, "process 0 of 4 was lost (it runs JAX's coordination service, "
     'and that stopped answering; '),
    (-6, _TWO_SILENT, 0, 4, 'processes 2, 3 of 4 were lost (no heartbeat for 100 s, '
     '--heartbeat_timeout_s; '),
    (-6, _GLOO, 1, 2, 'process 0 of 2 was lost (a collective operation with it failed; '),
    (-6, _GLOO, None, None, 'another process was lost (a collective operation with it failed; '),
    (-9, b'I1201 step 10\n', 1, 2, 'process 1 of 2 (this one) was lost (killed by SIGKILL); '),
])
def test_the_line_names_the_lost_process_and_the_newest_complete_checkpoint(
    tmp_path, monkeypatch, code, stderr, me, count, said):
  monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))  # where the held report is saved
  relay = _relay(stderr)
  line = watchdog.describe(code, relay, me, count, 100, str(tmp_path))
  assert line.startswith(said), line
  saved = re.search(r"JAX's report is in (\S+)\)", line)
  assert bool(saved) == bool(relay.report) == (code == -6)
  if saved:
    assert saved.group(1).startswith(str(tmp_path)) and open(saved.group(1), 'rb').read() == stderr
  assert line.endswith(f'no checkpoint was complete in {tmp_path}/checkpoints; run the same '
                       'command on every host to start again')
  for step in ('10', '20', '30.orbax-checkpoint-tmp-1'):  # 30: still being written
    (tmp_path / 'checkpoints' / step).mkdir(parents=True)
  assert watchdog.describe(code, relay, me, count, 100, str(tmp_path)).endswith(
      f'the newest complete checkpoint is step 20 in {tmp_path}/checkpoints; run the same '
      'command on every host to resume from it')


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
