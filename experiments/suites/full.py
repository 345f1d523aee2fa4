"""The full suite: the paper-scale comparison, for a GPU/TPU host, three seeds per entry.

Every family on every embedded task (the Bach chorales of the song task and the sunspots series
ship in the music21 and statsmodels wheels) at the experiments' default step counts, at the longer
sequences the experiments default to (adding T=200, copy memory T=100) as well as the quick
suite's shorter ones, the adding problem trained on lengths from 25 to 75 in one batch and
tested at 10, 50 and 150 (``adding_lengths``, claim 2.3.1's second half), every family that
reads video on grayscale and coloured moving digits (with the single-frame control), the CNN's
vision scenarios (detection with 10 classes and with one, super-resolution x2/x3/x4, edges at
two noise levels), the digits on an eighth, a quarter and half of their training split
(``digits_frac0.125/cnn`` ...), and the TFDS tasks (MNIST, permuted MNIST, IMDB sentiment, tiny
Shakespeare), which need their datasets prepared first (the run's error message says how;
``task.data_dir`` points at them). Each entry is (run name, experiment file, experiment argument,
config overrides), each a sweep of three seeds and three learning rates (`swept`): its members
land in ``<run name>/lr<value>/seed<N>``, and the report keeps each family's best rate by mean
validation metric and shows the mean, standard deviation and interval over the seeds.

    python -m comparenets.compare --suite=full --workdir=runs/full
"""

from comparenets.experiment import load_config

SEQUENCE = ('tcn', 'rnn', 'lstm', 'gru')
SEEDS = (0, 1, 2)
# the adding problem at lengths that differ (`AddingProblem.min_length`, `test_lengths`)
ADDING_LENGTHS = 'length=75,min_length=25,test_lengths=10+50+150'
LEARNING_RATE_FACTORS = (0.5, 1.0, 2.0)
# Parts of the digits' training split besides all of it (2.3.2: four sizes, 1/8 to 1/1)
TRAIN_FRACTIONS = (0.125, 0.25, 0.5)

# Entries that read a TFDS dataset (prepared in the array_record format before the suite runs).
TFDS_EXPERIMENTS = ('tfds_images.py', 'sentiment.py')


def embedded():
  """Entries whose data ships with the code or is generated: no download."""
  runs = []
  for model in ('cnn',) + SEQUENCE:
    runs.append((f'digits/{model}', 'digits.py', f'model={model}', {}))
  runs += train_subsets()
  for model in SEQUENCE:
    runs.append((f'seq_digits/{model}', 'seq_digits.py', f'model={model}', {}))
    runs.append((f'seq_digits_permuted/{model}', 'seq_digits.py',
                 f'model={model},order=permuted', {}))
    for length in (50, 200):
      runs.append((f'adding_T{length}/{model}', 'adding.py', f'model={model},length={length}',
                   {}))
    # sequences of different lengths (claim 2.3.1, second half): trained on lengths drawn from
    # [25, 75], tested at 10 and 150 (unseen) and at 50 (inside the range)
    runs.append((f'adding_lengths/{model}', 'adding.py',
                 f'model={model},{ADDING_LENGTHS}', {}))
    for length in (30, 100):
      runs.append((f'copy_memory_T{length}/{model}', 'copy_memory.py',
                   f'model={model},length={length}', {}))
    for series in ('mackey_glass', 'lorenz', 'sunspots'):
      name = 'forecasting' if series == 'mackey_glass' else f'forecasting_{series}'
      runs.append((f'{name}/{model}', 'forecasting.py', f'model={model},series={series}', {}))
    runs.append((f'char_lm/{model}', 'char_lm.py', f'model={model}', {}))
    runs.append((f'song/{model}', 'song.py', f'model={model}', {}))
  video = ('cnn', 'cnn3d', 'cnn_rnn', 'cnn_lstm', 'cnn_gru') + SEQUENCE
  for channels, name in ((1, 'moving_digits'), (3, 'moving_digits_rgb')):
    for model in video:
      runs.append((f'{name}/{model}', 'moving_digits.py', f'model={model},channels={channels}',
                   {}))
    runs.append((f'{name}_frame/cnn', 'moving_digits.py',
                 f'model=cnn,reading=frame,channels={channels}', {}))
  runs.append(('detection/cnn', 'detection.py', 'model=cnn', {}))
  runs.append(('detection_one_class/cnn', 'detection.py', 'model=cnn,num_classes=1', {}))
  for scale in (2, 3, 4):
    runs.append((f'super_resolution_x{scale}/cnn', 'super_resolution.py',
                 f'model=cnn,scale={scale}', {}))
  runs.append(('edges/cnn', 'edges.py', 'model=cnn', {}))
  runs.append(('edges_noise02/cnn', 'edges.py', 'model=cnn', {'task.noise': 0.2}))
  return runs


def train_subsets():
  """The digits read as images or rows (every family) and pixel by pixel (every sequence family)
  on nested parts of the training split (`TRAIN_FRACTIONS`; all of it is the entries above),
  validation and test whole: the runs of the claim that CNNs suit large datasets better (2.3.2),
  which reads the test metric's slope against log2 of the fraction."""
  runs = []
  for fraction in TRAIN_FRACTIONS:
    share = {'task.train_subset': fraction}
    for model in ('cnn',) + SEQUENCE:
      runs.append((f'digits_frac{fraction:g}/{model}', 'digits.py', f'model={model}', share))
    for model in SEQUENCE:
      runs.append((f'seq_digits_frac{fraction:g}/{model}', 'seq_digits.py', f'model={model}',
                   share))
  return runs


def tfds():
  """Entries that read a prepared TFDS dataset."""
  runs = []
  for model in ('cnn',) + SEQUENCE:
    runs.append((f'mnist/{model}', 'tfds_images.py', f'model={model},dataset=mnist', {}))
  for model in SEQUENCE:
    runs.append((f'permuted_mnist/{model}', 'tfds_images.py',
                 f'model={model},dataset=mnist,reading=pixels,order=permuted', {}))
    runs.append((f'imdb/{model}', 'sentiment.py', f'model={model}', {}))
    runs.append((f'tiny_shakespeare/{model}', 'char_lm.py',
                 f'model={model},corpus=tiny_shakespeare', {}))
  return runs


def swept(entries):
  """Each entry as a sweep (`comparenets.sweep`): three seeds and learning rates of half, one
  and two times its experiment's, so every (task, family) is reported at its tuned rate."""
  out = []
  for name, experiment_file, arg, overrides in entries:
    rate = load_config(experiment_file, arg).train.learning_rate
    out.append((name, experiment_file, arg, {
        **overrides, 'sweep.seeds': len(SEEDS),
        'sweep.learning_rates': tuple(f * rate for f in LEARNING_RATE_FACTORS)}))
  return out


def get_suite():
  return swept(embedded() + tfds())
