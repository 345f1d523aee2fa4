"""The quick suite: every family on every embedded task, three seeds each, small enough for 15
minutes on 2 CPU cores.

Each entry is (run name, experiment file, experiment argument, config overrides). Every entry
is a sweep (`comparenets.sweep`): its three seeds train as one program and land in
``<run name>/seed<N>`` (digits: ``<run name>/lr<value>/seed<N>``, three learning rates around the
experiment's, of which the report keeps the best by validation accuracy). Step counts are cut
from the experiments' defaults to fit the budget with three seeds (BUILD_NOTES.md, "The quick
suite with seeds"): the verdicts of a quick report are about these short runs; the full suite
runs every entry at its default length. Moving digits: grayscale clips read by the
stacked-frame CNN, the CNN-encoder + LSTM and the LSTM on flattened frames; the single-frame CNN
as the chance-level control; and the coloured clips (which separate the families) read by the
stacked-frame CNN, the 3-D CNN and the LSTM. The CNN's vision scenarios (detection, x2
super-resolution, edges) run shortened.
"""

SEQUENCE = ('tcn', 'rnn', 'lstm', 'gru')
SEEDS = {'sweep.seeds': 3}
# around digits.py's 2e-3: half, as given, double
DIGITS_RATES = {'sweep.learning_rates': (1e-3, 2e-3, 4e-3)}


def get_suite():
  runs = []
  for model in ('cnn',) + SEQUENCE:
    runs.append((f'digits/{model}', 'digits.py', f'model={model}',
                 {'train.steps': 600, **SEEDS, **DIGITS_RATES}))
  for model in SEQUENCE:
    runs.append((f'seq_digits/{model}', 'seq_digits.py', f'model={model}',
                 {'train.steps': 500, **SEEDS}))
    runs.append((f'adding_T50/{model}', 'adding.py', f'model={model},length=50',
                 {'train.steps': 800, **SEEDS}))
    runs.append((f'copy_memory_T30/{model}', 'copy_memory.py', f'model={model},length=30',
                 {'train.steps': 800, **SEEDS}))
    runs.append((f'forecasting/{model}', 'forecasting.py', f'model={model}',
                 {'train.steps': 800, **SEEDS}))
  for model in ('cnn', 'cnn_lstm', 'lstm'):
    runs.append((f'moving_digits/{model}', 'moving_digits.py', f'model={model}',
                 {'train.steps': 300, **SEEDS}))
  runs.append(('moving_digits_frame/cnn', 'moving_digits.py', 'model=cnn,reading=frame',
               {'train.steps': 300, **SEEDS}))
  for model in ('cnn', 'cnn3d', 'lstm'):
    runs.append((f'moving_digits_rgb/{model}', 'moving_digits.py', f'model={model},channels=3',
                 {'train.steps': 500, **SEEDS}))
  runs.append(('detection/cnn', 'detection.py', 'model=cnn', {'train.steps': 300, **SEEDS}))
  runs.append(('super_resolution_x2/cnn', 'super_resolution.py', 'model=cnn,scale=2',
               {'train.steps': 500, **SEEDS}))
  runs.append(('edges/cnn', 'edges.py', 'model=cnn', {'train.steps': 150, **SEEDS}))
  return runs
