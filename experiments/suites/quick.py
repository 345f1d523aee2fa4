"""The quick suite: every family on the embedded tasks, three seeds each, within 15 minutes on
2 CPU cores.

Each entry is (run name, experiment file, experiment argument, config overrides). Every entry
is a sweep (`comparenets.sweep`) of three seeds, landing in ``<run name>/seed<N>`` (digits:
``<run name>/lr<value>/seed<N>``, three learning rates around the experiment's, of which the
report keeps the best by mean validation accuracy). Three seeds cost about three times one on a
CPU (BUILD_NOTES.md, "Members in one program"), so the budget is kept by shorter runs (the step
counts below, against the experiments' 2,000 to 4,000) and by leaving to the full suite what
needs long runs to say anything: coloured moving digits (the 3-D CNN) and the CNN's detection,
super-resolution and edge scenarios; the claims that read them say what this suite lacks.
Training-set size: the CNN and the GRU (the recurrent family with the best digits validation
accuracy in this suite's report of 2026-12-01: 0.981, rnn 0.969, lstm 0.970) at 1/8, 1/4 and 1/2 of digits' training split, so that
claim 2.3.2's second half has its four sizes; the full suite runs every family at them.
The adding problem trains on lengths from 20 to 50 and is tested at 10, 35 and 100, so that
claim 2.3.1's second half (adapting to other lengths) has its runs; the full suite trains on 25
to 75 and tests at 150.
The character LM (text generation) runs 300 steps on 64-character windows at a quarter of its
experiment's width, enough to leave the uniform-byte level far behind and to write samples.
Forecasting is the real series only: statsmodels' yearly sunspot numbers (forecasting 6 years from 12, against the
persistence and linear-AR baselines) for every causal family at its experiment's own 1,000
steps (168 training windows, models 32 units wide: about 10 s an entry with its three seeds);
the generated Mackey-Glass and Lorenz series are the full suite's (Mackey-Glass left this suite
on 2026-12-02, when the chorales came in, to keep it near 15 minutes).
Music: J. S. Bach's chorales (the song task, music21's corpus) for every causal family, 300
steps on 32-step windows (4 bars in eighth notes; the experiment: 128 steps, 3,000 steps of
training), the TCN at half the experiment's width (64 channels), the recurrent families at its
128 units. The test NLL is read on whole pieces, as in the experiment. experiments/suites/real_data.py runs it on 128-step windows
beside the sunspots (8 minutes), the full suite at full length.
Moving digits (grayscale clips): the stacked-frame CNN, the CNN-encoder + LSTM and the LSTM on
flattened frames, with the single-frame CNN as the chance-level control.
"""

SEQUENCE = ('tcn', 'rnn', 'lstm', 'gru')
SEEDS = {'sweep.seeds': 3}
# the adding problem trained on lengths from 20 to 50 (padded and masked within a batch) and
# tested at 10 and 100 (unseen) and 35 (inside): claim 2.3.1's second half, and the adding task
# of every other claim (its test mse is the training mix's); 1.08x the CPU time of fixed T=50
ADDING_LENGTHS = 'length=50,min_length=20,test_lengths=10+35+100'
# around digits.py's 2e-3: half, as given, double
DIGITS_RATES = {'sweep.learning_rates': (1e-3, 2e-3, 4e-3)}


def get_suite():
  runs = []
  for model in ('cnn',) + SEQUENCE:
    runs.append((f'digits/{model}', 'digits.py', f'model={model}',
                 {'train.steps': 400, **SEEDS, **DIGITS_RATES}))
  for model in SEQUENCE:
    for name, experiment_file, arg in (('seq_digits', 'seq_digits.py', ''),
                                       ('adding_lengths', 'adding.py', ADDING_LENGTHS),
                                       ('copy_memory_T30', 'copy_memory.py', 'length=30')):
      runs.append((f'{name}/{model}', experiment_file,
                   f'model={model}' + (f',{arg}' if arg else ''),
                   {'train.steps': 400, **SEEDS}))
  # training-set size (claim 2.3.2, second half): the CNN and the GRU on 1/8, 1/4 and 1/2 of
  # digits' training split (all of it: the digits entries above), at the experiment's rate
  for fraction in (0.125, 0.25, 0.5):
    for model in ('cnn', 'gru'):
      runs.append((f'digits_frac{fraction:g}/{model}', 'digits.py', f'model={model}',
                   {'train.steps': 400, 'task.train_subset': fraction, **SEEDS}))
  # text generation: the character LM on the standard library's source (bits per character,
  # samples), every causal family, in windows of 64 characters at a quarter of the experiment's
  # width (TCN 64 channels, recurrent 128 units)
  for model in SEQUENCE:
    width = {'model.channels': 64} if model == 'tcn' else {'model.hidden': 128}
    runs.append((f'char_lm/{model}', 'char_lm.py', f'model={model},length=64',
                 {'train.steps': 300, 'train.eval_every': 0, 'task.eval_windows': 256,
                  'task.sample_length': 120, 'task.num_samples': 1, **width, **SEEDS}))
  # a real series (claim 4.2): statsmodels' sunspots at the experiment's settings
  for model in SEQUENCE:
    runs.append((f'forecasting_sunspots/{model}', 'forecasting.py',
                 f'model={model},series=sunspots', {**SEEDS}))
  # music (claim 4.2): the Bach chorales on 4-bar windows, the TCN at half width
  for model in SEQUENCE:
    width = {'model.channels': 64} if model == 'tcn' else {}
    runs.append((f'song/{model}', 'song.py', f'model={model},quick',
                 {'train.steps': 300, 'train.eval_every': 0, **width, **SEEDS}))
  for model in ('cnn', 'cnn_lstm', 'lstm'):
    runs.append((f'moving_digits/{model}', 'moving_digits.py', f'model={model}',
                 {'train.steps': 200, **SEEDS}))
  runs.append(('moving_digits_frame/cnn', 'moving_digits.py', 'model=cnn,reading=frame',
               {'train.steps': 200, **SEEDS}))
  return runs
