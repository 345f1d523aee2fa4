"""The suite runner and the report: runs, skips finished runs, writes tables and plots; seeds;
the full suite's entries; the same suite run twice gives the same results."""

import json
import os
import re

import pytest

from comparenets import compare
from comparenets import models
from comparenets.analysis import report
from comparenets.errors import ConfigError
from comparenets.experiment import EXPERIMENTS, load_config
from comparenets.summary import load_results
from comparenets.train import build_setup

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
  assert len(rows) == 8
  assert '| 3.1 | A CNN takes input of one fixed size' in claims and '**depends**' in claims
  assert "parameter count grows exponentially" in rows[0]
  assert '**not measured**' in rows[0]  # one length: growth needs two (tests/test_claims.py)
  assert 'lstm: T=8: 66,560' in rows[0]  # the structure numbers behind it
  assert 'only an update gate' in rows[1] and '**refuted**' in rows[1]
  assert 'reset, update gates and a candidate' in rows[1]
  assert 'sees only the previous time step' in rows[3] and '**not measured**' in rows[3]
  assert 'digits: steps to 90 % of the loss drop' in rows[4]
  assert 'cnn 53,002' in rows[6]
  assert 'Use of the hardware at the longest T=8' in rows[5]
  assert re.search(r'tcn \d+\.\d%, rnn \d+\.\d%, lstm \d+\.\d%, gru \d+\.\d%', rows[5])
  # 2.1: both digits runs restored from their checkpoints and evaluated on moved images
  assert rows[7].startswith('| 2.1 | A CNN is invariant to the size') and 'Left out' not in rows[7]
  assert re.search(r'cnn [01]\.\d{3}, shifted 1 px [01]\.\d{3} \(drop [-+]\d\.\d{3}\), '
                   r'shrunk to 6x6', rows[7]) and 'Runs: cnn: digits/cnn; lstm: digits/lstm' \
      in rows[7]
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


def test_quick_suite_covers_every_family_on_every_embedded_task():
  entries = compare.load_suite('quick')
  names = [e[0] for e in entries]
  assert len(names) == len(set(names))
  assert {n.split('/')[1] for n in names} == {'cnn', 'tcn', 'rnn', 'lstm', 'gru', 'cnn3d',
                                              'cnn_lstm'}
  experiments = {e[1] for e in entries}
  assert experiments == {f for f in os.listdir(os.path.join(ROOT, 'experiments'))
                         if f.endswith('.py')} - {'char_lm.py', 'sentiment.py', 'tfds_images.py',
                                                  'song.py'}
  for _, experiment, arg, overrides in entries:
    load_config(experiment, arg, overrides)  # every entry builds a config


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
  assert len(tables[0]) == 4 and tables[0] == tables[1]
  assert metrics[0] == metrics[1]  # every digit, not only the table's four


def test_with_seeds_and_top_level_overrides():
  entries = compare.with_seeds([('adding_T50/gru', 'adding.py', 'model=gru,length=50',
                                 {'train.steps': 5})], (0, 3))
  assert [e[0] for e in entries] == ['adding_T50/gru/seed0', 'adding_T50/gru/seed3']
  config = load_config(*entries[1][1:])
  assert config.seed == 3 and config.train.steps == 5 and config.task.length == 50
  with pytest.raises(ConfigError, match='no top-level field'):
    load_config('adding.py', 'model=gru', {'train': 5})


def _fake_run(root, workdir, model, test, seed=None, metric='accuracy'):
  path = root / workdir
  path.mkdir(parents=True)
  result = {'model': model, 'task': {'name': workdir.split('/')[0]}, 'input_kind': 'sequence',
            'steps': 100, 'params': {'total': 1000}, 'train_time_s': 2.0,
            'target_metric': metric, 'validation': {metric: test - 0.1}, 'test': {metric: test}}
  (path / 'results.json').write_text(json.dumps(result))
  if seed is not None:
    (path / 'config.json').write_text(json.dumps({'seed': seed}))


def test_report_shows_mean_std_and_n_over_seeds(tmp_path):
  for seed, value in zip((0, 1, 2), (0.7, 0.8, 0.9)):
    _fake_run(tmp_path, f'digits/lstm/seed{seed}', 'lstm', value, seed=seed)
  _fake_run(tmp_path, 'digits/cnn/seed5', 'cnn', 0.95)  # no config.json: the name's seed
  _fake_run(tmp_path, 'digits/gru', 'gru', 0.5)  # no seed at all
  path = report.write_report(str(tmp_path), structure_lengths=())
  text = open(path).read()
  lines = {line.split('|')[1].strip(): line for line in text.splitlines()
           if line.startswith('| ') and '`digits/' in line}
  assert lines['lstm'] == ('| lstm | `digits/lstm/seed0` (0), `digits/lstm/seed1` (1), '
                           '`digits/lstm/seed2` (2) | 3 | 1,000 | 100 | 2.0 | 0.7000 ± 0.1000 | '
                           '0.8000 ± 0.1000 |')
  assert '| cnn | `digits/cnn/seed5` (5) | 1 | 1,000 | 100 | 2.0 | 0.8500 | 0.9500 |' in text
  assert '| gru | `digits/gru` | 1 |' in text
  assert list(lines) == ['cnn', 'lstm', 'gru']  # family order
  assert 'mean ± sample standard deviation over its n seeds' in text


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
  bases = {n.rsplit('/', 1)[0] for n in names}
  assert all(names.count(f'{b}/seed{s}') == 1 for b in bases for s in (0, 1, 2))
  assert len(entries) == 3 * len(bases)
  groups = {b.split('/')[0] for b in bases}
  assert {'digits', 'seq_digits', 'seq_digits_permuted', 'adding_T50', 'adding_T200',
          'copy_memory_T30', 'copy_memory_T100', 'forecasting', 'forecasting_lorenz',
          'forecasting_sunspots', 'song', 'char_lm',
          'mnist', 'permuted_mnist', 'imdb', 'tiny_shakespeare', 'moving_digits',
          'moving_digits_frame', 'moving_digits_rgb', 'moving_digits_rgb_frame', 'detection',
          'detection_one_class', 'super_resolution_x2', 'super_resolution_x3',
          'super_resolution_x4', 'edges', 'edges_noise02'} == groups
  assert {b.split('/')[1] for b in bases} == set(models.names())
  built = {}
  for name, experiment, arg, overrides in entries:
    assert os.path.exists(os.path.join(EXPERIMENTS, experiment)), experiment
    config = load_config(experiment, arg, overrides)
    assert config.seed == int(name.rsplit('seed', 1)[1])
    if (experiment, arg) not in built:
      built[(experiment, arg)] = build_setup(config)
  assert built[('adding.py', 'model=lstm,length=200')].task.length == 200
  assert built[('copy_memory.py', 'model=tcn,length=100')].task.length == 100
  assert built[('tfds_images.py', 'model=lstm,dataset=mnist,reading=pixels,order=permuted')] \
      .task.order == 'permuted'
  assert load_config('adding.py', 'model=lstm,length=200', {}).train.steps == 3000
  assert built[('forecasting.py', 'model=gru,series=sunspots')].task.context == 12
  assert built[('song.py', 'model=tcn')].task.steps_per_quarter == 2
