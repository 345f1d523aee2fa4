"""The public API at the package top: cheap to import, complete, documented."""

import inspect
import json
import os
import subprocess
import sys

import pytest

import comparenets
from comparenets.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ('jax', 'jaxlib', 'flax', 'optax', 'orbax', 'tensorflow', 'tensorflow_datasets',
         'matplotlib', 'tensorboardX', 'sklearn', 'absl.flags', 'numpy', 'ml_collections')


def _python(code, **env):
  return subprocess.run([sys.executable, '-W', 'always', '-c', code], capture_output=True,
                        text=True, cwd=ROOT, env={**os.environ, **env}, timeout=120, check=False)


def test_import_is_cheap_and_silent():
  out = _python('import sys, json, comparenets; '
                f'print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))')
  assert out.returncode == 0, out.stderr
  assert json.loads(out.stdout) == []
  assert out.stderr == ''


def test_the_train_loop_and_plots_never_import_tensorflow():
  out = _python('import sys, comparenets as cn; cn.train_and_evaluate; cn.plots; cn.write_report; '
                'cn.models.build("cnn"); cn.tasks.build("digits"); '
                'print("tensorflow" in sys.modules, "matplotlib" in sys.modules)')
  assert out.returncode == 0, out.stderr
  assert out.stdout.split() == ['False', 'False']  # matplotlib too waits for the first plot


def test_every_public_name_resolves_and_is_documented():
  from comparenets import train  # pylint: disable=g-import-not-at-top
  from comparenets.analysis import structure  # pylint: disable=g-import-not-at-top
  for name in comparenets.__all__:
    value = getattr(comparenets, name)
    if name == '__version__':
      continue
    assert inspect.getdoc(value), f'comparenets.{name} has no docstring'
    if inspect.isfunction(value):
      hints = inspect.signature(value)
      assert hints.return_annotation is not inspect.Signature.empty, name
  assert comparenets.train_and_evaluate is train.train_and_evaluate
  assert comparenets.analyze_structure is structure.analyze
  assert comparenets.models.build('lstm', hidden=8).hidden == 8
  assert comparenets.tasks.build('digits').name == 'digits'
  assert set(comparenets.__all__) <= set(dir(comparenets))
  with pytest.raises(AttributeError):
    comparenets.no_such_thing  # pylint: disable=pointless-statement


def test_api_modules_import_together_with_the_command_lines():
  """A notebook may import the suite runner next to comparenets.main (both had --workdir), and
  the analysis modules next to its own flags (absl flags are process-wide)."""
  out = _python('import comparenets as cn, comparenets.main, comparenets.compare; cn.run_suite; '
                'cn.analyze_structure; import comparenets.analysis.bench; '
                'from absl import flags; flags.DEFINE_integer("batch", 8, ""); '
                'flags.DEFINE_list("models", [], ""); flags.DEFINE_list("lengths", [], ""); '
                'print("ok")')
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == 'ok'


def test_load_config_and_parameter_table():
  config = comparenets.load_config('digits', 'model=lstm,quick', {'train.steps': 3})
  assert config.model.name == 'lstm' and config.train.steps == 3
  assert comparenets.load_config('experiments/digits.py', 'model=cnn').model.name == 'cnn'
  table = comparenets.parameter_table(config)
  from comparenets import train  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  setup = train.build_setup(config)
  state = train.create_state(setup, jax.random.PRNGKey(0), setup.task.splits()['train'])
  total = train.param_counts(state.params)['total']
  assert f'Total Parameters: {total:,}' in table
  assert 'backbone' in table and 'head' in table
  with pytest.raises(ConfigError, match='no experiment file'):
    comparenets.load_config('no_such_experiment')
  with pytest.raises(ConfigError, match='names no field'):
    comparenets.load_config('digits', 'model=cnn', {'steps': 3})


def test_results_and_claims_of_a_suite_workdir(tmp_path):
  with pytest.raises(ConfigError, match='no finished runs'):
    comparenets.audit_claims(str(tmp_path))
  with pytest.raises(ConfigError, match='no REPORT.md'):
    comparenets.read_report(str(tmp_path))
  run = tmp_path / 'digits' / 'cnn'
  run.mkdir(parents=True)
  result = {'model': 'cnn', 'task': {'name': 'digits'}, 'input_kind': 'image', 'steps': 10,
            'params': {'total': 1234}, 'train_time_s': 1.0, 'target_metric': 'accuracy',
            'validation': {'accuracy': 0.5}, 'test': {'accuracy': 0.75}}
  (run / 'results.json').write_text(json.dumps(result))
  assert [r['workdir'] for r in comparenets.load_results(str(tmp_path))] == ['digits/cnn']
  assert '| digits/cnn | cnn | digits | image | 1,234 | 10 | 1.0 | accuracy | 0.5 | 0.75 |' in \
      comparenets.results_table(str(tmp_path))
  verdicts = comparenets.audit_claims(str(tmp_path))
  from comparenets.analysis import claims  # pylint: disable=g-import-not-at-top
  assert len(verdicts) == len(claims.CHECKS)
  by_claim = {v.claim: v for v in verdicts}
  exponential = next(v for c, v in by_claim.items() if 'exponentially' in c)
  assert exponential.verdict == 'not measured'  # no structure rows in this workdir
  table = comparenets.claims_table(verdicts)
  assert table.count('\n| 2.') == 11  # 2.1, 2.2 x3, 2.3.1 x2, 2.3.2 x2, 2.3.3 x3


def test_audit_claims_compares_achieved_flops_with_a_given_peak(tmp_path):
  run = tmp_path / 'digits' / 'cnn'
  run.mkdir(parents=True)
  (run / 'results.json').write_text(json.dumps({
      'model': 'cnn', 'task': {'name': 'digits'}, 'input_kind': 'image', 'steps': 10,
      'params': {'total': 1234}, 'train_time_s': 1.0, 'target_metric': 'accuracy',
      'validation': {'accuracy': 0.5}, 'test': {'accuracy': 0.75}}))
  row = {'features': 1, 'batch': 32, 'params': 1, 'backbone_params': 1,
         'flops_forward_per_example': 1.0, 'flops_train_per_example': 3.0,
         'receptive_field': None, 'train_step_temp_bytes': 1, 'compile_s': 0.1,
         'train_step_s': 0.01, 'examples_per_s': 3200.0}
  rows = [dict(row, model='tcn', length=64, time_steps_per_s=2e5, achieved_flops_per_s=25e9),
          dict(row, model='lstm', length=64, time_steps_per_s=1e5, achieved_flops_per_s=10e9)]
  (tmp_path / 'structure.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  verdicts = comparenets.audit_claims(str(tmp_path),
                                      peak={'gflops': 100.0, 'n': 1024, 'device': 'cpu'})
  speed = next(v for v in verdicts if v.section == '2.3.2')
  assert 'peak of 100 GFLOP/s' in speed.evidence
  assert 'tcn 25.0%' in speed.evidence and 'lstm 10.0%' in speed.evidence
