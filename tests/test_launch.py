"""The launchers: `--dry-run` prints a complete command sequence, which then runs against fake
`gcloud`/`srun`/`sbatch` (test doubles that record their arguments: the real ones need a cloud
project or a cluster), and the command each worker would run reaches `comparenets.main` with
the right flags."""

import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time

import pytest

from comparenets import distributed

import fake_slurm
from test_compare import SUITE  # the tiny suite, run here one process a device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU = os.path.join(ROOT, 'scripts', 'launch_tpu.sh')
SLURM = os.path.join(ROOT, 'scripts', 'launch_slurm.sh')
PER_DEVICE = os.path.join(ROOT, 'scripts', 'run_suite_per_device.sh')
CONFIG = 'experiments/digits.py:model=lstm,quick'
TPU_FLAGS = ['--name=cn-test', '--zone=us-central2-b', '--accelerator-type=v4-16',
             '--bucket=gs://my-bucket', f'--config={CONFIG}']
TRICKY = ['--config.model.widths=(8,16)', "--config.task.note=it's a, b: c"]

# A fake command: appends {"argv": [...], "cwd": ..., "multiprocess": ...} to $FAKE_LOG. For
# `gcloud ... describe` it answers with the next of $FAKE_STATES (comma-separated; the last one
# repeats): a state is printed as `--format=value(...)` prints it, NOT_FOUND and DENIED fail the
# way gcloud does (exit 1, its ERROR line on stderr).
FAKE = f"""#!{sys.executable}
import json, os, sys
log = os.environ['FAKE_LOG']
with open(log, 'a') as f:
  f.write(json.dumps({{'tool': os.path.basename(sys.argv[0]), 'argv': sys.argv[1:],
                      'cwd': os.getcwd(),
                      'multiprocess': os.environ.get('COMPARENETS_MULTIPROCESS')}}) + '\\n')
if sys.argv[0].endswith('sbatch') and '--parsable' in sys.argv:
  print('4242;cluster1')  # sbatch --parsable: the job id, then the cluster if there is one
if 'describe' in sys.argv:
  states = os.environ.get('FAKE_STATES', 'NOT_FOUND').split(',')
  count = log + '.describes'
  n = int(open(count).read()) if os.path.exists(count) else 0
  open(count, 'w').write(str(n + 1))
  state = states[min(n, len(states) - 1)]
  what = 'queued-resources' if 'queued-resources' in sys.argv else 'tpu-vm'
  if state == 'NOT_FOUND':
    sys.exit(f"ERROR: (gcloud.compute.tpus.{{what}}.describe) NOT_FOUND: Resource "
             f"'projects/p/locations/us-central2-b/nodes/cn-test' was not found")
  if state == 'DENIED':
    sys.exit(f"ERROR: (gcloud.compute.tpus.{{what}}.describe) PERMISSION_DENIED: Permission "
             f"'tpu.nodes.get' denied on 'projects/p/locations/us-central2-b/nodes/cn-test'")
  print(state)
"""


def _fake(path):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(FAKE)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fakes(tmp_path):
  """A PATH with fake gcloud, srun, sbatch and python3; a log of their calls."""
  bin_dir = tmp_path / 'bin'
  for tool in ('gcloud', 'srun', 'sbatch', 'python3'):
    _fake(bin_dir / tool)
  env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', FAKE_LOG=str(tmp_path / 'log'),
             TMPDIR=str(tmp_path))
  env.pop('COMPARENETS_MULTIPROCESS', None)

  def calls():
    log = tmp_path / 'log'
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
  return env, calls


def _run(cmd, env=None, timeout=60, **kwargs):
  return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, **kwargs)


def _option(argv, name):
  values = [a.split('=', 1)[1] for a in argv if a.startswith(f'{name}=')]
  assert len(values) == 1, (name, argv)
  return values[0]


def test_scripts_parse():
  for script in (TPU, SLURM, PER_DEVICE):
    assert _run(['bash', '-n', script]).returncode == 0


def _tpu(env, *flags, dry_run=True, extra=()):
  """The launcher's stdout lines without its comments (--dry-run), or the finished process."""
  dry = ['--dry-run'] if dry_run else []
  proc = _run(['bash', TPU, *flags, *dry, '--', *extra], env=env)
  if not dry_run:
    return proc
  assert proc.returncode == 0, proc.stderr
  return [l for l in proc.stdout.splitlines() if not l.startswith('#')]


def _tpu_dry_run(env, *extra):
  return _tpu(env, *TPU_FLAGS, extra=extra)


def _with(flags, **change):
  """TPU_FLAGS with some flags replaced (``accelerator_type='v6e-8'``)."""
  out = dict(f.split('=', 1) for f in flags)
  out.update({f'--{k.replace("_", "-")}': v for k, v in change.items()})
  return [f'{k}={v}' for k, v in out.items()]


GCLOUD_TPU = ['gcloud', 'compute', 'tpus', 'tpu-vm']
GCLOUD_QUEUED = ['gcloud', 'compute', 'tpus', 'queued-resources']
WHERE = ['cn-test', '--zone=us-central2-b']


