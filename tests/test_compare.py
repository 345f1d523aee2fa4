"""The suite runner and the report: runs, skips finished runs, writes tables and plots; seeds;
the full suite's entries; the same suite run twice gives the same results."""

import json
import os
import re
import subprocess
import sys
import threading

from etils import epath
from fsspec.implementations.memory import MemoryFileSystem
import numpy as np
import pytest

from comparenets import api
from comparenets import compare
from comparenets import models
from comparenets import summary
from comparenets import workdir as workdirs
from comparenets.analysis import report
from comparenets.analysis import selection
from comparenets.errors import ConfigError
from comparenets.experiment import EXPERIMENTS, load_config
from comparenets.summary import load_results
from comparenets.train import build_setup
from fake_gcs import FakeGCS, bucket, upload  # pylint: disable=unused-import  (bucket: a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SUITE = '''
def get_suite():
  return [('digits/cnn', 'digits.py', 'model=cnn,quick', {'train.steps': 6, 'train.log_every': 2}),
          ('digits/lstm', 'digits.py', 'model=lstm,quick', {'train.steps': 6, 'train.log_every': 2}),
          ('forecasting/gru', 'forecasting.py', 'model=gru,quick', {'train.steps': 6, 'train.log_every': 2})]
'''


@pytest.fixture(scope='module')
def tiny_suite(tmp_path_factory):
  """The tiny suite, written and run once: (suite file, workdir, the names it trained)."""
  tmp_path = tmp_path_factory.mktemp('tiny_suite')
  suite = tmp_path / 'tiny.py'
  suite.write_text(SUITE)
  workdir = tmp_path / 'runs'
  return suite, workdir, compare.run_suite(str(suite), str(workdir))


def test_suite_runs_skips_finished_runs_and_reports(tiny_suite):
  suite, workdir, trained = tiny_suite
  assert trained == ['digits/cnn', 'digits/lstm', 'forecasting/gru']
  assert compare.run_suite(str(suite), str(workdir)) == []  # all finished: nothing retrained
  path = report.write_report(str(workdir), structure_lengths=(8,))  # measures a matmul peak
  text = open(path).read()
  assert 'Matmul peak: ' in text and 'GFLOP/s (float32 1024x1024 matmul on cpu' in text
  assert text.count('% |') >= 4  # a fraction of the peak on every structure row
  assert '### digits' in text and '### forecasting' in text
  assert '`digits/lstm`' in text and 'Baseline linear_ar' in text
  assert '| lstm | 8 |' in text  # structure row
  assert '| char_lm | - | - | sequence | sequence | sequence | sequence | - | - | - |' in text
  claims = text.split('## Claims audit')[1].split('## Which family')[0]
  rows = [l for l in claims.splitlines() if l.startswith('| 2.')]
  assert len(rows) == 11
  # no run on part of the digits' training split: the data-size claim names the full suite
  assert 'CNNs suit large datasets' in rows[-1] and '**not measured**' in rows[-1]
  assert 'experiments/suites/full.py, runs them: digits_frac*' in rows[-1]
  assert '| 3.1 | A CNN takes input of one fixed size' in claims and '**depends**' in claims
  assert "parameter count grows exponentially" in rows[0]
  assert '**not measured**' in rows[0]  # one length: growth needs two (tests/test_claims.py)
  assert 'lstm: T=8: 66,560' in rows[0]  # the structure numbers behind it
  assert 'only an update gate' in rows[1] and '**refuted**' in rows[1]
  assert 'reset, update gates and a candidate' in rows[1]
  assert 'sees only the previous time step' in rows[3] and '**not measured**' in rows[3]
  assert 'digits: steps to 90 % of the loss drop' in rows[4]
  # one seed a model: which family converged first is no verdict
  assert '**not distinguishable**' in rows[4] and '(cnn vs lstm: not distinguishable (one seed each))' in rows[4]
  # no run tested at lengths it did not train on: the full suite's adding_lengths
  assert 'different lengths' in rows[5] and '**not measured**' in rows[5]
  # the test split's size, recorded by the loop, gives each accuracy its Wilson interval
  digits = json.loads((workdir / 'digits' / 'cnn' / 'results.json').read_text())
  assert digits['examples'] == {'validation': 269, 'test': 269}
  wilson = r'\[0\.\d{3}, [01]\.\d{3}\]'
  assert re.search(r'\| `digits/cnn` \(0\) \| 1 \|.*\| - \(one seed\) \| ' + wilson + r' \|', text)
  assert 'cnn 53,002' in rows[7]
  assert 'Use of the hardware at the longest T=8' in rows[6]
  assert re.search(r'tcn \d+\.\d%, rnn \d+\.\d%, lstm \d+\.\d%, gru \d+\.\d%', rows[6])
  # 2.1: both digits runs restored from their checkpoints and evaluated on moved images
  assert rows[8].startswith('| 2.1 | A CNN is invariant to the size') and 'Left out' not in rows[8]
  assert re.search(r'cnn [01]\.\d{3}, shifted 1 px [01]\.\d{3} \(drop [-+]\d\.\d{3}\), '
                   r'shrunk to 6x6', rows[8]) and 'Runs: cnn: digits/cnn; lstm: digits/lstm' \
      in rows[8]
  # 4.2, 3.2 and 2.3.3's time to a target, from these runs (and the shapes the loop recorded)
  assert json.loads((workdir / 'digits' / 'lstm' / 'results.json').read_text())['io_shapes'] == \
      {'input': [8, 8], 'output': [10]}
  uses = next(l for l in claims.splitlines() if l.startswith('| 4.2 |'))
  assert 'digits: best recurrent lstm test accuracy' in uses and 'chance 0.1' in uses
  assert 'forecasting: best recurrent gru test nrmse' in uses and 'linear_ar' in uses
  io = next(l for l in claims.splitlines() if l.startswith('| 3.2 |'))
  assert 'many-to-one: digits/lstm (8x8 -> 10), forecasting/gru (' in io and '**depends**' in io
  assert 'No finished recurrent run of: many-to-many, generation.' in io
  assert rows[9].startswith('| 2.3.3 | RNNs need more (wall-clock) time')
  assert 'digits: training seconds to validation accuracy >= ' in rows[9]
  assert '**not distinguishable**' in rows[9] and 'one seed each' in rows[9]
  for png in ('metric_vs_params.png', 'learning_curves_digits.png',
              'learning_curves_forecasting.png', 'structure.png'):
    assert os.path.getsize(workdir / png) > 10_000, png
  # written again (what a second `compare` of the same workdir does): the very same report,
  # the structure rows and matmul peak measured the first time kept
  assert (workdir / 'matmul_peak.json').exists()
  assert open(report.write_report(str(workdir), structure_lengths=(8,))).read() == text


def test_io_table_follows_the_registries():
  table = report.io_table()
  rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
          for line in table.splitlines()[2:]}
  # columns: cnn, cnn3d, tcn, rnn, lstm, gru, cnn_rnn, cnn_lstm, cnn_gru
  assert rows['digits'] == ['image', '-', 'rows', 'rows', 'rows', 'rows', '-', '-', '-']
  assert rows['adding'] == ['-', '-'] + ['sequence'] * 4 + ['-'] * 3
  assert rows['moving_digits'] == ['channels', 'video'] + ['frames'] * 4 + ['video'] * 3
  assert rows['detection'] == ['image'] + ['-'] * 8


def test_report_without_runs_is_a_clear_error(tmp_path):
  with pytest.raises(ConfigError, match='no finished runs'):
    report.write_report(str(tmp_path))


def test_quick_suite_has_three_seeds_on_every_row_and_sweeps_digits_rates():
  entries = compare.load_suite('quick')
  names = [e[0] for e in entries]
  assert len(names) == len(set(names))
  assert {n.split('/')[1] for n in names} == {'cnn', 'tcn', 'rnn', 'lstm', 'gru', 'cnn_lstm'}
  experiments = {e[1] for e in entries}
  # the long-run scenarios (vision, coloured video) and TFDS / wheel data are the full suite's
  assert experiments == {f for f in os.listdir(os.path.join(ROOT, 'experiments'))
                         if f.endswith('.py')} - {'sentiment.py', 'tfds_images.py',
                                                  'detection.py',
                                                  'super_resolution.py', 'edges.py'}
  assert {n.split('/')[1] for n in names if n.startswith('digits/')} == {
      'cnn', 'tcn', 'rnn', 'lstm', 'gru'}
  # text generation and a real series for every causal family (issue 20)
  assert {n.split('/')[1] for n in names if n.startswith('forecasting_sunspots/')} == {
      'tcn', 'rnn', 'lstm', 'gru'}
  assert all(load_config(e, a, o).task.series == 'sunspots'
             for n, e, a, o in entries if n.startswith('forecasting_sunspots/'))
  assert {n.split('/')[1] for n in names if n.startswith('char_lm/')} == {'tcn', 'rnn', 'lstm', 'gru'}
  # music: the chorales for every causal family, tested on whole pieces
  songs = {n.split('/')[1]: load_config(e, a, o) for n, e, a, o in entries
           if n.startswith('song/')}
  assert set(songs) == {'tcn', 'rnn', 'lstm', 'gru'}
  assert all(c.task.name == 'song' and c.train.steps >= 300 for c in songs.values())
  for name, experiment, arg, overrides in entries:
    config = load_config(experiment, arg, overrides)  # every entry builds a config
    assert config.sweep.seeds == 3, name
    rates = config.sweep.learning_rates
    assert len(rates) >= 3 if name.startswith('digits/') else rates == (), name
  # lengths (claim 2.3.1, second half): trained on a range, tested inside it and outside
  adding = [load_config(e, a, o).task for n, e, a, o in entries if n.startswith('adding')]
  assert len(adding) == 4 and all(t.min_length < t.length and min(t.test_lengths) < t.min_length
                                  and max(t.test_lengths) > t.length for t in adding)
  # training-set size: the four fractions of digits for a convolutional and a recurrent model
  fractions = {(n.split('/')[1], load_config(e, a, o).task.get('train_subset', 1.0))
               for n, e, a, o in entries if n.startswith('digits')}
  assert {f for m, f in fractions if m == 'cnn'} == {f for m, f in fractions if m == 'gru'} == {
      0.125, 0.25, 0.5, 1.0}


def test_real_data_suite_has_the_song_and_the_sunspots_for_every_causal_family():
  entries = compare.load_suite('real_data')
  tasks_of = {}
  for name, experiment, arg, overrides in entries:
    config = load_config(experiment, arg, overrides)
    assert config.sweep.seeds == 3, name
    tasks_of.setdefault((config.task.name, config.task.get('series')), set()).add(
        name.split('/')[1])
  assert tasks_of == {('song', None): {'tcn', 'rnn', 'lstm', 'gru'},
                      ('forecasting', 'sunspots'): {'tcn', 'rnn', 'lstm', 'gru'}}


def _without_time(table: str) -> list[list[str]]:
  rows = [[c.strip() for c in line.split('|')] for line in table.splitlines() if line]
  column = rows[0].index('train s')
  return [r[:column] + r[column + 1:] for r in rows]


def test_the_same_suite_twice_gives_the_same_results(tiny_suite, tmp_path):
  """Two of the tiny suite's entries again, in a fresh workdir: the same table to the digit
  (training time aside)."""
  _, first, _ = tiny_suite
  suite = tmp_path / 'two.py'
  suite.write_text(SUITE.replace('def get_suite():', 'def _all():') +
                   '\n\ndef get_suite():\n  return _all()[:2]\n')
  assert compare.load_suite(str(suite))[1][0] == 'digits/lstm'
  second = tmp_path / 'again'
  assert compare.run_suite(str(suite), str(second)) == ['digits/cnn', 'digits/lstm']
  tables, metrics = [], []
  for root in (first, second):
    runs = [r for r in load_results(str(root)) if r['workdir'].startswith('digits')]
    tables.append(_without_time(report.results_table(report.group_runs(runs)['digits'],
                                                     str(root))))
    metrics.append([(r['workdir'], r['validation'], r['test']) for r in runs])
  assert len(tables[0]) == 5 and tables[0] == tables[1]  # and the learning-rate line
  assert metrics[0] == metrics[1]  # every digit, not only the table's four


def test_with_seeds_and_top_level_overrides():
  entries = compare.with_seeds([('adding_T50/gru', 'adding.py', 'model=gru,length=50',
                                 {'train.steps': 5})], (0, 3))
  assert [e[0] for e in entries] == ['adding_T50/gru/seed0', 'adding_T50/gru/seed3']
  config = load_config(*entries[1][1:])
  assert config.seed == 3 and config.train.steps == 5 and config.task.length == 50
  with pytest.raises(ConfigError, match='no top-level field'):
    load_config('adding.py', 'model=gru', {'train': 5})


def _fake_run(root, workdir, model, test, seed=None, metric='accuracy', validation=None,
              learning_rate=None, examples=None, task=None):
  path = root / workdir
  path.mkdir(parents=True)
  validation = test - 0.1 if validation is None else validation
  result = {'model': model, 'task': {'name': task or workdir.split('/')[0]},
            'input_kind': 'sequence',
            'steps': 100, 'params': {'total': 1000}, 'train_time_s': 2.0,
            'target_metric': metric, 'validation': {metric: validation}, 'test': {metric: test}}
  if examples is not None:
    result['examples'] = {'validation': examples, 'test': examples}
  (path / 'results.json').write_text(json.dumps(result))
  config = {}
  if seed is not None:
    config['seed'] = seed
  if learning_rate is not None:
    config['train'] = {'learning_rate': learning_rate}
  if config:
    (path / 'config.json').write_text(json.dumps(config))


def test_report_shows_mean_std_and_n_over_seeds(tmp_path):
  for seed, value in zip((0, 1, 2), (0.7, 0.8, 0.9)):
    _fake_run(tmp_path, f'digits/lstm/seed{seed}', 'lstm', value, seed=seed)
  _fake_run(tmp_path, 'digits/cnn/seed5', 'cnn', 0.95)  # no config.json: the name's seed
  _fake_run(tmp_path, 'digits/gru', 'gru', 0.5)  # no seed at all
  path = report.write_report(str(tmp_path), structure_lengths=())
  text = open(path).read()
  lines = {line.split('|')[1].strip(): line for line in text.splitlines()
           if line.startswith('| ') and '`digits/' in line}
  # the three seeds' directories, n, the mean ± std, the t interval 0.8 +- 4.3027 * 0.1 / sqrt 3;
  # results.json without the test split's size (written before it was recorded): no Wilson
  assert lines['lstm'] == ('| lstm | `digits/lstm/seed{0,1,2}` | 3 | 1,000 | 100 | 2.0 | '
                           '0.7000 ± 0.1000 | 0.8000 ± 0.1000 | [0.5516, 1.0484] | '
                           'test size not recorded |')
  assert ('| cnn | `digits/cnn/seed5` (5) | 1 | 1,000 | 100 | 2.0 | 0.8500 | 0.9500 | '
          '- (one seed) | test size not recorded |') in text
  assert '| gru | `digits/gru` | 1 |' in text
  assert list(lines) == ['cnn', 'lstm', 'gru']  # family order
  assert 'mean ± sample standard deviation over its n seeds' in text
  assert '| test 95% t interval | test Wilson 95% per run |' in text


def _row(text, model):
  return next(line for line in text.splitlines() if line.startswith(f'| {model} |'))


def test_accuracy_rows_give_each_runs_wilson_interval_on_its_test_size(tmp_path):
  # 269 of 269 correct (the digits test split): about [0.986, 1], not a certain 1.000
  for seed, value in ((0, 1.0), (1, 250 / 269)):
    _fake_run(tmp_path, f'digits/cnn/seed{seed}', 'cnn', value, seed=seed, examples=269)
  _fake_run(tmp_path, 'digits/lstm/seed0', 'lstm', 0.5, seed=0, examples=10)
  _fake_run(tmp_path, 'digits/lstm/seed1', 'lstm', 0.5, seed=1)  # written before sizes were
  _fake_run(tmp_path, 'adding/gru', 'gru', 0.01, metric='mse', examples=500)
  runs = load_results(str(tmp_path))
  text = report.results_table(report.group_runs(runs)['digits'], str(tmp_path))
  assert _row(text, 'cnn').endswith('| [0.986, 1.000]; [0.892, 0.954] |')
  assert _row(text, 'lstm').endswith('| [0.237, 0.763]; test size not recorded |')
  mse = report.results_table(report.group_runs(runs)['adding'], str(tmp_path))
  assert 'Wilson' not in mse and _row(mse, 'gru').endswith('| 0.0100 | - (one seed) |')


def test_the_learning_rate_is_chosen_on_validation_and_test_is_reported_there_only(tmp_path):
  # digits (higher accuracy is better): 0.01 has the best validation mean; 0.1 the best test,
  # which must not matter
  sweep = {0.001: ((0.80, 0.82), (0.81, 0.83)), 0.01: ((0.90, 0.92), (0.85, 0.87)),
           0.1: ((0.70, 0.72), (0.99, 0.99))}
  for rate, (validation, test) in sweep.items():
    for seed in (0, 1):
      _fake_run(tmp_path, f'digits/lstm/lr{rate:g}/seed{seed}', 'lstm', test[seed], seed=seed,
                validation=validation[seed])
  _fake_run(tmp_path, 'digits/cnn/seed0', 'cnn', 0.95, seed=0, learning_rate=0.002)
  # adding (lower mse is better), the rate read from config.json alone
  for seed, rate, validation in ((0, 0.01, 0.3), (1, 0.001, 0.1), (2, 0.001, 0.2)):
    _fake_run(tmp_path, f'adding/gru/seed{seed}', 'gru', 0.5, seed=seed, metric='mse',
              validation=validation, learning_rate=rate)
  root = str(tmp_path)
  runs = load_results(root)
  kept, choices = selection.choose(runs, root)
  by_base = {c.base: c for c in choices}
  assert by_base['digits/lstm'].chosen == 0.01 and by_base['digits/lstm'].higher_is_better
  assert by_base['digits/lstm'].swept[0.1] == (pytest.approx(0.71), 2)
  assert by_base['adding/gru'].chosen == 0.001 and not by_base['adding/gru'].higher_is_better
  assert not by_base['digits/cnn'].was_swept and by_base['digits/cnn'].chosen == 0.002
  assert sorted(r['workdir'] for r in kept) == [
      'adding/gru/seed1', 'adding/gru/seed2', 'digits/cnn/seed0', 'digits/lstm/lr0.01/seed0',
      'digits/lstm/lr0.01/seed1']
  text = open(report.write_report(root, structure_lengths=())).read()
  assert _row(text, 'lstm').startswith('| lstm | `digits/lstm/lr0.01/seed{0,1}` | 2 |')
  assert '0.8600 ± 0.0141' in _row(text, 'lstm')  # the test mean at 0.01, not 0.1's 0.99
  assert ('Learning rate of lstm (`digits/lstm`), chosen on validation, never on test: swept '
          '0.001 (0.8100, 2 seeds), 0.01 (0.9100, 2 seeds), 0.1 (0.7100, 2 seeds) (mean '
          'validation accuracy, higher is better); chosen 0.01') in text
  assert 'Learning rate, one each (not swept): cnn 0.002.' in text
  assert ('swept 0.001 (0.1500, 2 seeds), 0.01 (0.3000, 1 seed) (mean validation mse, lower is '
          'better); chosen 0.001') in text
  assert '`adding/gru/seed{1,2}`' in text and 'seed0' not in _row(text, 'gru')
  # the claims read the chosen runs only: the cnn-vs-rnn parameters claim quotes the lstm's
  # test mean at its chosen rate
  assert 'lstm 1,000 (test accuracy 0.860)' in text


def test_a_sweep_of_a_task_outside_the_registry_is_a_clear_error(tmp_path):
  for rate in (0.1, 0.01):
    _fake_run(tmp_path, f'mytask/lstm/lr{rate:g}', 'lstm', 0.5)
  with pytest.raises(ConfigError, match="task 'mytask' is not in the task registry"):
    selection.choose(load_results(str(tmp_path)), str(tmp_path))


def test_learning_rate_of_a_run_from_its_directory_or_its_config(tmp_path):
  _fake_run(tmp_path, 'digits/gru/seed0', 'gru', 0.5, seed=0, learning_rate=0.003)
  run = {'workdir': 'digits/gru/seed0'}
  assert selection.learning_rate(run, str(tmp_path)) == 0.003
  assert selection.learning_rate(run) is None  # no root: no config to read
  assert selection.learning_rate({'workdir': 'digits/gru/lr3e-4/seed0'}) == 0.0003
  assert selection.base({'workdir': 'digits/gru/lr3e-4/seed0'}) == 'digits/gru'


def _curve(root, workdir, losses, rate=10.0):
  with open(os.path.join(root, workdir, 'metrics.jsonl'), 'w') as f:
    for i, loss in enumerate(losses):
      f.write(json.dumps({'step': 10 * (i + 1), 'split': 'train', 'loss': loss,
                          'steps_per_s': rate}) + '\n')


def test_learning_curves_are_the_mean_over_seeds_with_a_min_max_band(tmp_path):
  for seed, losses in enumerate(([1.0, 0.5, 0.2], [3.0, 1.5, 0.4], [2.0, 1.0, 0.3])):
    _fake_run(tmp_path, f'digits/lstm/seed{seed}', 'lstm', 0.9, seed=seed)
    _curve(tmp_path, f'digits/lstm/seed{seed}', losses)
  _fake_run(tmp_path, 'digits/cnn', 'cnn', 0.9)
  _curve(tmp_path, 'digits/cnn', [1.0, 0.1, 0.05], rate=5.0)
  group = report.group_runs(load_results(str(tmp_path)))['digits']
  fig = report.plot_learning_curves(group, str(tmp_path), str(tmp_path / 'curves.png'))
  by_step, by_time = fig.axes
  assert [l.get_label() for l in by_step.lines] == ['cnn', 'lstm (3 seeds)']
  lstm = by_step.lines[1]
  np.testing.assert_allclose(lstm.get_ydata(), [2.0, 1.0, 0.3])  # the mean per step
  np.testing.assert_allclose(by_time.lines[0].get_xdata(), [2.0, 4.0, 6.0])  # 10 steps at 5/s
  assert len(by_step.collections) == 1  # one band: the lstm's; one seed has none
  band = by_step.collections[0].get_paths()[0].vertices
  assert band[:, 1].min() == pytest.approx(0.2) and band[:, 1].max() == pytest.approx(3.0)
  assert (tmp_path / 'curves.png').stat().st_size > 10_000


def test_report_links_the_metric_vs_params_figure_only_when_drawn(tmp_path):
  _fake_run(tmp_path, 'digits/cnn', 'cnn', 0.9)
  _fake_run(tmp_path, 'adding/gru', 'gru', 0.5, metric='mse')
  text = open(report.write_report(str(tmp_path), structure_lengths=())).read()
  assert 'metric_vs_params' not in text and not (tmp_path / 'metric_vs_params.png').exists()
  _fake_run(tmp_path, 'digits/lstm', 'lstm', 0.8)  # digits now has two models; adding one
  text = open(report.write_report(str(tmp_path), structure_lengths=())).read()
  assert '![metric vs parameters](metric_vs_params.png)' in text
  assert 'Not in the figure, having runs of one model only (see their tables): adding.' in text
  assert (tmp_path / 'metric_vs_params.png').exists()
  # the article is cited by its author and sections, not by a file outside the repository
  assert '禅与计算机程序设计艺术' in text and '../' not in text


def test_full_suite_entries_exist_and_build():
  """Every entry of the full suite names an existing experiment and builds its setup. The TFDS
  entries build too: a TFDS task opens its dataset when the run first asks for a split, not in
  build_setup, so no dataset is needed here (the runs themselves need them prepared)."""
  entries = compare.load_suite('full')
  names = [e[0] for e in entries]
  assert len(names) == len(set(names))
  bases = set(names)
  # every entry a sweep: three seeds at half, one and two times its experiment's rate
  for name, experiment, arg, overrides in entries:
    rate = load_config(experiment, arg).train.learning_rate
    assert overrides['sweep.seeds'] == 3, name
    assert overrides['sweep.learning_rates'] == pytest.approx((rate / 2, rate, 2 * rate)), name
  groups = {b.split('/')[0] for b in bases}
  assert {'digits', 'seq_digits', 'seq_digits_permuted', 'adding_T50', 'adding_T200',
          'adding_lengths',
          'copy_memory_T30', 'copy_memory_T100', 'forecasting', 'forecasting_lorenz',
          'forecasting_sunspots', 'song', 'char_lm',
          'mnist', 'permuted_mnist', 'imdb', 'tiny_shakespeare', 'moving_digits',
          'moving_digits_frame', 'moving_digits_rgb', 'moving_digits_rgb_frame', 'detection',
          'detection_one_class', 'super_resolution_x2', 'super_resolution_x3',
          'super_resolution_x4', 'edges', 'edges_noise02'} | {
              f'{task}_frac{f}' for task in ('digits', 'seq_digits')
              for f in ('0.125', '0.25', '0.5')} == groups
  assert {b.split('/')[1] for b in bases} == set(models.names())
  built = {}
  for name, experiment, arg, overrides in entries:
    assert os.path.exists(os.path.join(EXPERIMENTS, experiment)), experiment
    config = load_config(experiment, arg, overrides)
    if (experiment, arg) not in built:
      built[(experiment, arg)] = build_setup(config)
  assert built[('adding.py', 'model=lstm,length=200')].task.length == 200
  lengths = built[('adding.py', 'model=gru,length=75,min_length=25,test_lengths=10+50+150')].task
  assert (lengths.min_length, lengths.length, lengths.test_lengths) == (25, 75, (10, 50, 150))
  assert built[('copy_memory.py', 'model=tcn,length=100')].task.length == 100
  assert built[('tfds_images.py', 'model=lstm,dataset=mnist,reading=pixels,order=permuted')] \
      .task.order == 'permuted'
  assert load_config('adding.py', 'model=lstm,length=200', {}).train.steps == 3000
  assert built[('forecasting.py', 'model=gru,series=sunspots')].task.context == 12
  assert built[('song.py', 'model=tcn')].task.steps_per_quarter == 2
  # the data-size entries (2.3.2): every family on an eighth of the digits' training split
  eighth = {e[0].split('/')[1]: e for e in entries if e[0].startswith('digits_frac0.125/')}
  assert set(eighth) == {'cnn', 'tcn', 'rnn', 'lstm', 'gru'}
  assert build_setup(load_config(*eighth['gru'][1:])).task.train_subset == 0.125


@pytest.mark.parametrize('count', [1, 2, 7, 300])
def test_shards_cover_the_full_suite_each_entry_once(count):
  entries = compare.load_suite('full')
  shards = [compare.shard_entries(entries, i, count) for i in range(count)]
  names = [e[0] for shard in shards for e in shard]
  assert sorted(names) == sorted(e[0] for e in entries) and len(set(names)) == len(entries)
  assert max(map(len, shards)) - min(map(len, shards)) <= 1  # as even as they can be
  assert shards == [compare.shard_entries(entries, i, count) for i in range(count)]  # stable


@pytest.mark.parametrize('text', ['3/3', '-1/2', '1/0', '1', 'a/b'])
def test_a_bad_shard_is_a_clear_error(text):
  with pytest.raises(ConfigError, match=f'--shard={re.escape(text)} must be I/N with 0 <= I < N'):
    compare.parse_shard(text)


SEEDED_SUITE = '''
from comparenets.compare import with_seeds
def get_suite():
  return with_seeds([('digits/cnn', 'digits.py', 'model=cnn,quick', {}),
                     ('digits/lstm', 'digits.py', 'model=lstm,quick', {}),
                     ('digits/gru', 'digits.py', 'model=gru,quick', {})], (0, 1, 2))
