"""The paper suite: the rows of Bai, Kolter & Koltun (2018), Table 1, that embedded or generated
data can reproduce, every sequence family at the table's model size, three seeds, each family's
learning rate swept.

    python -m comparenets.compare --suite=paper --workdir=runs/paper
    python -m comparenets.compare --suite=paper:steps=20 --workdir=/tmp/paper   # a proof run

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
(a proof of the pipeline, not of the numbers). Learning rates: half, equal to and double each
experiment's 2e-3; the report keeps the best by mean validation metric and sets each row
beside the paper's number (`comparenets.analysis.published`, "Against the published table").
"""

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
  arg = parse_arg(arg, steps=0)
  runs = []
  for name, experiment_file, experiment_arg, widths in ROWS:
    for model in SEQUENCE:
      overrides = {width_field(model): widths[model], 'sweep.seeds': SEEDS,
                   'sweep.learning_rates': LEARNING_RATES}
      if arg.steps:
        overrides.update({'train.steps': arg.steps, 'train.warmup_steps': 0,
                          'train.eval_every': 0, 'train.checkpoint_every': 0,
                          'train.log_every': max(1, arg.steps // 2)})
      runs.append((f'{name}/{model}', experiment_file, f'model={model},{experiment_arg}',
                   overrides))
  return runs