@pytest.mark.parametrize('accelerator,version', [
    ('v2-8', 'tpu-ubuntu2204-base'), ('v4-32', 'tpu-ubuntu2204-base'),
    ('v5litepod-16', 'v2-alpha-tpuv5-lite'), ('v5p-8', 'v2-alpha-tpuv5'),
    ('v6e-8', 'v2-alpha-tpuv6e')])
def test_tpu_runtime_follows_the_accelerator_type(fakes, accelerator, version):
  """Google's table of TPU software versions for JAX (cloud.google.com/tpu/docs/runtimes)."""
  env, _ = fakes
  create = shlex.split(_tpu(env, *_with(TPU_FLAGS, accelerator_type=accelerator))[1])
  assert create == [*GCLOUD_TPU, 'create', *WHERE, f'--accelerator-type={accelerator}',
                    f'--version={version}']
  queued = shlex.split(_tpu(env, *_with(TPU_FLAGS, accelerator_type=accelerator), '--queued')[1])
  assert f'--runtime-version={version}' in queued
  overridden = _tpu(env, *_with(TPU_FLAGS, accelerator_type=accelerator, version='my-image'))
  assert shlex.split(overridden[1])[-1] == '--version=my-image'


def test_tpu_dry_run_prints_the_whole_sequence(fakes):
  env, calls = fakes
  lines = _tpu_dry_run(env, *TRICKY)
  assert len(lines) == 6
  assert _run(['bash', '-n'], env=env, input='\n'.join(lines)).returncode == 0
  describe, create = (shlex.split(l) for l in lines[:2])
  assert describe == [*GCLOUD_TPU, 'describe', *WHERE, '--format=value(state)']
  assert create == [*GCLOUD_TPU, 'create', *WHERE, '--accelerator-type=v4-16',
                    '--version=tpu-ubuntu2204-base']
  assert lines[2].startswith(f'git -C {ROOT} archive --format=tar.gz') and lines[2].endswith('HEAD')
  assert lines[3].startswith('gcloud compute tpus tpu-vm scp ') and '--worker=all' in lines[3]
  for line in lines[4:]:
    assert line.startswith('gcloud compute tpus tpu-vm ssh cn-test --zone=us-central2-b '
                           '--worker=all')
  assert 'comparenets[gcs]' in lines[4] and 'jax[tpu]' in lines[4]
  run = _option(shlex.split(lines[5]), '--command')
  assert 'setsid nohup bash -c' in run and '> "$HOME/comparenets.log" 2>&1 < /dev/null &' in run
  assert 'comparenets.main' in run and 'gs://my-bucket/comparenets/cn-test/' in run
  assert not calls()  # a dry run runs nothing


def test_tpu_queued_spot_dry_run_prints_the_queued_resource_commands(fakes):
  """The documented forms (cloud.google.com/sdk/gcloud/reference/compute/tpus/queued-resources):
  `create QR --node-id=N --zone=Z --accelerator-type=T --runtime-version=V [--spot]`, `describe`,
  whose state is under state.state."""
  env, calls = fakes
  out = _run(['bash', TPU, *_with(TPU_FLAGS, accelerator_type='v5litepod-16'), '--queued',
              '--spot', '--dry-run'], env=env).stdout.splitlines()
  describe, create = (shlex.split(l) for l in out if l.startswith('gcloud compute tpus queued'))
  assert describe == [*GCLOUD_QUEUED, 'describe', *WHERE, '--format=value(state.state)']
  assert create == [*GCLOUD_QUEUED, 'create', 'cn-test', '--node-id=cn-test',
                    '--zone=us-central2-b', '--accelerator-type=v5litepod-16',
                    '--runtime-version=v2-alpha-tpuv5-lite', '--spot']
  assert any('until ACTIVE' in l for l in out if l.startswith('#'))
  assert not calls()


DELETE_NODE = ('tpu-vm', 'delete')
@pytest.mark.parametrize('queued,states,actions', [
    (False, 'NOT_FOUND', ['describe', 'create']),
    (False, 'READY', ['describe']),  # reused
    (False, 'PREEMPTED', ['describe', 'delete', 'create']),  # a Spot VM taken back
    (False, 'TERMINATED', ['describe', 'delete', 'create']),
    (False, 'CREATING,READY', ['describe', 'describe']),  # waited for
    (True, 'NOT_FOUND,WAITING_FOR_RESOURCES,PROVISIONING,ACTIVE',
     ['describe', 'create', 'describe', 'describe', 'describe']),
    (True, 'ACTIVE', ['describe']),
    (True, 'SUSPENDED,ACTIVE', ['describe', 'delete', 'create', 'describe']),
])
def test_tpu_node_state_is_read_and_acted_on(fakes, queued, states, actions):
  env, calls = fakes
  env.update(FAKE_STATES=states, COMPARENETS_TPU_POLL_S='0')
  proc = _tpu(env, *TPU_FLAGS, *(['--queued', '--spot'] if queued else []), dry_run=False)
  assert proc.returncode == 0, proc.stderr
  gcloud = [c['argv'] for c in calls()]
  kind = 'queued-resources' if queued else 'tpu-vm'
  n = len(actions)
  assert [a[2:4] for a in gcloud[:n]] == [[kind, v] for v in actions]
  assert [a[2:4] for a in gcloud[n:]] == [['tpu-vm', 'scp'], ['tpu-vm', 'ssh'], ['tpu-vm', 'ssh']]
  for argv in gcloud[:n]:
    assert argv[4] == 'cn-test' and '--zone=us-central2-b' in argv
  if 'delete' in actions:
    delete = gcloud[actions.index('delete')]
    assert delete[6:] == (['--force', '--quiet'] if queued else ['--quiet'])  # its node too
  if 'create' in actions:
    assert gcloud[actions.index('create')][-1] == ('--spot' if queued else
                                                   '--version=tpu-ubuntu2204-base')


