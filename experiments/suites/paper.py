"""The paper suite: the rows of Bai, Kolter & Koltun (2018), Table 1, that embedded or generated
data can reproduce, every sequence family at the table's model size, three seeds, each family's
learning rate swept.

    python -m comparenets.compare --suite=paper --workdir=runs/paper
    python -m comparenets.compare --suite=paper:steps=20 --workdir=/tmp/paper   # a proof run
    python -m comparenets.compare \
        --suite=paper:rows=adding_T600+copy_memory_T1000,rates=1,steps=1000 --workdir=runs/p

Rows (run name: what the paper ran / what runs here):

* ``adding_T600``: the adding problem at T=600, MSE (as the paper).
* ``copy_memory_T1000``: copy memory at T=1000, cross-entropy loss per step (as the paper).
* ``seq_digits`` / ``seq_digits_permuted``: sequential and permuted MNIST read pixel by pixel
  (784 steps) in the paper; here scikit-learn's 8x8 digits read pixel by pixel, T=64, a much
  easier task (accuracy).
* ``char_lm``: the paper's character-level Penn Treebank (bits per character, models of about
  3M parameters); here the Python standard library's own source, windows of 128 characters,
  models of about 70k parameters like the other rows.

Sizes: each family's width chosen for about 70k parameters in all (backbone and head; 16k for
copy memory, as the paper's row), found by counting parameter shapes (tests/test_experiments.py
checks each within 5 %). Steps: each experiment's default (adding 3000, copy memory 4000,
digits 3000, char LM 3000) with its warmup and clipping; ``steps=N`` runs every entry N steps
(below 200 steps a proof of the pipeline, not of the numbers: no warmup, no validation or
checkpoints before the end; from 200 steps on the experiment's warmup and clipping are kept and
a checkpoint is written every quarter of the run). ``rows=A+B`` runs only those rows (``+``
between run names), ``rates=1`` only each experiment's own learning rate (``rates=3``, the
default, all three), ``seeds=N`` N seeds: a CPU fits a share of the suite in an afternoon
(BUILD_NOTES, "The paper suite on the CPU"). Learning rates: half, equal to and double each
experiment's 2e-3; the report keeps the best by mean validation metric and sets each row
beside the paper's number (`comparenets.analysis.published`, "Against the published table").
"""

from comparenets.errors import ConfigError
from comparenets.experiment import parse_arg

SEQUENCE = ('tcn', 'rnn', 'lstm', 'gru')
SEEDS = 3
LEARNING_RATES = (1e-3, 2e-3, 4e-3)

# (run name, experiment file, argument, {family: (width field, width)}): widths for the row's
# parameter budget, measured by counting shapes (about 70k in all; copy memory about 16k)
ROWS = (
    ('adding_T600', 'adding.py', 'length=600',
     {'tcn': 32, 'rnn': 263, 'lstm': 131, 'gru': 151}),
    ('copy_memory_T1000', 'copy_memory.py', 'length=1000',
     {'tcn': 12, 'rnn': 116, 'lstm': 57, 'gru': 66}),
    ('seq_digits', 'seq_digits.py', 'order=sequential',
     {'tcn': 48, 'rnn': 205, 'lstm': 115, 'gru': 130}),
    ('seq_digits_permuted', 'seq_digits.py', 'order=permuted',
     {'tcn': 48, 'rnn': 205, 'lstm': 115, 'gru': 130}),
    ('char_lm', 'char_lm.py', 'corpus=stdlib',
     {'tcn': 33, 'rnn': 121, 'lstm': 68, 'gru': 78}),
)

def width_field(model: str) -> str:
  return 'model.channels' if model == 'tcn' else 'model.hidden'


def get_suite(arg=None):
  arg = parse_arg(arg, steps=0, rows='', rates=len(LEARNING_RATES), seeds=SEEDS)
  names = [row[0] for row in ROWS]
  chosen = [r for r in arg.rows.split('+') if r] or names
  unknown = sorted(set(chosen) - set(names))
  if unknown:
    raise ConfigError(f'paper suite: unknown row {", ".join(unknown)}; rows are '
                      f'{"+".join(names)}')
  if arg.rates not in (1, len(LEARNING_RATES)):
    raise ConfigError(f'paper suite: rates={arg.rates}; it is 1 (each experiment\'s own '
                      f'learning rate) or {len(LEARNING_RATES)} (all of {LEARNING_RATES})')
  if arg.seeds < 1:
    raise ConfigError(f'paper suite: seeds={arg.seeds}; it is at least 1')
  rates = LEARNING_RATES if arg.rates > 1 else ()
  runs = []
  for name, experiment_file, experiment_arg, widths in ROWS:
    if name not in chosen:
      continue
    for model in SEQUENCE:
      overrides = {width_field(model): widths[model], 'sweep.seeds': arg.seeds,
                   'sweep.learning_rates': rates}
      if 0 < arg.steps < 200:
        overrides.update({'train.steps': arg.steps, 'train.warmup_steps': 0,
                          'train.eval_every': 0, 'train.checkpoint_every': 0,
                          'train.log_every': max(1, arg.steps // 2)})
      elif arg.steps:
        overrides.update({'train.steps': arg.steps, 'train.eval_every': arg.steps // 4,
                          'train.checkpoint_every': arg.steps // 4,
                          'train.log_every': max(1, arg.steps // 20)})
      runs.append((f'{name}/{model}', experiment_file, f'model={model},{experiment_arg}',
                   overrides))
  return runs
