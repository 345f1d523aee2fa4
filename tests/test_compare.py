"""The suite runner and the report: runs, skips finished runs, writes tables and plots."""

import os

import pytest

from comparenets import compare
from comparenets.analysis import report
from comparenets.errors import ConfigError

SUITE = '''
def get_suite():
  return [('digits/cnn', 'digits.py', 'model=cnn,quick', {'train.steps': 6, 'train.log_every': 2}),
          ('digits/lstm', 'digits.py', 'model=lstm,quick', {'train.steps': 6, 'train.log_every': 2}),
          ('forecasting/gru', 'forecasting.py', 'model=gru,quick', {'train.steps': 6, 'train.log_every': 2})]
'''


def test_suite_runs_skips_finished_runs_and_reports(tmp_path):
  suite = tmp_path / 'tiny.py'
  suite.write_text(SUITE)
  workdir = tmp_path / 'runs'
  assert compare.run_suite(str(suite), str(workdir)) == ['digits/cnn', 'digits/lstm',
                                                          'forecasting/gru']
  assert compare.run_suite(str(suite), str(workdir)) == []  # all finished: nothing retrained
  path = report.write_report(str(workdir), structure_lengths=(8,))
  text = open(path).read()
  assert '### digits' in text and '### forecasting' in text
  assert '`digits/lstm`' in text and 'Baseline linear_ar' in text
  assert '| lstm | 8 |' in text  # structure row
  assert '| char_lm | - | sequence | sequence | sequence | sequence |' in text
  claims = text.split('## Claims audit')[1].split('## Which family')[0]
  rows = [l for l in claims.splitlines() if l.startswith('| 2.')]
  assert len(rows) == 7
  assert '| 3.1 | A CNN takes input of one fixed size' in claims and '**depends**' in claims
  assert "parameter count grows exponentially" in rows[0]
  assert '**not measured**' in rows[0]  # one length: growth needs two (tests/test_claims.py)
  assert 'lstm: T=8: 66,560' in rows[0]  # the structure numbers behind it
  assert 'only an update gate' in rows[1] and '**refuted**' in rows[1]
  assert 'reset, update gates and a candidate' in rows[1]
  assert 'sees only the previous time step' in rows[3] and '**not measured**' in rows[3]
  assert 'digits: steps to 90 % of the loss drop' in rows[4]
  assert 'cnn 53,002' in rows[6]
  for png in ('metric_vs_params.png', 'learning_curves_digits.png',
              'learning_curves_forecasting.png', 'structure.png'):
    assert os.path.getsize(workdir / png) > 10_000, png


def test_io_table_follows_the_registries():
  table = report.io_table()
  rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
          for line in table.splitlines()[2:]}
  assert rows['digits'] == ['image', 'rows', 'rows', 'rows', 'rows']
  assert rows['adding'] == ['-', 'sequence', 'sequence', 'sequence', 'sequence']


def test_report_without_runs_is_a_clear_error(tmp_path):
  with pytest.raises(ConfigError, match='no finished runs'):
    report.write_report(str(tmp_path))


def test_quick_suite_covers_every_family_on_every_embedded_task():
  entries = compare.load_suite('quick')
  names = [e[0] for e in entries]
  assert len(names) == len(set(names))
  assert {n.split('/')[1] for n in names} == {'cnn', 'tcn', 'rnn', 'lstm', 'gru'}
  for _, experiment, arg, overrides in entries:
    compare.run_config(experiment, arg, overrides)  # every entry builds a config