@pytest.mark.parametrize('state,message', [
    ('DENIED', "PERMISSION_DENIED: Permission 'tpu.nodes.get' denied"),
    ('STOPPED', 'TPU cn-test is STOPPED; see `gcloud compute tpus tpu-vm describe cn-test '
                '--zone=us-central2-b`, delete it with `gcloud compute tpus tpu-vm delete '
                'cn-test --zone=us-central2-b --quiet` to start over'),
])
def test_tpu_describe_error_is_shown_and_nothing_is_created(fakes, state, message):
  env, calls = fakes
  env['FAKE_STATES'] = state
  proc = _tpu(env, *TPU_FLAGS, dry_run=False)
  assert proc.returncode == 2 and message in proc.stderr
  assert [c['argv'][3] for c in calls()] == ['describe']


# A worker's python: records itself, then runs until SIGTERM (at most 30 s) and exits 0 on it.
WORKER_PYTHON = f"""#!{sys.executable}
import json, os, signal, sys, time
stopped = []
signal.signal(signal.SIGTERM, lambda *a: stopped.append('SIGTERM'))
with open(os.environ['FAKE_LOG'], 'a') as f:
  f.write(json.dumps({{'tool': 'python', 'argv': sys.argv[1:], 'cwd': os.getcwd(),
                      'multiprocess': os.environ.get('COMPARENETS_MULTIPROCESS'),
                      'session': os.getsid(0), 'pid': os.getpid()}}) + '\\n')
deadline = time.time() + 30
while not stopped and time.time() < deadline:
  time.sleep(0.05)
print('worker got', stopped)
sys.exit(0 if stopped else 1)
"""


def test_tpu_sequence_runs_and_every_worker_runs_the_job_detached(fakes, tmp_path):
  env, calls = fakes
  proc = _tpu(env, *TPU_FLAGS, dry_run=False, extra=TRICKY)
  assert proc.returncode == 0, proc.stderr
  assert 'launch_tpu.sh --name=cn-test --zone=us-central2-b --stop' in proc.stderr
  gcloud = [c['argv'] for c in calls()]
  scp = gcloud[2]
  tarball, target = scp[4], scp[5]
  assert target == 'cn-test:comparenets.tar.gz' and '--worker=all' in scp
  with tarfile.open(tarball) as tar:
    names = set(tar.getnames())
  assert {'setup.py', 'comparenets/main.py', CONFIG.split(':')[0]} <= names
  assert not any(n.startswith('.venv') for n in names)

  # A worker: the tarball where scp put it, then the set-up command and the run command.
  home = tmp_path / 'home'
  home.mkdir()
  os.link(tarball, home / 'comparenets.tar.gz')
  _fake(home / '.local' / 'bin' / 'uv')
  python = home / 'comparenets-venv' / 'bin' / 'python'
  python.parent.mkdir(parents=True)
  python.write_text(WORKER_PYTHON)
  python.chmod(0o755)
  worker_env = dict(env, HOME=str(home))
  setup, run = (_option(a, '--command') for a in gcloud[-2:])
  assert _run(['bash', '-c', setup], env=worker_env, cwd=tmp_path).returncode == 0
  assert (home / 'comparenets' / 'comparenets' / 'train.py').exists()  # unpacked
  pip, uv_venv, uv_pip = [c for c in calls() if c['tool'] != 'gcloud']
  assert pip['argv'][:3] == ['-m', 'pip', 'install'] and 'uv' in pip['argv']
  assert uv_venv['argv'][:1] == ['venv'] and '3.11' in uv_venv['argv']
  assert f'{home}/comparenets[gcs]' in uv_pip['argv']
  assert 'jax[tpu]>=0.10.2,<0.11' in uv_pip['argv']

  started = _run(['bash', '-c', run], env=worker_env, cwd=tmp_path, timeout=10)
  assert started.returncode == 0 and 'started on' in started.stdout  # returned at once
  job = _wait_for(calls, 'python')
  assert job['cwd'] == str(home / 'comparenets')
  assert job['multiprocess'] == 'auto'  # every worker joins jax.distributed
  assert job['argv'] == ['-m', 'comparenets.main', f'--config={CONFIG}',
                         '--workdir=gs://my-bucket/comparenets/cn-test/'
                         'digits-model_lstm_quick', *TRICKY]
  assert job['session'] != os.getsid(0)  # its own session: an ssh hang-up does not reach it
  assert int((home / 'comparenets.pid').read_text()) == job['pid']
  again = _run(['bash', '-c', run], env=worker_env, cwd=tmp_path, timeout=10)
  assert again.returncode == 1 and 'already runs' in again.stderr  # one job per TPU VM

  stop_line, = _tpu(env, '--name=cn-test', '--zone=us-central2-b', '--stop')
  stop = shlex.split(stop_line)
  assert stop[:8] == [*GCLOUD_TPU, 'ssh', *WHERE, '--worker=all']
  stopped = _run(['bash', '-c', _option(stop, '--command')], env=worker_env, timeout=30)
  assert stopped.returncode == 0 and 'stopped on' in stopped.stdout  # after the job ended
  log = (home / 'comparenets.log').read_text()
  assert "worker got ['SIGTERM']" in log and 'comparenets: exit status 0' in log
  copy = [c['argv'] for c in calls() if c['argv'][:2] == ['storage', 'cp']]
  assert copy == [['storage', 'cp', f'{home}/comparenets.log',
                   'gs://my-bucket/comparenets/cn-test/digits-model_lstm_quick/logs/'
                   f'{socket.gethostname()}.log']]
  logs, = _tpu(env, '--name=cn-test', '--zone=us-central2-b', '--logs')
  assert shlex.split(logs) == [*GCLOUD_TPU, 'ssh', *WHERE, '--worker=0',
                               '--command=tail -n +1 -F "$HOME/comparenets.log"']


