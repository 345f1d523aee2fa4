"""The quick suite: every family on every embedded task, small enough for 2 CPU cores.

Each entry is (run name, experiment file, experiment argument, config overrides). The step
counts are the experiments' defaults where those are already short (digits) and cut elsewhere.
"""

SEQUENCE = ('tcn', 'rnn', 'lstm', 'gru')


def get_suite():
  runs = []
  for model in ('cnn',) + SEQUENCE:
    runs.append((f'digits/{model}', 'digits.py', f'model={model}', {}))
  for model in SEQUENCE:
    runs.append((f'seq_digits/{model}', 'seq_digits.py', f'model={model}',
                 {'train.steps': 1000}))
    runs.append((f'adding_T50/{model}', 'adding.py', f'model={model},length=50',
                 {'train.steps': 1500}))
    runs.append((f'copy_memory_T30/{model}', 'copy_memory.py', f'model={model},length=30',
                 {'train.steps': 1500}))
    runs.append((f'forecasting/{model}', 'forecasting.py', f'model={model}',
                 {'train.steps': 1500}))
  return runs
