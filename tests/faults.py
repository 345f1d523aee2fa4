"""Fault injection for runs of the command line: signals at chosen moments, damaged checkpoints.

Used by the reliability and multi-process tests and, as a command line, for the fault drill whose
table is in BUILD_NOTES.md: ``python tests/faults.py --kills=12 --terms=6 --corruptions=2``. It
lives with the tests because nothing in the package uses it. Everything here drives real runs in subprocesses; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The run that the tests' kill and signal drills interrupt (test_reliability.py, test_cli.py):
# one config, so that its programs are compiled once a test session (the tests' compilation
# cache) and its uninterrupted run is trained once (conftest.py's `drill_reference`).
DRILL_CONFIG = 'experiments/digits.py:model=rnn'
DRILL_STEPS = 1200
DRILL_OVERRIDES = (f'--config.train.steps={DRILL_STEPS}', '--config.train.checkpoint_every=50',
                   '--config.train.log_every=50', '--config.train.eval_every=0')


def command(config: str, workdir: str, overrides: Sequence[str] = ()) -> list[str]:
  return [sys.executable, '-m', 'comparenets.main', f'--config={config}',
          f'--workdir={workdir}', *overrides]


def environment(devices: int) -> dict[str, str]:
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return env


def checkpoint_steps(workdir: str) -> list[int]:
  """The finished checkpoints of a workdir (orbax's temporary directories are not steps)."""
  ckpt = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt):
    return []
  return sorted(int(p) for p in os.listdir(ckpt) if p.isdigit())


def unfinished_writes(workdir: str) -> list[str]:
  ckpt = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt):
    return []
  return sorted(p for p in os.listdir(ckpt) if 'tmp' in p)


def run(cmd: list[str], devices: int = 8, timeout: float = 600) -> subprocess.CompletedProcess:
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                        env=environment(devices))


def start_and_signal(cmd: list[str], workdir: str, sig: int, *, after_steps: int | None = None,
                     after_seconds: float | None = None, devices: int = 8):
  """Starts ``cmd`` and sends ``sig`` once a checkpoint of ``after_steps`` or more exists, or
  after ``after_seconds``; returns (exit code, stderr)."""
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env=environment(devices))
  start, deadline = time.time(), time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if after_seconds is not None and time.time() - start >= after_seconds:
      break
    if after_steps is not None and any(s >= after_steps for s in checkpoint_steps(workdir)):
      break
    time.sleep(0.005)
  if proc.poll() is None:
    proc.send_signal(sig)
  _, err = proc.communicate(timeout=300)
  return proc.returncode, err


def final_params(workdir: str) -> tuple[int, Any]:
  """(step, parameters as NumPy arrays) of the newest checkpoint."""
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = max(checkpoint_steps(workdir))
  path = os.path.join(workdir, 'checkpoints', str(step), 'default')
  checkpointer = ocp.StandardCheckpointer()
  # a target on this process's first device, so a checkpoint of any device count reads here
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        checkpointer.metadata(path).item_metadata.tree)
  return step, jax.device_get(checkpointer.restore(path, target)['params'])


def corrupt_checkpoint(step_dir: str, seed: int = 0) -> None:
  """Overwrites a checkpoint's data and manifest files with random bytes of the same length."""
  rng = random.Random(seed)
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      size = os.path.getsize(path)
      if size and (f'{os.sep}d{os.sep}' in path or name.startswith('manifest')):
        with open(path, 'r+b') as f:
          f.write(bytes(rng.getrandbits(8) for _ in range(size)))


def last_logged_step(workdir: str) -> int:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  with open(path, encoding='utf-8') as f:
    steps = [json.loads(l)['step'] for l in f if l.strip() and '"train"' in l]
  return max(steps, default=0)