def _wait_for(calls, tool, timeout=20):
  deadline = time.time() + timeout
  while time.time() < deadline:
    found = [c for c in calls() if c['tool'] == tool]
    if found:
      return found[0]
    time.sleep(0.05)
  raise AssertionError(f'{tool} did not start')


def test_the_workers_command_line_trains_here(fakes, tmp_path):
  """The flags a worker's python receives, with the workdir made local, run a real experiment."""
  env, calls = fakes
  overrides = ['--config.train.steps=2', '--config.model.hidden=8', '--config.train.eval_every=0']
  run = _option(shlex.split(_tpu_dry_run(env, *overrides)[-1]), '--command')
  home = tmp_path / 'home'
  _fake(home / 'comparenets-venv' / 'bin' / 'python')
  os.symlink(ROOT, home / 'comparenets')
  assert _run(['bash', '-c', run], env=dict(env, HOME=str(home))).returncode == 0
  argv = _wait_for(calls, 'python')['argv']
  workdir = tmp_path / 'run'
  argv = [f'--workdir={workdir}' if a.startswith('--workdir=') else a for a in argv]
  proc = _run([sys.executable, *argv], env=dict(env, XLA_FLAGS=''), cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((workdir / 'results.json').read_text())
  assert results['steps'] == 2 and results['model'] == 'lstm'


def test_tpu_clone_instead_of_copy(fakes):
  env, _ = fakes
  lines = _tpu(env, *TPU_FLAGS, '--repo=https://example.com/me/comparenets.git', '--ref=v1',
               '--spot', '--workdir=gs://other/run')
  assert len(lines) == 4 and lines[1].endswith('--spot')  # no archive, no scp
  setup = _option(shlex.split(lines[2]), '--command')
  assert 'git clone -q https://example.com/me/comparenets.git' in setup
  assert 'checkout -q v1' in setup
  assert '--workdir=gs://other/run' in _option(shlex.split(lines[3]), '--command')


@pytest.mark.parametrize('change,message', [
    ({'--suite': 'quick'}, '--suite and --config exclude each other'),
    ({'--config': None, '--suite': 'nope'}, 'experiments/suites/nope.py is not in the committed'),
    ({'--config': None, '--suite': '../x'}, 'must name a suite under experiments/suites/'),
    ({'--name': None}, '--name is required'),
    ({'--name': 'Bad_Name'}, 'is not a valid TPU name'),
    ({'--zone': None}, '--zone is required'),
    ({'--zone': 'central'}, 'is not a zone'),
    ({'--accelerator-type': 'gpu-8'}, 'is not a TPU type'),
    ({'--accelerator-type': 'v7x-8'}, 'no known TPU software version for '
                                      '--accelerator-type=v7x-8; give one with --version'),
    ({'--bucket': '/tmp/local'}, 'is not a gs:// bucket'),
    ({'--bucket': None}, '--bucket (gs://...) or --workdir (gs://...) is required'),
    ({'--workdir': '/tmp/run'}, 'must be on a gs:// bucket'),
    ({'--config': None}, '--config is required'),
    ({'--config': 'digits.py:model=lstm'}, 'must name a file under experiments/'),
    ({'--config': 'experiments/nope.py'}, 'is not in the committed code'),
    ({'--colour': 'red'}, 'unknown flag --colour'),
    ({'--ref': 'v1'}, '--ref needs --repo'),
])
def test_tpu_bad_flags_are_one_line(fakes, change, message):
  env, _ = fakes
  flags = dict(f.split('=', 1) for f in TPU_FLAGS)
  for key, value in change.items():
    if value is None:
      flags.pop(key)
    else:
      flags[key] = value
  proc = _run(['bash', TPU, *(f'{k}={v}' for k, v in flags.items()), '--dry-run'], env=env)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if not l.startswith('launch_tpu.sh: warning')]
  assert len(errors) == 1 and errors[0].startswith('launch_tpu.sh: error: ')
  assert message in errors[0]
  assert not proc.stdout