'''


def test_a_report_over_shards_is_the_one_process_report(tmp_path, monkeypatch):
  """Three shards into one workdir, against one process into another, with a stand-in for
  training that writes a results.json from the run's config: the same runs, the same report."""
  suite = tmp_path / 'seeded.py'
  suite.write_text(SEEDED_SUITE)
  trained = []

  def fake_train(config, run_dir):
    trained.append(run_dir)
    path = tmp_path / run_dir
    path.mkdir(parents=True)
    value = 0.5 + 0.1 * config.seed + len(config.model.name) / 100
    results = {'model': config.model.name, 'task': {'name': config.task.name},
               'input_kind': 'sequence', 'steps': 100, 'params': {'total': 1000},
               'train_time_s': 1.0, 'target_metric': 'accuracy',
               'validation': {'accuracy': value - 0.05}, 'test': {'accuracy': value}}
    (path / 'results.json').write_text(json.dumps(results))
    (path / 'config.json').write_text(json.dumps({'seed': config.seed}))
    return results
  monkeypatch.setattr(compare, 'train_and_evaluate', fake_train)
  sharded, single = tmp_path / 'sharded', tmp_path / 'single'
  names = [n for i in range(3) for n in compare.run_suite(str(suite), str(sharded), (i, 3))]
  assert sorted(names) == sorted(compare.run_suite(str(suite), str(single)))
  assert len(names) == len(set(names)) == 9
  assert compare.run_suite(str(suite), str(sharded)) == []  # the report job trains nothing
  texts = [open(report.write_report(str(root), structure_lengths=())).read().replace(
      str(root), 'ROOT') for root in (sharded, single)]
  assert texts[0] == texts[1] and '`digits/lstm/seed{0,1,2}` | 3 |' in texts[0]


def test_report_sets_the_paper_rows_beside_the_published_table(tmp_path):
  """The paper suite's rows (named as it names them) get a section with the mean and t
  interval per family beside Bai et al.'s number, in the table's unit (accuracy in %)."""
  for seed, value in zip((0, 1, 2), (0.95, 0.96, 0.97)):
    _fake_run(tmp_path, f'seq_digits/lstm/lr0.002/seed{seed}', 'lstm', value, seed=seed,
              learning_rate=2e-3, task='digits')
    _fake_run(tmp_path, f'seq_digits/lstm/lr0.004/seed{seed}', 'lstm', value - 0.5, seed=seed,
              learning_rate=4e-3, validation=value - 0.6, task='digits')  # worse: not chosen
  _fake_run(tmp_path, 'adding_T600/gru/seed0', 'gru', 0.0123, seed=0, metric='mse')
  _fake_run(tmp_path, 'adding_T50/gru/seed0', 'gru', 0.5, seed=0, metric='mse')  # no such row
  text = open(report.write_report(str(tmp_path), structure_lengths=())).read()
  section = text.split('## Against the published table')[1].split('\n## ')[0]
  # 96 +- 4.3027 * 1 / sqrt(3) = [93.5, 98.5]
  assert '| seq_digits | lstm | 3 | 1,000 | 96 [93.5, 98.5] | 87.2 |' in section
  assert '| adding_T600 | gru | 1 | 1,000 | 0.0123 | 5.30e-05 |' in section
  assert 'adding_T50' not in section and '8x8 digits read pixel by pixel' in section
  assert '## Against the published table' not in open(report.write_report(
      str(tmp_path / 'seq_digits' / 'lstm'), structure_lengths=())).read()


def test_a_suite_argument_reaches_get_suite_and_a_suite_without_one_refuses_it():
  entries = compare.load_suite('paper:steps=20')
  assert len(entries) == 20 and {e[0].split('/')[0] for e in entries} == {
      'adding_T600', 'copy_memory_T1000', 'seq_digits', 'seq_digits_permuted', 'char_lm'}
  assert all(e[3]['train.steps'] == 20 and e[3]['sweep.seeds'] == 3 for e in entries)
  assert 'train.steps' not in compare.load_suite('paper')[0][3]
  with pytest.raises(ConfigError, match="suite 'quick' takes no argument"):
    compare.load_suite('quick:steps=20')


# A suite in a bucket (tests/fake_gcs.py stands in for gs://): the runner, the report, summary
# and load_results read and write it through epath, and say what they said of a local copy.

def _structure_row(model, length, params):
  return {'model': model, 'length': length, 'backbone_params': params, 'batch': 32,
          'flops_forward_per_example': 1e5 * length, 'flops_train_per_example': 3e5 * length,
          'train_step_temp_bytes': 1e4 * length, 'compile_s': 0.5, 'train_step_s': 0.01,
          'time_steps_per_s': 1e5 / params}


def _suite_of_fake_runs(root):
  """Runs whose report reads every kind of file below its root: config.json (seeds, a learning
  rate), metrics.jsonl (curves, convergence), samples.txt (the generation claim), and the
  cached structure.jsonl and matmul_peak.json."""
  for seed, losses in enumerate(([1.0, 0.5, 0.2], [3.0, 1.5, 0.4], [2.0, 1.0, 0.3])):
    _fake_run(root, f'digits/lstm/seed{seed}', 'lstm', 0.8 + seed / 100, seed=seed)
    _curve(root, f'digits/lstm/seed{seed}', losses)
  for rate, value in ((0.01, 0.9), (0.1, 0.7)):  # no config.json: seed and rate from the name
    _fake_run(root, f'digits/cnn/lr{rate:g}/seed0', 'cnn', value)
    _curve(root, f'digits/cnn/lr{rate:g}/seed0', [1.0, 0.1, 0.05], rate=5.0)
  for seed, rate, validation in ((0, 0.01, 0.3), (1, 0.001, 0.1), (2, 0.001, 0.2)):
    _fake_run(root, f'adding/gru/seed{seed}', 'gru', 0.5, seed=seed, metric='mse',
              validation=validation, learning_rate=rate)  # the rate in config.json only
  _fake_run(root, 'char_lm/rnn', 'rnn', 4.0, seed=7, metric='bpc', validation=4.1)
  results = json.loads((root / 'char_lm/rnn/results.json').read_text())
  results['io_shapes'] = {'input': [128], 'output': [128, 256]}
  (root / 'char_lm/rnn/results.json').write_text(json.dumps(results))
  (root / 'char_lm/rnn/samples.txt').write_text('=== sample 0\ndef f')
  rows = [_structure_row(m, t, p) for m, p in (('tcn', 900), ('lstm', 600), ('gru', 450))
          for t in (8, 16)]
  (root / 'structure.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  (root / 'matmul_peak.json').write_text(json.dumps({'gflops': 100.0, 'n': 1024,
                                                     'device': 'cpu'}))


def test_a_report_from_a_bucket_is_the_local_report(bucket, tmp_path, capsys, monkeypatch):
  local, remote = tmp_path / 'suite', 'gs://bucket/suite'
  _suite_of_fake_runs(local)
  upload(str(local), remote)
  (epath.Path(remote) / 'digits/cnn/lr0.01/seed0/checkpoints/10/x').write_text('')
  listed = []
  monkeypatch.setattr(FakeGCS, 'ls', lambda self, path, *a, **k: listed.append(path) or
                      MemoryFileSystem.ls(self, path, *a, **k))
  runs = load_results(remote)
  assert listed and not [p for p in listed if 'checkpoints' in p]  # a listing each: not walked
  assert runs == load_results(str(local)) and len(runs) == 9
  assert runs[0]['workdir'] == 'adding/gru/seed0' and runs[-1]['workdir'] == 'digits/lstm/seed2'
  assert summary.main(['summary', remote]) == 0
  assert capsys.readouterr().out == summary.table(load_results(str(local))) + '\n'
  texts, pngs = [], []
  for root in (str(local), remote):
    assert report.write_report(root) == f'{root}/REPORT.md'  # structure and peak: cached
    texts.append(api.read_report(root).replace(root, 'ROOT'))
    pngs.append({name: epath.Path(root, name).read_bytes() for name in (
        'metric_vs_params.png', 'learning_curves_digits.png', 'structure.png')})
  assert texts[0] == texts[1]
  assert pngs[0] == pngs[1] and all(len(png) > 10_000 for png in pngs[1].values())
  text = texts[1]
  assert '9 runs below `ROOT`' in text and '`digits/lstm/seed{0,1,2}` | 3 |' in text  # seeds
  assert 'swept 0.001 (0.1500, 2 seeds), 0.01 (0.3000, 1 seed)' in text  # config.json's rates
  assert 'Learning rate of cnn (`digits/cnn`)' in text and 'chosen 0.01' in text
  assert "generation: char_lm/rnn (samples.txt, one step's output 256)" in text
  assert '| rnn | `char_lm/rnn` (7) | 1 |' in text  # the seed in config.json alone
  assert 'Matmul peak: 100 GFLOP/s' in text and '| gru | 16 | 450 |' in text
  assert not (epath.Path(remote) / 'REPORT.md.tmp').exists()
  assert api.claims_table(api.audit_claims(remote)) == api.claims_table(
      api.audit_claims(str(local)))


def test_a_suite_sharded_into_a_bucket_reports_as_one_process_locally(bucket, tmp_path,
                                                                       monkeypatch):
  """`compare --shard=I/3` three times into one gs:// workdir, then the report from there: the
  report of the same runs trained by one process into a local directory."""
  suite = tmp_path / 'seeded.py'
  suite.write_text(SEEDED_SUITE)

  def fake_train(config, run_dir):
    value = 0.5 + 0.1 * config.seed + len(config.model.name) / 100
    results = {'model': config.model.name, 'task': {'name': config.task.name},
               'input_kind': 'sequence', 'steps': 100, 'params': {'total': 1000},
               'train_time_s': 1.0, 'target_metric': 'accuracy',
               'validation': {'accuracy': value - 0.05}, 'test': {'accuracy': value}}
    workdirs.join(run_dir).mkdir(parents=True, exist_ok=True)
    workdirs.write_text(workdirs.join(run_dir, 'config.json'), json.dumps({'seed': config.seed}))
    workdirs.write_text(workdirs.join(run_dir, 'results.json'), json.dumps(results))
    return results
  monkeypatch.setattr(compare, 'train_and_evaluate', fake_train)
  sharded, single = 'gs://bucket/suite', str(tmp_path / 'single')
  names = [n for i in range(3) for n in compare.run_suite(str(suite), sharded, (i, 3))]
  assert sorted(names) == sorted(compare.run_suite(str(suite), single))
  assert len(set(names)) == 9 and compare.run_suite(str(suite), sharded) == []
  texts = [open(report.write_report(single, structure_lengths=())).read().replace(single, 'R'),
           workdirs.join(report.write_report(sharded, structure_lengths=())).read_text()
           .replace(sharded, 'R')]
  assert texts[0] == texts[1] and '`digits/lstm/seed{0,1,2}` | 3 |' in texts[1]


def _fake_train_into_workdir(config, run_dir):
  """A stand-in for training: the run's results.json and config.json, written through the
  workdir helpers (a local directory or the stand-in bucket)."""
  value = 0.5 + 0.1 * config.seed + len(config.model.name) / 100
  metric = 'accuracy' if config.task.name == 'digits' else 'nrmse'
  results = {'model': config.model.name, 'task': {'name': config.task.name},
             'input_kind': 'sequence', 'steps': 100, 'params': {'total': 1000},
             'train_time_s': 1.0, 'target_metric': metric,
             'validation': {metric: value - 0.05}, 'test': {metric: value}}
  workdirs.join(run_dir).mkdir(parents=True, exist_ok=True)
  workdirs.write_text(workdirs.join(run_dir, 'config.json'), json.dumps({'seed': config.seed}))
  workdirs.write_text(workdirs.join(run_dir, 'results.json'), json.dumps(results))
  return results


@pytest.mark.parametrize('where', ['local', 'bucket'])
def test_the_last_shard_to_finish_writes_the_report(where, tmp_path, monkeypatch, request):
  """`compare --shard=I/2 --report_when_all_done` for shard 0, then shard 1 (the tiny suite,
  a stand-in trainer): no report after shard 0; after shard 1, a marker per shard and the report
  the plain command writes (its text and PNGs), on a local disk and on the stand-in bucket."""
  workdir = request.getfixturevalue('bucket') if where == 'bucket' else str(tmp_path / 'w')
  suite = tmp_path / 'tiny.py'
  suite.write_text(SUITE)
  monkeypatch.setattr(compare, 'train_and_evaluate', _fake_train_into_workdir)
  workdirs.join(workdir).mkdir(parents=True, exist_ok=True)
  # no structure rows: the report in a second (they and the peak are measured once and cached)
  workdirs.write_text(workdirs.join(workdir, 'structure.jsonl'), '')
  report_md = workdirs.join(workdir, 'REPORT.md')
  assert compare.run_suite(str(suite), workdir, (0, 2)) == ['digits/cnn', 'forecasting/gru']
  assert compare.finish_shard(str(suite), workdir, (0, 2)) is None
  marker = json.loads(compare.shard_marker(workdir, 0, 2).read_text())
  assert marker['runs'] == ['digits/cnn', 'forecasting/gru'] and marker['shards'] == 2
  assert not report_md.exists() and not compare.shard_marker(workdir, 1, 2).exists()
  assert compare.run_suite(str(suite), workdir, (1, 2)) == ['digits/lstm']
  assert compare.finish_shard(str(suite), workdir, (1, 2)) == f'{workdir}/REPORT.md'
  pngs = ('metric_vs_params.png', 'learning_curves_digits.png',
          'learning_curves_forecasting.png')
  by_shards = report_md.read_text(), [workdirs.join(workdir, p).read_bytes() for p in pngs]
  assert '3 runs below' in by_shards[0] and '`digits/lstm`' in by_shards[0]
  # the plain command afterwards: nothing to train, the very same report
  assert compare.run_suite(str(suite), workdir) == []
  report.write_report(workdir)
  assert (report_md.read_text(), [workdirs.join(workdir, p).read_bytes() for p in pngs]) == \
      by_shards
  # the report's search for runs does not enter .shards/; a marker is not a run
  assert [r['workdir'] for r in load_results(workdir)] == ['digits/cnn', 'digits/lstm',
                                                          'forecasting/gru']
  if where == 'local':  # no temporary file left beside what was written
    assert not [p for p in os.listdir(workdir) if '.tmp' in p]
    assert sorted(os.listdir(os.path.join(workdir, '.shards'))) == ['0-of-2.json', '1-of-2.json']


def test_a_shard_with_runs_left_writes_no_marker(tmp_path, monkeypatch):
  """A shard stopped before its last entry (SIGTERM between runs), or every shard marked but a
  run deleted since: no marker, no report."""
  suite = tmp_path / 'tiny.py'
  suite.write_text(SUITE)
  workdir = str(tmp_path / 'w')
  monkeypatch.setattr(compare, 'train_and_evaluate', _fake_train_into_workdir)
  assert compare.finish_shard(str(suite), workdir, (0, 2)) is None  # nothing ran yet
  assert not compare.shard_marker(workdir, 0, 2).exists()
  for i in (0, 1):
    compare.run_suite(str(suite), workdir, (i, 2))
  assert compare.finish_shard(str(suite), workdir, (0, 2)) is None
  os.remove(os.path.join(workdir, 'digits', 'cnn', 'results.json'))  # shard 0's run, gone
  assert compare.finish_shard(str(suite), workdir, (1, 2)) is None
  assert compare.shard_marker(workdir, 1, 2).exists()
  assert not os.path.exists(os.path.join(workdir, 'REPORT.md'))


def test_report_when_all_done_without_a_shard_is_one_error_line(tmp_path):
  proc = subprocess.run([sys.executable, '-m', 'comparenets.compare', '--suite=quick',
                         f'--workdir={tmp_path}/w', '--report_when_all_done'],
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and lines == [
      'comparenets: error: --report_when_all_done needs --shard=I/N (without --shard the '
      'command writes the report anyway)'], proc.stderr[-2000:]
  assert not os.path.exists(tmp_path / 'w')  # nothing ran


def test_writers_of_one_file_at_once_leave_a_whole_file(tmp_path):
  """Threads (as processes would) writing the same file at once: every read sees one writer's
  whole text, and none of their temporary files is left; `write_text_once` keeps the first."""
  path = workdirs.join(str(tmp_path), 'REPORT.md')
  texts = [str(i) * 100_000 for i in range(4)]
  errors, seen = [], set()

  def write(text):
    try:
      for _ in range(30):
        workdirs.write_text(path, text)
        seen.add(path.read_text())
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)
  threads = [threading.Thread(target=write, args=(t,)) for t in texts]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors and seen <= set(texts) and os.listdir(tmp_path) == ['REPORT.md']
  once = workdirs.join(str(tmp_path), 'peak.json')
  kept = [workdirs.write_text_once(once, t) for t in ('first', 'second')]
  assert kept == ['first', 'first'] and once.read_text() == 'first'
  assert sorted(os.listdir(tmp_path)) == ['REPORT.md', 'peak.json']
