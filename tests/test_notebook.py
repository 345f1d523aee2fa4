"""experiments/notebook.ipynb runs top to bottom in a fresh kernel of this interpreter."""

import json
import os
import re
import sys

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'experiments', 'notebook.ipynb')


def _outputs(cell, output_type=None, name=None):
  return [o for o in cell.get('outputs', []) if (output_type is None or o.output_type ==
                                                  output_type) and (name is None or
                                                                    o.get('name') == name)]


def _text(cell):
  return ''.join(o.text for o in _outputs(cell, 'stream', 'stdout'))


def _cell(nb, source_start):
  (cell,) = [c for c in nb.cells if c.cell_type == 'code' and c.source.startswith(source_start)]
  return cell


def test_notebook_runs_top_to_bottom(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  workdir = tmp_path / 'runs'
  env = dict(os.environ, COMPARENETS_NOTEBOOK_WORKDIR=str(workdir), JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
  # One CPU device, as on a laptop (conftest simulates 8 for the data-parallel tests).
  env['XLA_FLAGS'] = re.sub(r'--xla_force_host_platform_device_count=\d+', '',
                            env.get('XLA_FLAGS', '')).strip()
  # 'python3' is the spec that ipykernel installs with itself (share/jupyter/kernels/python3,
  # or its built-in fallback); jupyter_client starts its 'python' as sys.executable.
  client = NotebookClient(nb, timeout=240, kernel_name='python3',
                          resources={'metadata': {'path': str(tmp_path)}})
  client.execute(env=env)  # raises CellExecutionError, with the cell, if any cell fails

  assert f'python: {sys.executable}\n' in _text(nb.cells[1])
  assert 'on 1 device(s): cpu' in _text(_cell(nb, 'import jax'))

  results = {}
  for model in ('cnn', 'lstm'):
    with open(workdir / 'digits' / model / 'results.json') as f:
      results[model] = json.load(f)
    assert results[model]['steps'] == 100
    assert results[model]['test']['accuracy'] > 0.5  # trained, not guessing (0.1)
    for plot in results[model]['plots']:
      assert os.path.getsize(workdir / 'digits' / model / plot) > 10_000
  tables = _text(_cell(nb, 'configs = {')) + _text(_cell(nb, "print(cn.parameter_table(configs['lstm"))
  assert tables.count('Total Parameters') == 2
  for model, result in results.items():  # the tables agree with what the runs trained
    assert f"Total Parameters: {result['params']['total']:,}" in tables, model
  assert '\x1b[' not in tables  # plain text, no terminal colour codes

  run_table = _outputs(_cell(nb, 'results = {'), 'display_data')[0].data['text/markdown']
  assert '| digits/cnn | cnn | digits | image |' in run_table
  assert '| digits/lstm | lstm | digits | sequence |' in run_table

  images = [o for c in nb.cells for o in _outputs(c) if 'image/png' in o.get('data', {})]
  assert len(images) == 4  # learning curves, confusion matrix, predictions, metric vs params

  structure = _text(_cell(nb, 'structure = ['))
  for model in ('lstm', 'gru'):
    params = re.findall(rf'{model} T=\d+: ([\d,]+) parameters', structure)
    assert len(params) == 2 and params[0] == params[1]  # constant in T

  audit = _outputs(_cell(nb, 'import json'), 'display_data')[0].data['text/markdown']
  rows = [line for line in audit.splitlines() if line.startswith('| 2.')]
  assert len(rows) == 11  # 2.1, 2.2 x3, 2.3.1 x2, 2.3.2 x2, 2.3.3 x3
  (invariance,) = [row for row in rows if row.startswith('| 2.1 |')]
  assert 'Runs: cnn: digits/cnn; lstm: digits/lstm' in invariance
  assert 'grows exponentially' in rows[0] and '**refuted**' in rows[0]
  assert 'lstm: T=8: 16,896, T=32: 16,896' in rows[0]
  assert (workdir / 'REPORT.md').exists()

  stderr = ''.join(o.text for c in nb.cells for o in _outputs(c, 'stream', 'stderr'))
  stderr = '\n'.join(l for l in stderr.splitlines()
                     if l.strip() and 'building the font cache' not in l)
  assert not stderr, f'the notebook printed to stderr:\n{stderr}'