def test_tpu_flag_without_value(fakes):
  env, _ = fakes
  proc = _run(['bash', TPU, '--zone'], env=env)
  assert proc.returncode == 2 and proc.stderr.strip() == 'launch_tpu.sh: error: --zone needs a value'


def _slurm(env, *flags):
  return _run(['bash', SLURM, f'--config={CONFIG}', '--workdir=/shared/runs/x', *flags], env=env)


def test_slurm_dry_run_prints_a_script_with_one_process_per_gpu(fakes, tmp_path):
  env, calls = fakes
  proc = _slurm(env, '--nodes=2', '--gpus-per-node=4', '--partition=gpu', '--dry-run', '--',
                *TRICKY)
  assert proc.returncode == 0, proc.stderr
  out = proc.stdout.splitlines()
  assert out[-2:] == ['# submit with:', f'sbatch {tmp_path}/comparenets-comparenets.sbatch']
  script = '\n'.join(out[1:-2])
  assert _run(['bash', '-n'], input=script).returncode == 0
  for line in ('#SBATCH --nodes=2', '#SBATCH --ntasks-per-node=4', '#SBATCH --gpus-per-task=1',
               '#SBATCH --partition=gpu'):
    assert line in out
  assert not calls()
  assert _run(['bash', '-c', script], env=env).returncode == 0  # with the fake srun
  (srun,) = calls()
  assert srun['cwd'] == ROOT
  assert srun['argv'] == ['--kill-on-bad-exit=1', f'{ROOT}/.venv/bin/python', '-m',
                          'comparenets.main', f'--config={CONFIG}', '--workdir=/shared/runs/x',
                          *TRICKY]


def test_slurm_one_process_per_node_and_submission(fakes, tmp_path):
  env, calls = fakes
  script = tmp_path / 'job.sbatch'
  proc = _slurm(env, '--nodes=3', '--gpus-per-node=8', '--per=node', f'--script={script}')
  assert proc.returncode == 0, proc.stderr
  text = script.read_text()
  assert '#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=8' in text
  assert '# 3 process(es), one per node' in text
  (sbatch,) = calls()
  assert sbatch['tool'] == 'sbatch' and sbatch['argv'] == [str(script)]


def test_slurm_suite_is_a_job_array_and_a_report_job_after_it(fakes, tmp_path):
  env, calls = fakes
  script = tmp_path / 'suite.sbatch'
  proc = _run(['bash', SLURM, '--suite=full', '--shards=16', '--workdir=/shared/runs/full',
               f'--script={script}'], env=env)
  assert proc.returncode == 0, proc.stderr
  array, report_job = (c['argv'] for c in calls())
  report_script = tmp_path / 'suite-report.sbatch'
  assert array == ['--parsable', str(script)]
  assert report_job == ['--dependency=afterok:4242', str(report_script)]  # waits for all 16
  text = script.read_text()
  for line in ('#SBATCH --array=0-15', '#SBATCH --nodes=1', '#SBATCH --ntasks-per-node=1',
               '#SBATCH --gpus-per-node=1'):
    assert line in text.splitlines()
  compare = ['-m', 'comparenets.compare', '--suite=full', '--workdir=/shared/runs/full']
  for task in (0, 15):
    assert _run(['bash', str(script)], env=dict(env, SLURM_ARRAY_TASK_ID=str(task))
                ).returncode == 0
    assert calls()[-1]['argv'][1:] == [*compare, f'--shard={task}/16']
  assert _run(['bash', str(report_script)], env=env).returncode == 0
  assert calls()[-1]['argv'][1:] == compare  # no --shard: every run finished, the report
  dry = _run(['bash', SLURM, '--suite=full', '--shards=16', '--workdir=/shared/runs/full',
              '--dry-run'], env=env)
  assert dry.returncode == 0 and 'sbatch --dependency=afterok:$ARRAY_JOB' in dry.stdout
  assert len(calls()) == 5  # the dry run submitted nothing


@pytest.mark.parametrize('flags,message', [
    (['--suite=full'], '--suite and --config exclude each other'),
    (['--shards=4'], '--shards needs --suite'),
    (['--nodes=0'], '--nodes=0 must be a positive integer'),
    (['--per=core'], "--per=core must be 'gpu' or 'node'"),
    (['--time=soon'], 'is not a SLURM time'),
    (['--workdir=runs/x'], 'must be an absolute path'),
    (['--config=experiments/nope.py'], 'does not exist'),
    (['--partition'], '--partition needs a value'),
    (['stray'], "unexpected argument 'stray'"),
])
def test_slurm_bad_flags_are_one_line(fakes, flags, message):
  env, calls = fakes
  proc = _slurm(env, *flags, '--dry-run')
  assert proc.returncode == 2
  assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith('launch_slurm.sh: error: ')
  assert message in proc.stderr and not proc.stdout and not calls()


