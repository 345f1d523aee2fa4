"""A table of the finished runs under a directory: ``python -m comparenets.summary DIR``.

Reads every ``results.json`` below DIR and prints one Markdown row per run: model, task setting,
parameters, steps, training time and the task's target metric on validation and test. DIR may be
a bucket (``gs://bucket/suite``): everything is read through `etils.epath` (`comparenets.workdir`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from comparenets import console
from comparenets import workdir as workdirs
from comparenets.errors import UserError


def load_results(root: str) -> list[dict[str, Any]]:
  """Every run's results.json below ``root``, each with its 'workdir' added."""
  workdirs.require_bucket_support(root, 'root')  # one line, not an ImportError from fsspec
  runs = []
  for run_dir in workdirs.find(root, 'results.json'):
    result = json.loads(workdirs.join(root, run_dir, 'results.json').read_text())
    result['workdir'] = run_dir
    runs.append(result)
  return runs


def table(runs: list[dict[str, Any]]) -> str:
  """One row per run with its task's target metric (the metric model selection looks at)."""
  head = ['run', 'model', 'task', 'input', 'params', 'steps', 'train s', 'metric',
          'validation', 'test']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for r in runs:
    task = r['task']
    setting = ','.join(f'{k}={v}' for k, v in task.items()
                       if k in ('reading', 'order') and v not in ('auto', 'sequential'))
    metric = r['target_metric']
    row = [r['workdir'], r['model'], task['name'] + (f' ({setting})' if setting else ''),
           r['input_kind'], f"{r['params']['total']:,}", str(r['steps']),
           f"{r['train_time_s']:.1f}", metric, f"{r['validation'][metric]:.4g}",
           f"{r['test'][metric]:.4g}"]
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines)


def main(argv: list[str]) -> int:
  """``argv``: the program and the directory (absl hands over what is left after the flags)."""
  if len(argv) != 2:
    print('usage: python -m comparenets.summary DIR', file=sys.stderr)
    return 2
  try:
    workdirs.require_bucket_support(argv[1], 'DIR')
    runs = load_results(argv[1])
  except UserError as e:
    print(f'comparenets: error: {e}', file=sys.stderr)
    return e.exit_code
  if not runs:
    print(f'no results.json below {argv[1]}', file=sys.stderr)
    return 1
  print(table(runs))
  return 0


def run() -> None:
  """Command-line entry point: absl's flags (``--help``) and a positional DIR."""
  console.run(main, logs=False)


if __name__ == '__main__':
  run()
