"""The launchers: `--dry-run` prints a complete command sequence, which then runs against fake
`gcloud`/`srun`/`sbatch` (test doubles that record their arguments: the real ones need a cloud
project or a cluster), and the command each worker would run reaches `comparenets.main` with
the right flags."""

import json
import os
import shlex
import stat
import subprocess
import sys
import tarfile

import pytest

from comparenets import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU = os.path.join(ROOT, 'scripts', 'launch_tpu.sh')
SLURM = os.path.join(ROOT, 'scripts', 'launch_slurm.sh')
CONFIG = 'experiments/digits.py:model=lstm,quick'
TPU_FLAGS = ['--name=cn-test', '--zone=us-central2-b', '--accelerator-type=v4-16',
             '--bucket=gs://my-bucket', f'--config={CONFIG}']
TRICKY = ['--config.model.widths=(8,16)', "--config.task.note=it's a, b: c"]

# A fake command: appends {"argv": [...], "cwd": ..., "multiprocess": ...} to $FAKE_LOG and
# exits with $FAKE_DESCRIBE_RC for `gcloud ... describe` (1: no such TPU VM), 0 otherwise.
FAKE = f"""#!{sys.executable}
import json, os, sys
with open(os.environ['FAKE_LOG'], 'a') as f:
  f.write(json.dumps({{'tool': os.path.basename(sys.argv[0]), 'argv': sys.argv[1:],
                      'cwd': os.getcwd(),
                      'multiprocess': os.environ.get('COMPARENETS_MULTIPROCESS')}}) + '\\n')
sys.exit(int(os.environ.get('FAKE_DESCRIBE_RC', '1')) if 'describe' in sys.argv else 0)
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


def _run(cmd, env=None, **kwargs):
  return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, **kwargs)


def _option(argv, name):
  values = [a.split('=', 1)[1] for a in argv if a.startswith(f'{name}=')]
  assert len(values) == 1, (name, argv)
  return values[0]


def test_scripts_parse():
  for script in (TPU, SLURM):
    assert _run(['bash', '-n', script]).returncode == 0


def _tpu_dry_run(env, *extra):
  proc = _run(['bash', TPU, *TPU_FLAGS, '--dry-run', '--', *extra], env=env)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout.splitlines()


def test_tpu_dry_run_prints_the_whole_sequence(fakes):
  env, calls = fakes
  lines = _tpu_dry_run(env, *TRICKY)
  assert len(lines) == 5
  assert _run(['bash', '-n'], env=env, input='\n'.join(lines)).returncode == 0
  describe, create = lines[0].split(' || ')
  assert describe.startswith('gcloud compute tpus tpu-vm describe cn-test --zone=us-central2-b')
  assert create == ('gcloud compute tpus tpu-vm create cn-test --zone=us-central2-b '
                    '--accelerator-type=v4-16 --version=tpu-ubuntu2204-base')
  assert lines[1].startswith(f'git -C {ROOT} archive --format=tar.gz') and lines[1].endswith('HEAD')
  assert lines[2].startswith('gcloud compute tpus tpu-vm scp ') and '--worker=all' in lines[2]
  for line in lines[3:]:
    assert line.startswith('gcloud compute tpus tpu-vm ssh cn-test --zone=us-central2-b '
                           '--worker=all')
  assert 'comparenets[gcs]' in lines[3] and 'jax[tpu]' in lines[3]
  assert 'comparenets.main' in lines[4] and 'gs://my-bucket/comparenets/cn-test/' in lines[4]
  assert not calls()  # a dry run runs nothing


@pytest.mark.parametrize('exists', [False, True])
def test_tpu_sequence_runs_and_every_worker_gets_a_working_command(fakes, tmp_path, exists):
  env, calls = fakes
  env['FAKE_DESCRIBE_RC'] = '0' if exists else '1'
  lines = _tpu_dry_run(env, *TRICKY)
  proc = _run(['bash', '-euo', 'pipefail', '-c', '\n'.join(lines)], env=env, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  gcloud = [c['argv'] for c in calls()]
  verbs = [a[3] for a in gcloud]
  assert verbs == (['describe', 'scp', 'ssh', 'ssh'] if exists else
                   ['describe', 'create', 'scp', 'ssh', 'ssh'])  # created only when missing
  scp = gcloud[verbs.index('scp')]
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
  _fake(home / 'comparenets-venv' / 'bin' / 'python')
  worker_env = dict(env, HOME=str(home))
  setup, run = (_option(a, '--command') for a in gcloud[-2:])
  for command in (setup, run):
    proc = _run(['bash', '-c', command], env=worker_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
  assert (home / 'comparenets' / 'comparenets' / 'train.py').exists()  # unpacked
  pip, uv_venv, uv_pip, python = [c for c in calls() if c['tool'] != 'gcloud']
  assert pip['argv'][:3] == ['-m', 'pip', 'install'] and 'uv' in pip['argv']
  assert uv_venv['argv'][:1] == ['venv'] and '3.11' in uv_venv['argv']
  assert f'{home}/comparenets[gcs]' in uv_pip['argv']
  assert 'jax[tpu]>=0.10.2,<0.11' in uv_pip['argv']
  assert python['cwd'] == str(home / 'comparenets')
  assert python['multiprocess'] == 'auto'  # every worker joins jax.distributed
  assert python['argv'] == ['-m', 'comparenets.main', f'--config={CONFIG}',
                            '--workdir=gs://my-bucket/comparenets/cn-test/'
                            'digits-model_lstm_quick', *TRICKY]


def test_the_workers_command_line_trains_here(fakes, tmp_path):
  """The flags a worker's python receives, with the workdir made local, run a real experiment."""
  env, calls = fakes
  overrides = ['--config.train.steps=2', '--config.model.hidden=8', '--config.train.eval_every=0']
  run = _option(shlex.split(_tpu_dry_run(env, *overrides)[-1]), '--command')
  home = tmp_path / 'home'
  _fake(home / 'comparenets-venv' / 'bin' / 'python')
  os.symlink(ROOT, home / 'comparenets')
  assert _run(['bash', '-c', run], env=dict(env, HOME=str(home))).returncode == 0
  argv = calls()[-1]['argv']
  workdir = tmp_path / 'run'
  argv = [f'--workdir={workdir}' if a.startswith('--workdir=') else a for a in argv]
  proc = _run([sys.executable, *argv], env=dict(env, XLA_FLAGS=''), cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((workdir / 'results.json').read_text())
  assert results['steps'] == 2 and results['model'] == 'lstm'


def test_tpu_clone_instead_of_copy(fakes):
  env, _ = fakes
  proc = _run(['bash', TPU, *TPU_FLAGS, '--repo=https://example.com/me/comparenets.git',
               '--ref=v1', '--spot', '--workdir=gs://other/run', '--dry-run'], env=env)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert len(lines) == 3 and lines[0].endswith('--spot')  # no archive, no scp
  setup = _option(shlex.split(lines[1]), '--command')
  assert 'git clone -q https://example.com/me/comparenets.git' in setup
  assert 'checkout -q v1' in setup
  assert '--workdir=gs://other/run' in _option(shlex.split(lines[2]), '--command')


@pytest.mark.parametrize('change,message', [
    ({'--name': None}, '--name is required'),
    ({'--name': 'Bad_Name'}, 'is not a valid TPU name'),
    ({'--zone': None}, '--zone is required'),
    ({'--zone': 'central'}, 'is not a zone'),
    ({'--accelerator-type': 'gpu-8'}, 'is not a TPU type'),
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


@pytest.mark.parametrize('flags,message', [
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
  assert distributed.initialize() and seen == [{}]  # JAX finds the TPU workers itself