def test_launcher_environment_makes_every_worker_join(monkeypatch):
  seen = []
  monkeypatch.setattr('jax.distributed.initialize', lambda **kw: seen.append(kw))
  monkeypatch.setattr('jax.config.update', lambda *a: None)
  monkeypatch.delenv('TPU_WORKER_HOSTNAMES', raising=False)
  monkeypatch.delenv('SLURM_NTASKS', raising=False)
  monkeypatch.delenv('COMPARENETS_MULTIPROCESS', raising=False)
  assert not distributed.initialize() and not seen
  monkeypatch.setenv('COMPARENETS_MULTIPROCESS', 'auto')
  # JAX finds the TPU workers itself; every timeout is ours, stated in comparenets.distributed
  assert distributed.initialize() and seen == [dict(
      initialization_timeout=300, heartbeat_timeout_seconds=100, shutdown_timeout_seconds=300)]
  seen.clear()
  assert distributed.initialize(heartbeat_timeout_s=7) and seen[0]['heartbeat_timeout_seconds'] == 7


@pytest.mark.parametrize('per,gpus_by_task', [
    ('node', [[0, 1, 2, 3], [0, 1, 2, 3]]),  # one process drives every GPU of its node
    ('gpu', [[0], [0], [0], [0], [0], [0], [0], [0]]),  # each its one visible GPU, ordinal 0
])
def test_slurm_tasks_get_the_gpus_srun_leaves_them(fakes, monkeypatch, per, gpus_by_task):
  """With the variables the real sbatch and srun set for launch_slurm.sh's script
  (tests/fake_slurm.py), every task asks JAX for the GPUs it can see, not for GPU number
  SLURM_LOCALID, which JAX's SLURM detection would ask for on its own."""
  env, _ = fakes
  proc = _slurm(env, '--nodes=2', '--gpus-per-node=4', f'--per={per}', '--dry-run')
  script = '\n'.join(proc.stdout.splitlines()[1:-2])
  job = fake_slurm.sbatch_env(script, job_id=1234)
  monkeypatch.setattr('jax.config.update', lambda *a: None)
  for name in list(os.environ):
    if name.startswith(('SLURM_', 'CUDA_', 'JAX_', 'TPU_', 'COMPARENETS_')):
      monkeypatch.delenv(name)
  asked = []
  for procid, want in enumerate(gpus_by_task):
    seen = []
    monkeypatch.setattr('jax.distributed.initialize', lambda **kw: seen.append(kw))
    with monkeypatch.context() as m:
      for key, value in fake_slurm.task_env(job, procid).items():
        m.setenv(key, value)
      assert distributed.initialize()
    asked.append(seen[0].get('local_device_ids'))
  assert asked == gpus_by_task


# A suite worker's python: records its command line and the TPU variables it was given.
SUITE_WORKER_PYTHON = f"""#!{sys.executable}
import json, os, sys
with open(os.environ['FAKE_LOG'], 'a') as f:
  f.write(json.dumps({{'tool': 'python', 'argv': sys.argv[1:],
                      'multiprocess': os.environ.get('COMPARENETS_MULTIPROCESS'),
                      'tpu': {{k: v for k, v in os.environ.items()
                              if k.startswith(('TPU_', 'CLOUD_TPU_'))}}}}) + '\\n')
"""

# The GCE metadata server as curl reaches it on a TPU VM worker: this worker's number and the
# slice's workers (one "?:?:IP" entry each); $FAKE_METADATA=down fails as curl -f does.
FAKE_CURL = f"""#!{sys.executable}
import json, os, sys
with open(os.environ['FAKE_LOG'], 'a') as f:
  f.write(json.dumps({{'tool': 'curl', 'argv': sys.argv[1:]}}) + '\\n')
if os.environ.get('FAKE_METADATA') == 'down':
  sys.exit(7)
url = sys.argv[-1]
if url.endswith('/agent-worker-number'):
  print('3', end='')
elif url.endswith('/worker-network-endpoints'):
  print(','.join(f'unknown:unknown:10.130.0.{{i}}' for i in range(4)), end='')
else:
  sys.exit(22)
"""

SUITE_FLAGS = [f for f in TPU_FLAGS if not f.startswith('--config=')] + ['--suite=quick']
SUITE_WORKDIR = 'gs://my-bucket/comparenets/cn-test/suite-quick'


