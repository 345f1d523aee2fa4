"""The quick suite: every family on every embedded task, small enough for 2 CPU cores.

Each entry is (run name, experiment file, experiment argument, config overrides). The step
counts are the experiments' defaults where those are already short (digits, moving digits) and
cut elsewhere. Moving digits: grayscale clips read by the stacked-frame CNN, the CNN-encoder +
LSTM and the LSTM on flattened frames; the single-frame CNN as the chance-level control; and
the coloured clips (which separate the families) read by the stacked-frame CNN, the 3-D CNN and
the LSTM. The CNN's vision scenarios (detection, x2 super-resolution, edges) run shortened.
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
  for model in ('cnn', 'cnn_lstm', 'lstm'):
    runs.append((f'moving_digits/{model}', 'moving_digits.py', f'model={model}', {}))
  runs.append(('moving_digits_frame/cnn', 'moving_digits.py', 'model=cnn,reading=frame', {}))
  for model in ('cnn', 'cnn3d', 'lstm'):
    runs.append((f'moving_digits_rgb/{model}', 'moving_digits.py', f'model={model},channels=3',
                 {}))
  runs.append(('detection/cnn', 'detection.py', 'model=cnn', {'train.steps': 800}))
  runs.append(('super_resolution_x2/cnn', 'super_resolution.py', 'model=cnn,scale=2',
               {'train.steps': 1500}))
  runs.append(('edges/cnn', 'edges.py', 'model=cnn', {'train.steps': 500}))
  return runs