def _equal_params(a, b) -> bool:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def drill(kills: int = 12, terms: int = 4, corruptions: int = 2, seed: int = 0) -> str:
  """Runs the fault drill and returns a Markdown table of what each kind of fault cost."""
  config = 'experiments/digits.py:model=rnn'
  overrides = ['--config.train.steps=1500', '--config.train.checkpoint_every=100',
               '--config.train.log_every=10', '--config.train.eval_every=0']
  rng = random.Random(seed)
  base = tempfile.mkdtemp(prefix='fault_drill_')
  reference = os.path.join(base, 'reference')
  assert run(command(config, reference, overrides)).returncode == 0
  want = final_params(reference)
  rows = []

  # SIGKILL at random moments, again and again on one run, until it finishes
  workdir = os.path.join(base, 'kill')
  lost, during_write, done = [], 0, 0
  while done < kills and not os.path.exists(os.path.join(workdir, 'results.json')):
    code, _ = start_and_signal(command(config, workdir, overrides), workdir, signal.SIGKILL,
                               after_seconds=rng.uniform(0.5, 8.0))
    if code != -signal.SIGKILL:
      break
    done += 1
    during_write += bool(unfinished_writes(workdir))
    lost.append(max(0, last_logged_step(workdir) - max(checkpoint_steps(workdir), default=0)))
  finished = run(command(config, workdir, overrides)).returncode == 0
  equal = finished and _equal_params(final_params(workdir)[1], want[1])
  rows.append(('SIGKILL at a random moment', done,
               f'{during_write} of them during a checkpoint write',
               f'steps since the last checkpoint: at most {max(lost, default=0)} '
               f'(checkpoint every 100)', 'equal' if equal else 'DIFFERENT'))

  # SIGTERM: checkpoint of the current step, exit 0
  workdir = os.path.join(base, 'term')
  exits, outcomes = [], {'mid-run, checkpoint of that exact step': 0,
                         'during start-up, nothing to save': 0,
                         'after the last step, run finished': 0, 'other': 0}
  for _ in range(terms):
    if os.path.exists(os.path.join(workdir, 'results.json')):
      break
    code, err = start_and_signal(command(config, workdir, overrides), workdir, signal.SIGTERM,
                                 after_seconds=rng.uniform(2.0, 8.0))
    exits.append(code)
    line = [l for l in err.splitlines() if 'stopped by SIGTERM after step' in l]
    if line and 'training had not started' in line[0]:
      outcomes['during start-up, nothing to save'] += 1
    elif line:
      step = int(line[0].split('after step ')[1].split(';')[0])
      exact = max(checkpoint_steps(workdir)) == step
      outcomes['mid-run, checkpoint of that exact step' if exact else 'other'] += 1
    elif code == 0 and os.path.exists(os.path.join(workdir, 'results.json')):
      outcomes['after the last step, run finished'] += 1
    else:
      outcomes['other'] += 1
  finished = run(command(config, workdir, overrides)).returncode == 0
  equal = finished and _equal_params(final_params(workdir)[1], want[1])
  seen = '; '.join(f'{k}: {v}' for k, v in outcomes.items() if v)
  rows.append(('SIGTERM at a random moment', len(exits), f'exit codes {sorted(set(exits))}',
               f'nothing ({seen})', 'equal' if equal else 'DIFFERENT'))

  # corrupt newest checkpoint
  equal_runs = 0
  for i in range(corruptions):
    workdir = os.path.join(base, f'corrupt{i}')
    code, _ = start_and_signal(command(config, workdir, overrides), workdir, signal.SIGKILL,
                               after_steps=300 + 100 * i)
    corrupt_checkpoint(os.path.join(workdir, 'checkpoints', str(max(checkpoint_steps(workdir)))),
                       seed=i)
    finished = run(command(config, workdir, overrides)).returncode == 0
    equal_runs += finished and _equal_params(final_params(workdir)[1], want[1])
  rows.append(('newest checkpoint overwritten with random bytes', corruptions,
               'fell back to the previous checkpoint', 'that checkpoint interval (100 steps)',
               f'equal in {equal_runs} of {corruptions}'))

  head = ('fault', 'times', 'how', 'lost', 'final parameters vs uninterrupted run')
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  lines += ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
  return '\n'.join(lines)


def main(argv: Sequence[str]) -> None:
  del argv
  opts = flags.FLAGS
  print(drill(opts.kills, opts.terms, opts.corruptions, opts.seed))


if __name__ == '__main__':
  flags.DEFINE_integer('kills', 12, 'kill -9 at random moments of one run, until it finishes.')
  flags.DEFINE_integer('terms', 4, 'SIGTERM at random moments of one run, then resume.')
  flags.DEFINE_integer('corruptions', 2, 'Newest checkpoint overwritten with random bytes.')
  flags.DEFINE_integer('seed', 0, 'Seed of the random moments.')
  app.run(main)