@pytest.mark.parametrize('source,shard', [('env', '1/2'), ('metadata', '3/4'), ('none', None)])
def test_tpu_suite_every_worker_runs_its_own_shard(fakes, tmp_path, source, shard):
  """`--suite`: each worker's job runs `compare --shard=I/N --report_when_all_done`, I and N
  read on the worker (TPU_WORKER_ID and TPU_WORKER_HOSTNAMES, else the metadata server), one
  single-host process on its host's 4 chips, not a member of jax.distributed."""
  env, calls = fakes
  lines = _tpu(env, *SUITE_FLAGS)
  assert len(lines) == 6
  run = _option(shlex.split(lines[5]), '--command')
  assert '--report_when_all_done' in run and '--shard="$i/$n"' in run
  assert 'COMPARENETS_MULTIPROCESS' not in run and 'comparenets.main' not in run
  home = tmp_path / 'home'
  python = home / 'comparenets-venv' / 'bin' / 'python'
  python.parent.mkdir(parents=True)
  python.write_text(SUITE_WORKER_PYTHON)
  python.chmod(0o755)
  (home / 'comparenets').mkdir()
  curl = tmp_path / 'bin' / 'curl'
  curl.write_text(FAKE_CURL)
  curl.chmod(0o755)
  worker_env = dict(env, HOME=str(home))
  for name in list(worker_env):  # a bare worker: no TPU variable of this machine's
    if name.startswith(('TPU_', 'CLOUD_TPU_')):
      worker_env.pop(name)
  if source == 'env':
    worker_env.update(TPU_WORKER_ID='1', TPU_WORKER_HOSTNAMES='t1v-n-0,t1v-n-1')
  elif source == 'none':
    worker_env['FAKE_METADATA'] = 'down'
  assert _run(['bash', '-c', run], env=worker_env, timeout=10).returncode == 0
  if shard is None:  # no index to be had: the job says so in its log, nothing runs
    deadline = time.time() + 20
    log = home / 'comparenets.log'
    while time.time() < deadline and 'exit status' not in (log.read_text() if log.exists()
                                                           else ''):
      time.sleep(0.05)
    text = log.read_text()
    assert 'comparenets: error: cannot tell the index of this worker () among 0 workers' in text
    assert 'comparenets: exit status 2' in text
    assert not [c for c in calls() if c['tool'] == 'python']
    return
  job = _wait_for(calls, 'python')
  assert job['argv'] == ['-m', 'comparenets.compare', '--suite=quick',
                         f'--workdir={SUITE_WORKDIR}', f'--shard={shard}',
                         '--report_when_all_done']
  assert job['multiprocess'] is None  # no jax.distributed: each worker alone
  assert job['tpu'] == {'TPU_PROCESS_BOUNDS': '1,1,1', 'TPU_CHIPS_PER_PROCESS_BOUNDS': '2,2,1',
                        'TPU_VISIBLE_CHIPS': '0,1,2,3', 'CLOUD_TPU_TASK_ID': '0',
                        'TPU_PROCESS_PORT': '8476', 'TPU_PROCESS_ADDRESSES': 'localhost:8476',
                        'TPU_WORKER_HOSTNAMES': 'localhost', 'TPU_WORKER_ID': '0'}
  asked = [c['argv'] for c in calls() if c['tool'] == 'curl']
  if source == 'env':
    assert not asked
  else:
    assert [a[-1].rsplit('/', 1)[1] for a in asked] == ['agent-worker-number',
                                                        'worker-network-endpoints']
    assert all(a[:3] == ['-sf', '-H', 'Metadata-Flavor: Google'] for a in asked)


def test_tpu_suite_on_one_host_leaves_libtpu_alone(fakes):
  """A single-host TPU VM (v4-8, v6e-8): its one worker has every chip: shard 0/1 there, no
  chip variables; the default workdir names the suite."""
  env, _ = fakes
  for accelerator in ('v4-8', 'v6e-8', 'v5litepod-8'):
    run = _option(shlex.split(_tpu(env, *_with(SUITE_FLAGS, accelerator_type=accelerator))[5]),
                  '--command')
    assert 'TPU_PROCESS_BOUNDS' not in run and '--report_when_all_done' in run
    assert f'--workdir={SUITE_WORKDIR}' in run
  for accelerator in ('v5litepod-16', 'v6e-16', 'v5p-16', 'v2-32'):
    run = _option(shlex.split(_tpu(env, *_with(SUITE_FLAGS, accelerator_type=accelerator))[5]),
                  '--command')
    assert 'TPU_CHIPS_PER_PROCESS_BOUNDS=2,2,1 TPU_VISIBLE_CHIPS=0,1,2,3' in run, accelerator

# Put first on PYTHONPATH of the shards' processes: training replaced by a stand-in that writes
# the run's results.json from its config (the processes, shards, markers and report are real).
FAKE_TRAINING = '''
import json, os
from comparenets import train

def _fake_train(config, run_dir):
  value = 0.5 + len(config.model.name) / 100
  metric = 'accuracy' if config.task.name == 'digits' else 'nrmse'
  results = {'model': config.model.name, 'task': {'name': config.task.name},
             'input_kind': 'sequence', 'steps': 100, 'params': {'total': 1000},
             'train_time_s': 1.0, 'target_metric': metric,
             'validation': {metric: value - 0.05}, 'test': {metric: value},
             'device': os.environ.get('CUDA_VISIBLE_DEVICES')}
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, 'results.json'), 'w') as f:
    json.dump(results, f)
  return results

train.train_and_evaluate = _fake_train
'''


