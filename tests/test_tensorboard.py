"""A finished run as researchers look at it: served by a real TensorBoard over its workdir.

tests/test_plots.py reads the event files by hand with tensorboardX's protos; that shows what was
written, not that TensorBoard reads it. Here a `tensorboard` server (the `tb` extra) runs over a
quick digits run and its HTTP data API must list every scalar of ``metrics.jsonl`` with the same
values at the same steps, and every task figure under Images with the pixels of its PNG.

The server is a subprocess, as a user runs it, rather than `tensorboard.program.TensorBoard`'s
``launch()`` in this process: ``launch()`` serves from a daemon thread that has no stop, so the
server and its port would live until pytest exits, and its flags, logging and plugin loading
would share this process with JAX. A subprocess is stopped in a ``finally`` and its log is kept
for the failure message. It binds port 0 on 127.0.0.1, so the kernel picks a free port and no
other process can take it between a probe and the bind; the URL is read from the line it prints.
``--reload_interval=0 --reload_task=blocking`` loads the finished run once, before it serves, so
the first answer already holds everything; ``--load_fast=false`` keeps the reading in that one
Python process (no Rust data server beside it to stop).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from comparenets.experiment import load_config
from comparenets import metric_writers
from comparenets import plots
from comparenets.train import train_and_evaluate

pytest.importorskip('tensorboard', reason='the TensorBoard server is the tb extra: '
                    "pip install -e '.[tb]' (scripts/test.sh installs it)")

QUICK = {'train.steps': 10, 'train.log_every': 5, 'train.eval_every': 5,
         'train.checkpoint_every': 0}
START_TIMEOUT_S = 60  # a loaded shared CPU; about 3 s here
STOP_TIMEOUT_S = 10
# no proxy, whatever the environment says: the server is on this machine's loopback only
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(base: str, path: str, **query) -> bytes:
  url = f'{base}/{path}' + (f'?{urllib.parse.urlencode(query)}' if query else '')
  with _OPENER.open(url, timeout=10) as response:
    return response.read()


def _get_json(base: str, path: str, **query):
  return json.loads(_get(base, path, **query))


def _start_tensorboard(logdir: str, scratch: str) -> tuple[subprocess.Popen, str]:
  """A TensorBoard subprocess on 127.0.0.1 over ``logdir`` and its URL, once it answers.

  Its output goes to ``scratch/tensorboard.log``, and ``scratch`` is its TMPDIR: the file in which
  TensorBoard registers itself (``.tensorboard-info/``) stays out of the shared /tmp even when
  the server has to be killed.
  """
  log_path = os.path.join(scratch, 'tensorboard.log')
  log = open(log_path, 'wb')  # pylint: disable=consider-using-with
  server = subprocess.Popen(
      [sys.executable, '-m', 'tensorboard.main', '--logdir', logdir, '--host', '127.0.0.1',
       '--port', '0', '--load_fast', 'false', '--reload_interval', '0',
       '--reload_task', 'blocking'],
      stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
      env={**os.environ, 'TMPDIR': scratch})
  log.close()
  deadline = time.monotonic() + START_TIMEOUT_S
  try:
    while time.monotonic() < deadline:
      if server.poll() is not None:
        break
      with open(log_path, encoding='utf-8', errors='replace') as f:
        found = re.search(r'at (http://127\.0\.0\.1:\d+)/', f.read())
      if found:
        base = found.group(1)
        try:
          _get(base, 'data/runs')
          return server, base
        except OSError:  # refused, reset or timed out (URLError is one): not serving yet
          pass
      time.sleep(0.2)
  except BaseException:
    _stop(server)
    raise
  _stop(server)
  with open(log_path, encoding='utf-8', errors='replace') as f:
    output = f.read()
  pytest.fail(f'TensorBoard did not answer within {START_TIMEOUT_S} s (exit code '
              f'{server.returncode}); its output:\n{output}')


def _stop(server: subprocess.Popen) -> None:
  """SIGTERM (TensorBoard exits on it), then SIGKILL if it has not within STOP_TIMEOUT_S."""
  if server.poll() is not None:
    return
  server.terminate()
  try:
    server.wait(STOP_TIMEOUT_S)
  except subprocess.TimeoutExpired:
    server.kill()
    server.wait(STOP_TIMEOUT_S)


def _decode_png(data: bytes) -> np.ndarray:
  from matplotlib import image as mpimg  # pylint: disable=g-import-not-at-top
  return mpimg.imread(io.BytesIO(data), format='png')


def test_tensorboard_serves_every_scalar_and_image_of_a_finished_run(tmp_path):
  workdir = str(tmp_path / 'digits_cnn')
  results = train_and_evaluate(load_config('digits', 'model=cnn,quick', QUICK), workdir)

  # what the run wrote: each metric of metrics.jsonl as <split>/<metric>, each task figure
  expected_scalars = {}
  for record in metric_writers.read_metrics(workdir):
    for key, value in record.items():
      if key not in ('step', 'split', 'wall_time'):
        expected_scalars.setdefault(f'{record["split"]}/{key}', {})[record['step']] = value
  # learning_curves.png is drawn from these scalars and is not sent to TensorBoard
  # (plots.write_run_plots); every other plot of the run is an image plots/<name>
  expected_images = {os.path.splitext(p)[0] for p in results['plots']
                     if p != f'{plots.PLOTS_DIR}/learning_curves.png'}
  assert expected_images and {'train/loss', 'test/accuracy'} <= set(expected_scalars)

  server, base = _start_tensorboard(workdir, str(tmp_path))
  try:
    runs = _get_json(base, 'data/runs')
    assert runs == ['tensorboard'], runs  # <workdir>/tensorboard, the run's one event directory
    run = runs[0]

    scalar_tags = _get_json(base, 'data/plugin/scalars/tags')
    assert set(scalar_tags) == {run}
    assert set(scalar_tags[run]) == set(expected_scalars)
    for tag, by_step in expected_scalars.items():
      served = _get_json(base, 'data/plugin/scalars/scalars', run=run, tag=tag)
      steps = [int(step) for _, step, _ in served]
      assert steps == sorted(by_step), (tag, steps)
      # TensorBoard holds scalars as float32, metrics.jsonl the float64 they came from
      np.testing.assert_allclose([value for _, _, value in served],
                                 [by_step[s] for s in steps], rtol=1e-6, err_msg=tag)

    image_tags = _get_json(base, 'data/plugin/images/tags')
    assert set(image_tags) == {run}
    assert set(image_tags[run]) == expected_images
    for tag in expected_images:
      (entry,) = _get_json(base, 'data/plugin/images/images', run=run, tag=tag, sample=0)
      assert entry['step'] == QUICK['train.steps'], (tag, entry)
      served = _decode_png(_get(base, f'data/plugin/images/individualImage?{entry["query"]}'))
      with open(os.path.join(workdir, f'{tag}.png'), 'rb') as f:
        on_disk = _decode_png(f.read())
      assert served.shape[:2] == on_disk.shape[:2], tag
      np.testing.assert_allclose(served[..., :3], on_disk[..., :3], atol=1 / 255, err_msg=tag)
  finally:
    _stop(server)
  assert server.returncode is not None