def test_one_process_per_device_runs_every_shard_and_the_last_writes_the_report(tmp_path):
  """`--devices=2` on the tiny suite of tests/test_compare.py: two processes, one a device
  (CUDA_VISIBLE_DEVICES 0 and 1, TPU chip 0 and 1 on distinct ports), each its shard; both
  logs, both markers, every run once, and REPORT.md."""
  suite = tmp_path / 'tiny.py'
  suite.write_text(SUITE)
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'structure.jsonl').write_text('')  # no structure rows: the report in seconds
  hooks = tmp_path / 'hooks'
  hooks.mkdir()
  (hooks / 'sitecustomize.py').write_text(FAKE_TRAINING)
  env = dict(os.environ, PYTHONPATH=f'{hooks}:{ROOT}', JAX_PLATFORMS='cpu')
  proc = _run(['bash', PER_DEVICE, f'--suite={suite}', f'--workdir={workdir}', '--devices=2',
               f'--python={sys.executable}'], env=env, timeout=120)
  assert proc.returncode == 0, proc.stderr + ''.join(
      p.read_text()[-2000:] for p in (workdir / 'logs').glob('*.log'))
  assert sorted(os.listdir(workdir / 'logs')) == ['shard-0.log', 'shard-1.log']
  assert sorted(os.listdir(workdir / '.shards')) == ['0-of-2.json', '1-of-2.json']
  devices = {name: json.loads((workdir / name / 'results.json').read_text())['device']
             for name in ('digits/cnn', 'digits/lstm', 'forecasting/gru')}
  assert devices == {'digits/cnn': '0', 'digits/lstm': '1', 'forecasting/gru': '0'}
  text = (workdir / 'REPORT.md').read_text()
  assert '3 runs below' in text and '`digits/lstm`' in text and '`forecasting/gru`' in text
  logs = [(workdir / 'logs' / f'shard-{i}.log').read_text() for i in (0, 1)]
  assert sum(f'report: {workdir}/REPORT.md' in log for log in logs) >= 1
  assert 'all 2 shards done' in proc.stderr


def test_one_process_per_device_stopped_or_without_a_report_says_so(tmp_path):
  """Shards that exit 0 yet leave no report (runs left), and a SIGTERM to the script: the
  shards stop (each checkpoints) and exit 0, so neither may be reported as a finished suite."""
  python = tmp_path / 'python'
  python.write_text('#!/bin/bash\n'
                    'trap "echo stopped; exit 0" TERM\n'
                    '[[ -z "$SLEEP" ]] || { sleep "$SLEEP" & wait; }\n')
  python.chmod(0o755)
  args = ['bash', PER_DEVICE, '--suite=quick', f'--workdir={tmp_path / "w"}', '--devices=2',
          f'--python={python}']
  proc = _run(args)
  assert proc.returncode == 1 and proc.stderr.splitlines()[-1] == (
      'run_suite_per_device.sh: error: every shard exited 0 but no report was written; the '
      f'logs in {tmp_path}/w/logs say which runs are left')
  args[3] = f'--workdir={tmp_path / "w2"}'  # logs of their own
  script = subprocess.Popen(args, env=dict(os.environ, SLEEP='30'), stderr=subprocess.PIPE,
                            text=True)
  logs = [tmp_path / 'w2' / 'logs' / f'shard-{i}.log' for i in (0, 1)]
  deadline = time.time() + 20
  while time.time() < deadline and not all(log.exists() for log in logs):
    time.sleep(0.1)
  time.sleep(1)  # both shards started (their trap set)
  script.send_signal(signal.SIGTERM)
  assert script.wait(timeout=20) == 143, script.stderr.read()
  assert script.stderr.read().splitlines()[-1] == (
      'run_suite_per_device.sh: stopped; run the same command to finish the suite')
  assert all(log.read_text() == 'stopped\n' for log in logs)


def test_one_process_per_device_names_a_failed_shard(tmp_path):
  """Each process's device variables, and a shard that fails: exit 1 naming it, after the
  others finished."""
  python = tmp_path / 'python'
  python.write_text('#!/bin/bash\n'
                    'echo "$CUDA_VISIBLE_DEVICES $TPU_VISIBLE_CHIPS $TPU_PROCESS_PORT '
                    '$TPU_PROCESS_ADDRESSES $TPU_CHIPS_PER_PROCESS_BOUNDS $*"\n'
                    '[[ "$*" != *--shard=1/3* ]] || exit 3\n')
  python.chmod(0o755)
  proc = _run(['bash', PER_DEVICE, '--suite=quick', f'--workdir={tmp_path / "w"}',
               '--devices=3', f'--python={python}'])
  assert proc.returncode == 1
  assert proc.stderr.splitlines()[-1] == (
      f'run_suite_per_device.sh: error: 1 of 3 failed: shard 1/3 (exit 3, log '
      f'{tmp_path}/w/logs/shard-1.log)')
  for i in range(3):
    assert (tmp_path / 'w' / 'logs' / f'shard-{i}.log').read_text() == (
        f'{i} {i} {8476 + i} localhost:{8476 + i} 1,1,1 -m comparenets.compare --suite=quick '
        f'--workdir={tmp_path}/w --shard={i}/3 --report_when_all_done\n')
  bad = _run(['bash', PER_DEVICE, '--suite=quick', '--workdir=gs://b/w'])
  assert bad.returncode == 2 and bad.stderr.strip() == (
      'run_suite_per_device.sh: error: --workdir=gs://b/w is on a bucket: give --logs=DIR (local)')
