"""The claims of an article comparing CNNs and RNNs, each turned into a measured check.

The article (`ARTICLE`) is a Chinese blog post by 禅与计算机程序设计艺术 that compares the two
families by model structure (its section 2), input and output (section 3) and uses (section
4). Each `Verdict` names the article's section of its claim, restates the claim in our own
words, and says 'supported', 'refuted', 'depends', 'not distinguishable' (a comparison whose
difference is within the seed spread, or with too few seeds to tell) or 'not measured' (the
suite lacks what the check needs), with the numbers behind it.

A claim that one family beats another rests on a difference between runs, and runs differ by
seed: every such difference is tested against the seed spread (`Difference`: Welch's t-test at
`Rules.significance`, `Rules.min_seeds` seeds a side), and one within the noise never gives a
one-sided verdict. The audit reads each (task setting, model) at its chosen learning rate
(`comparenets.analysis.selection`).

Every check is three steps, kept apart so the rule that turns numbers into a verdict can be read
(and tested) on its own:

  gather    `Evidence` (the suite's runs, structure rows, workdir, matmul peak) -> findings:
            the numbers the claim turns on, read from results.json / metrics.jsonl /
            structure.jsonl, measured on checkpoints, or read from the model code;
  decide    findings + `RULES` -> the verdict, a pure function;
  describe  findings + verdict + `RULES` -> the evidence text.

The thresholds the decisions turn on are all in `Rules`, one line each on why.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Sequence

import jax
import numpy as np

from comparenets import models
from comparenets import tasks
from comparenets import workdir as workdirs
from comparenets.analysis import invariance
from comparenets.analysis import selection
from comparenets.analysis import structure as structure_lib
from comparenets.metric_writers import read_metrics, training_seconds
from comparenets.metrics import intervals
from comparenets.models import recurrent
from comparenets.tasks import forecasting

ARTICLE = ('a Chinese blog article comparing CNNs and RNNs by model structure (section 2), '
           'input and output (3) and uses (4), by 禅与计算机程序设计艺术')

SUPPORTED, REFUTED, DEPENDS, NOT_MEASURED = 'supported', 'refuted', 'depends', 'not measured'
# where the runs a quick report lacks are: the verdict reads only what its suite ran
FULL_SUITE = 'the full suite, experiments/suites/full.py, runs them'
NOT_DISTINGUISHABLE = 'not distinguishable'


@dataclasses.dataclass(frozen=True)
class Rules:
  """Every threshold and setting a verdict turns on."""
  # every comparison between models (2.3.1 convergence, 2.1 invariance): a difference counts
  # only when it is larger than the seed spread, so that one lucky seed is no verdict
  significance: float = 0.05  # Welch's t-test, two-sided: the usual 1-in-20 false alarm
  min_seeds: int = 2  # one seed has no spread: fewer a side is not distinguishable (>= 2 always)
  # 2.2, memory beyond the previous step: solving a task well past guessing needs it
  adding_predict_one_mse: float = 0.167  # always predicting 1 (the sum's mean): MSE 1/6
  adding_solved_mse: float = 0.05  # far under 0.167: the two marked numbers were remembered
  copy_guess_recall: float = 0.125  # guessing one of the 8 digits
  copy_solved_recall: float = 0.5  # four times guessing: the digits were remembered
  # 2.3.1, convergence
  loss_drop_done: float = 0.9  # converged: 90 % of the way from the first logged loss to the last
  # 2.1, invariance to moving and resizing the digit
  shift_pixels: int = 1  # an eighth of the 8x8 digits canvas, up/down/left/right
  rescaled_size: int = 6  # 8x8 shrunk to 6x6: every stroke still there
  invariant_max_drop: float = 0.05  # an invariant model keeps its accuracy, within this drop
  # 3.1, a fixed input size: parameters built for one size, applied to others (shapes only)
  fixed_size_built_for: int = 8  # the digits' side
  fixed_size_tried: tuple[int, ...] = (12, 16)  # larger sides than built for
  fixed_size_rnn_tried: tuple[int, ...] = (100,)  # a much longer sequence, for the rnn alone
  # 3.1 and 4.1, what "read" / "works" means
  image_classes: int = 10  # digits, MNIST, CIFAR-10: guessing scores 1/10
  learned_fraction: float = 0.5  # read, not guessed: at least halfway from chance to perfect
  min_map50: float = 0.5  # a detector works when half of a perfect mean AP at IoU 0.5 is there
  min_psnr_gain_db: float = 0.0  # super-resolution works when it beats bicubic at all
  edge_baseline: str = 'sobel'  # edges work when above the classic non-learned detector's ODS F
  # 4.2, RNNs predict and classify sequences: the bar where a task records no baselines of its
  # own (adding and copy memory above, 1 / classes for classification)
  sentiment_classes: int = 2  # positive or negative: guessing scores 1/2
  char_uniform_bpc: float = 8.0  # a uniform guess over the 256 byte values: log2(256) bits
  # 2.3.3, second half: time to a good result. The target is halfway from the worst validation
  # value the task's runs logged to the best any of them reached: one target for every model
  # of a task, that any model that learns reaches, on the task's own metric and direction
  time_target_fraction: float = 0.5
  # 2.3.2, second half: CNNs suit large datasets. A slope against the training-set size needs
  # sizes enough that one odd size does not make it: four, 1/8 to all of it, three doublings
  min_fractions: int = 4


RULES = Rules()


@dataclasses.dataclass
class Verdict:
  section: str
  claim: str
  verdict: str
  evidence: str


@dataclasses.dataclass(frozen=True)
class Evidence:
  """What every check reads: a suite's finished runs (`load_results`; `audit` keeps each
  (task setting, model) at its chosen learning rate), its structure rows (``structure.jsonl``),
  its workdir (for metrics.jsonl and checkpoints) and, where measured, a matmul peak
  (`report.measure_peak`'s record: 'gflops', 'n', 'device')."""
  runs: Sequence[dict[str, Any]] = ()
  structure: Sequence[dict[str, Any]] = ()
  root: str = ''
  peak: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Check:
  """One claim: its section and restatement, and its three steps (see the module docstring).
  Calling it on `Evidence` gives the `Verdict`."""
  section: str
  claim: str
  gather: Callable[[Evidence, Rules], Any]
  decide: Callable[[Any, Rules], str]
  describe: Callable[[Any, str, Rules], str]
  # whether it reads runs trained on part of their training split (`train_subset`); the
  # other checks see each task setting on all of its data only, so that 1/8 of digits is not
  # counted as one more task
  reads_parts: bool = False

  def __call__(self, evidence: Evidence, rules: Rules = RULES) -> Verdict:
    if not self.reads_parts:
      evidence = dataclasses.replace(
          evidence, runs=[r for r in evidence.runs if train_subset(r) >= 1.0])
    findings = self.gather(evidence, rules)
    verdict = self.decide(findings, rules)
    return Verdict(self.section, self.claim, verdict, self.describe(findings, verdict, rules))


# -- a difference against the seed spread ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Difference:
  """Two models' per-seed values (steps to converge, accuracy drops), and whether their means
  differ by more than the seed spread: Welch's t-test (`intervals.welch`) at
  `Rules.significance`, with at least `Rules.min_seeds` values a side. Infinite values (a run
  that never converged) have no t-test: one side all infinite and the other all finite is a
  difference beyond any spread; any other mix is not distinguishable."""
  a: str
  b: str
  values_a: tuple[float, ...]
  values_b: tuple[float, ...]
  test: intervals.Welch | None  # None: too few seeds, or infinite values
  distinguishable: bool

  @property
  def mean_a(self) -> float:
    return float(np.mean(self.values_a))

  @property
  def mean_b(self) -> float:
    return float(np.mean(self.values_b))

  @property
  def a_smaller(self) -> bool:
    """Whether a's mean is below b's by more than the spread."""
    return self.distinguishable and self.mean_a < self.mean_b

  @property
  def b_smaller(self) -> bool:
    return self.distinguishable and self.mean_b < self.mean_a


def difference(a: str, values_a, b: str, values_b, rules: Rules = RULES) -> Difference:
  va, vb = tuple(map(float, values_a)), tuple(map(float, values_b))
  if min(len(va), len(vb)) < max(2, rules.min_seeds):  # Welch's test needs two a side
    return Difference(a, b, va, vb, None, False)
  finite_a, finite_b = np.isfinite(va), np.isfinite(vb)
  if finite_a.all() and finite_b.all():
    test = intervals.welch(va, vb)
    return Difference(a, b, va, vb, test, test.p < rules.significance)
  apart = (not finite_a.any() and finite_b.all()) or (finite_a.all() and not finite_b.any())
  return Difference(a, b, va, vb, None, bool(apart))


def spread_text(d: Difference, rules: Rules = RULES) -> str:
  """Why ``d`` is or is not distinguishable, in a few words."""
  least = max(2, rules.min_seeds)
  few = [(m, len(v)) for m, v in ((d.a, d.values_a), (d.b, d.values_b)) if len(v) < least]
  if [n for _, n in few] == [1, 1]:
    return 'not distinguishable (one seed each)'
  if few:
    return 'not distinguishable (' + ', '.join(
        f'{"one seed" if n == 1 else f"{n} seeds"} of {m}' for m, n in few) + ')'
  if d.test is None:
    if d.distinguishable:
      return 'beyond any spread (every seed of one never converged, every seed of the other did)'
    return 'not distinguishable (some seeds never converged)'
  word = 'distinguishable' if d.distinguishable else 'not distinguishable'
  return (f"{word} (Welch's t-test over {len(d.values_a)} and {len(d.values_b)} seeds: "
          f'p = {d.test.p:.2g}, {"under" if d.distinguishable else "not under"} '
          f'{rules.significance:g})')


# The families, from the model registry. The CNN-encoder + recurrent video models
# ('conv+recurrent') are both at once, and so in neither.
CONV, RECURRENT = tuple(models.ordered('conv')), tuple(models.ordered('recurrent'))
# The sequence backbones (display order): the ones whose structure rows vary with T.
SEQUENCE = tuple(structure_lib.sequence_models())


def _group(run: dict[str, Any]) -> str:
  return run['workdir'].split('/')[0]


def _groups(runs, prefix: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
  """{task setting: {model: its runs (one per seed)}} of the settings named ``prefix`` or
  ``prefix_...`` (e.g. 'adding' matches 'adding_T50' and 'adding_T200', not 'adding2')."""
  out = {}
  for r in runs:
    group = _group(r)
    if group == prefix or group.startswith(prefix + '_'):
      out.setdefault(group, {}).setdefault(r['model'], []).append(r)
  return dict(sorted(out.items()))


def _groups_all(runs) -> dict[str, dict[str, list[dict[str, Any]]]]:
  out = {}
  for r in runs:
    out.setdefault(_group(r), {}).setdefault(r['model'], []).append(r)
  return dict(sorted(out.items()))


def _mean(members: list[dict[str, Any]], metric: str) -> float:
  return float(np.mean([r['test'][metric] for r in members]))


def _runs_text(members: list[dict[str, Any]]) -> str:
  return ', '.join(r['workdir'] for r in members)


# -- 2.3.3: parameters vs the number of time steps ------------------------------------------------

def _params_by_length(ev: Evidence, rules: Rules) -> dict[str, dict[int, int]]:
  """{recurrent model: {sequence length: backbone parameters}} of the structure rows."""
  by_model = {}
  for r in ev.structure:
    if r['model'] in RECURRENT:
      by_model.setdefault(r['model'], {})[r['length']] = r['backbone_params']
  return by_model


def _growing(by_model: dict[str, dict[int, int]]) -> list[str]:
  return sorted(m for m, v in by_model.items() if len(set(v.values())) > 1)


def decide_params_growth(by_model: dict[str, dict[int, int]], rules: Rules = RULES) -> str:
  """Growth needs two lengths or more of a model; then any change supports it."""
  if all(len(v) < 2 for v in by_model.values()):  # none, or one length: no growth either way
    return NOT_MEASURED
  return SUPPORTED if _growing(by_model) else REFUTED


def _describe_params_growth(by_model, verdict: str, rules: Rules) -> str:
  if not by_model:
    return 'no structure rows'
  numbers = '; '.join(f'{m}: ' + ', '.join(f'T={t}: {p:,}' for t, p in sorted(v.items()))
                      for m, v in sorted(by_model.items()))
  if verdict == NOT_MEASURED:
    return (f'backbone parameters at one sequence length only: {numbers}; growth needs '
            'structure rows at two lengths or more')
  if verdict == SUPPORTED:
    return (f'backbone parameters by sequence length: {numbers}. They change with T for '
            f'{", ".join(_growing(by_model))}.')
  return (f'backbone parameters by sequence length: {numbers}. The weights are shared across '
          'time steps; only compute and activation memory grow, linearly in T.')


params_grow_with_steps = Check(
    '2.3.3', "An RNN's parameter count grows exponentially with the number of time steps.",
    _params_by_length, decide_params_growth, _describe_params_growth)


# -- 2.2: the gates of the GRU and the LSTM (from the model code) ----------------------------------

@dataclasses.dataclass(frozen=True)
class GruVsLstm:
  gates: Sequence[str]  # the GRU's gates and candidate, `recurrent.gate_names`
  blocks: tuple[int, int]  # blocks of weights: the GRU's, the LSTM's
  rows: list[tuple[int, dict[str, Any], dict[str, Any]]]  # (T, GRU row, LSTM row)


def _gru_vs_lstm(ev: Evidence, rules: Rules) -> GruVsLstm:
  rows = {(r['model'], r['length']): r for r in ev.structure}
  lengths = sorted({t for (m, t) in rows if m == 'gru' and ('lstm', t) in rows})
  return GruVsLstm(recurrent.gate_names('gru'),
                   (recurrent.CELLS['gru'].gates, recurrent.CELLS['lstm'].gates),
                   [(t, rows[('gru', t)], rows[('lstm', t)]) for t in lengths])


def decide_gru_gates(found: GruVsLstm, rules: Rules = RULES) -> str:
  """Refuted by any gate besides the update gate (the candidate is no gate)."""
  return REFUTED if [g for g in found.gates if g not in ('update', 'candidate')] else SUPPORTED


def _describe_gru_gates(found: GruVsLstm, verdict: str, rules: Rules) -> str:
  numbers = [f"T={t}: params {g['backbone_params']:,} vs {l['backbone_params']:,}, "
             f"train FLOPs/example {g['flops_train_per_example']:.3g} vs "
             f"{l['flops_train_per_example']:.3g}, train step {g['train_step_s'] * 1e3:.1f} "
             f"vs {l['train_step_s'] * 1e3:.1f} ms" for t, g, l in found.rows]
  gates = found.gates
  count = len(gates) - 1
  return (f'the GRU computes {", ".join(gates[:-1])} gates and a {gates[-1]} '
          f'({"two" if count == 2 else count} gates, not one); it does compute less than an '
          f'LSTM ({found.blocks[0]} blocks of weights against {found.blocks[1]}), GRU vs LSTM: '
          + ('; '.join(numbers) if numbers else 'no structure rows'))


gru_only_update_gate = Check(
    '2.2', 'A GRU keeps only an update gate, and so computes less than an LSTM.',
    _gru_vs_lstm, decide_gru_gates, _describe_gru_gates)


def decide_lstm_gates(gates: Sequence[str], rules: Rules = RULES) -> str:
  """The claim's four gates are forget, input, "update" and output: an LSTM with an input,
  forget and output gate and a candidate has them if its candidate is read as the "update"."""
  if 'update' in gates:
    return SUPPORTED
  return DEPENDS if {'input', 'forget', 'output', 'candidate'} <= set(gates) else REFUTED


def _describe_lstm_gates(gates: Sequence[str], verdict: str, rules: Rules) -> str:
  return (f'the LSTM here (the standard one) computes {", ".join(gates)}: three gates plus a '
          'candidate. The "update" is the candidate that the input gate scales into the cell '
          'state, not a fourth gate.')


lstm_gates = Check(
    '2.2', 'An LSTM has a forget gate, an input gate, an "update" gate and an output gate.',
    lambda ev, rules: recurrent.gate_names('lstm'), decide_lstm_gates, _describe_lstm_gates)


# -- 2.2: a simple RNN sees only the previous time step --------------------------------------------

MEMORY_TASKS = (('adding', 'mse'), ('copy_memory', 'recall_accuracy'))  # (task, its metric)


@dataclasses.dataclass(frozen=True)
class MemoryResult:
  task: str  # 'adding' or 'copy_memory'
  group: str  # the task setting, e.g. 'adding_T50'
  model: str
  metric: str
  workdirs: str
  value: float  # the test metric's mean over seeds
  seeds: int


def _memory_results(ev: Evidence, rules: Rules) -> list[MemoryResult]:
  """Every sequence model's test metric on the memory tasks, the recurrent models first."""
  order = sorted(SEQUENCE, key=lambda m: m not in RECURRENT)  # rnn, lstm, gru, tcn
  out = []
  for task, metric in MEMORY_TASKS:
    for group, members in _groups(ev.runs, task).items():
      out += [MemoryResult(task, group, m, metric, _runs_text(members[m]),
                           _mean(members[m], metric), len(members[m]))
              for m in order if m in members]
  return out


def _remembers(r: MemoryResult, rules: Rules) -> bool:
  """A result well past guessing: memory of steps far before the previous one."""
  if r.task == 'adding':
    return r.value < rules.adding_solved_mse
  return r.value > rules.copy_solved_recall


def decide_memory(results: list[MemoryResult], rules: Rules = RULES) -> str:
  """Refuted when the rnn remembers on any memory task; else it fits the claim (depends)."""
  rnn = [r for r in results if r.model == 'rnn']
  if not rnn:
    return NOT_MEASURED
  return REFUTED if any(_remembers(r, rules) for r in rnn) else DEPENDS


def _describe_memory(results: list[MemoryResult], verdict: str, rules: Rules) -> str:
  if verdict == NOT_MEASURED:
    return 'no adding-problem or copy-memory run of the rnn'
  parts = [f'{r.group} ({r.workdirs}): {r.model} test {r.metric} {r.value:.4g}'
           + (f' (mean of {r.seeds})' if r.seeds > 1 else '') for r in results]
  return ('; '.join(parts) + f'. Predicting 1 on the adding problem gives MSE '
          f'{rules.adding_predict_one_mse:g} and guessing copy-memory digits '
          f'{rules.copy_guess_recall:g}; any result well past those (adding MSE under '
          f'{rules.adding_solved_mse:g}, recall over {rules.copy_solved_recall:g}) needs memory '
          'of steps far before the previous one.' +
          ('' if verdict == REFUTED else ' The rnn got past neither here, which fits the claim '
           'at these lengths without proving it.'))


simple_rnn_previous_step_only = Check(
    '2.2', 'A simple RNN effectively sees only the previous time step.',
    _memory_results, decide_memory, _describe_memory)


# -- 2.3.1: convergence ----------------------------------------------------------------------------

def steps_to_converge(records: list[dict[str, Any]], rules: Rules = RULES) -> float:
  """The first logged step whose train loss is `Rules.loss_drop_done` (90 %) of the way from
  the first logged loss down to the last; inf when the loss did not go down at all (a diverged
  run converged never)."""
  losses = np.array([m['loss'] for m in records])
  if not losses[-1] < losses[0]:
    return float('inf')
  left = round(1 - rules.loss_drop_done, 12)  # 0.1, not 1 - 0.9's 0.09999999999999998
  target = losses[-1] + left * (losses[0] - losses[-1])
  return float(next(m['step'] for m in records if m['loss'] <= target))


def _steps_per_task(ev: Evidence, rules: Rules) -> dict[str, dict[str, list[float]]]:
  """{task setting: {model: `steps_to_converge` of each seed}}, of the settings with learning
  curves of two models or more."""
  out = {}
  for group, members in _groups_all(ev.runs).items():
    steps = {}
    for model, members_of in members.items():
      per_seed = []
      for r in members_of:
        records = [m for m in read_metrics(os.path.join(ev.root, r['workdir']))
                   if m['split'] == 'train']
        if len(records) >= 2:
          per_seed.append(steps_to_converge(records, rules))
      if per_seed:
        steps[model] = per_seed
    if len(steps) >= 2:
      out[group] = steps
  return out


def _median(values: Sequence[float]) -> float:
  return float(np.median(values))


def _fastest(steps: dict[str, list[float]], family: tuple[str, ...]) -> str | None:
  """The family's model with the fewest steps (median over seeds); None without one."""
  return min((m for m in steps if m in family), key=lambda m: _median(steps[m]), default=None)


def family_race(steps: dict[str, list[float]], rules: Rules = RULES) -> Difference | None:
  """The fastest convolutional model against the fastest recurrent one (a = conv), on their
  per-seed steps; None without both families."""
  conv, rec = _fastest(steps, CONV), _fastest(steps, RECURRENT)
  if conv is None or rec is None:
    return None
  return difference(conv, steps[conv], rec, steps[rec], rules)


def _ranked(values: dict[str, list[float]], show: Callable[[float], str], rules: Rules) -> str:
  """Each model's median over seeds, smallest first (``show`` formats it), then the fastest
  convolutional model against the fastest recurrent one (`family_race`) where both ran."""
  ordered = sorted(values.items(), key=lambda kv: _median(kv[1]))
  text = ', '.join(f'{m} {show(_median(v))}' for m, v in ordered)
  race = family_race(values, rules)
  return text if race is None else text + f' ({race.a} vs {race.b}: {spread_text(race, rules)})'


def _first_family(steps: dict[str, list[float]], rules: Rules = RULES) -> str | None:
  """'conv' or 'recurrent': whose fastest model converged first by more than the seed spread;
  NOT_DISTINGUISHABLE within it (or a tie, or too few seeds); None without both families."""
  race = family_race(steps, rules)
  if race is None:
    return None
  if not race.distinguishable:
    return NOT_DISTINGUISHABLE
  return 'conv' if race.a_smaller else 'recurrent'


def decide_convergence(per_task: dict[str, dict[str, list[float]]], rules: Rules = RULES) -> str:
  """Supported when the convolutional family converges first, beyond the seed spread, in every
  task that has both; refuted when the recurrent one does in every such task; not
  distinguishable when no task's difference is beyond the spread; else it depends on the
  task."""
  return _family_verdict([_first_family(s, rules) for s in per_task.values()])


def _family_verdict(outcomes: Sequence[str | None]) -> str:
  """One verdict from the per-task outcomes ('conv', 'recurrent', NOT_DISTINGUISHABLE, or
  None where not measured): all one way, or depends; not measured without any."""
  outcomes = [o for o in outcomes if o is not None]
  if not outcomes:
    return NOT_MEASURED
  for outcome, verdict in (('conv', SUPPORTED), ('recurrent', REFUTED),
                           (NOT_DISTINGUISHABLE, NOT_DISTINGUISHABLE)):
    if all(o == outcome for o in outcomes):
      return verdict
  return DEPENDS


def _describe_convergence(per_task, verdict: str, rules: Rules) -> str:
  if not per_task:
    return 'no learning curves'
  show = lambda s: 'never' if s == float('inf') else f'{s:g}'
  done = f'{100 * rules.loss_drop_done:g} %'

  def task_text(group, steps):
    return f'{group}: steps to {done} of the loss drop ' + _ranked(steps, show, rules)

  evidence = '; '.join(task_text(g, s) for g, s in per_task.items())
  evidence += ' (the median over seeds)'
  outcomes = [o for o in (_first_family(s, rules) for s in per_task.values()) if o is not None]
  if not outcomes:
    return evidence + '. No task has a convolutional and a recurrent run.'
  tally = (f'. The fastest convolutional model converged first in {outcomes.count("conv")} of '
           f'{len(outcomes)} tasks, the fastest recurrent one in {outcomes.count("recurrent")}, '
           f'and in {outcomes.count(NOT_DISTINGUISHABLE)} the difference is not beyond the seed '
           f"spread (Welch's t-test at {rules.significance:g}, {rules.min_seeds} seeds or more "
           'a side)')
  if verdict == DEPENDS:
    return evidence + tally + (': which family converges first changes with the task; see the '
                               'learning curves per task.')
  return evidence + tally + '.'


rnns_converge_with_difficulty = Check(
    '2.3.1', 'RNNs converge with difficulty (compared with CNNs).',
    _steps_per_task, decide_convergence, _describe_convergence)


# -- 2.3.1, second half: sequences of other lengths ------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LengthGap:
  """How much worse each model does at one length it never trained on than at the lengths it
  trained on, on one task setting."""
  group: str  # the task setting
  length: int  # the unseen test length
  trained: tuple[int, int]  # the range of training lengths
  reference: str  # what the gap is measured from: in-range test lengths, or the training mix
  metric: str
  gaps: dict[str, list[float]]  # {model: per-seed (value at `length` - reference), worse > 0}
  workdirs: dict[str, str]  # {model: its runs}


def _length_gaps(ev: Evidence, rules: Rules) -> list[LengthGap]:
  """One `LengthGap` per unseen test length of every task setting whose runs were tested at
  lengths outside their training range (`AddingProblem.test_lengths`; results.json holds
  ``<metric>_T<length>``). The reference is the test lengths inside the range (their mean),
  else the test metric on the training lengths' own mix."""
  out = []
  for group, members in _groups_all(ev.runs).items():
    first = next(iter(members.values()))[0]
    task = first.get('task', {})
    tested = tuple(task.get('test_lengths') or ())
    if not tested or task.get('name') not in tasks.REGISTRY:
      continue
    high = int(task['length'])
    low = int(task.get('min_length') or high)
    inside = [n for n in tested if low <= n <= high]
    metric = first['target_metric']
    sign = -1.0 if _higher_is_better(task['name']) else 1.0  # worse is > 0 either way

    def reference(r):
      if inside:
        return float(np.mean([r['test'][f'{metric}_T{n}'] for n in inside]))
      return float(r['test'][metric])

    for length in (n for n in tested if not low <= n <= high):
      key = f'{metric}_T{length}'
      gaps = {m: [sign * (float(r['test'][key]) - reference(r)) for r in rs
                  if key in r.get('test', {})] for m, rs in members.items()}
      gaps = {m: v for m, v in gaps.items() if v and np.all(np.isfinite(v))}
      if gaps:
        out.append(LengthGap(
            group, length, (low, high),
            ('T=' + '/'.join(map(str, inside))) if inside else 'the training lengths',
            metric, gaps, {m: _runs_text(members[m]) for m in gaps}))
  return out


def decide_length_adaptation(found: list[LengthGap], rules: Rules = RULES) -> str:
  """Per unseen length of each setting, the convolutional model that degrades least against
  the recurrent one that degrades least, on their per-seed gaps by Welch's test (as
  `decide_convergence`, the gap in the place of the steps): supported when the recurrent
  family degrades more beyond the seed spread at every unseen length, refuted when it degrades
  less at every one, not distinguishable when no difference is beyond the spread, else it
  depends on the length; not measured without runs tested at unseen lengths."""
  return decide_convergence({(g.group, g.length): g.gaps for g in found}, rules)


def _describe_length_adaptation(found: list[LengthGap], verdict: str, rules: Rules) -> str:
  if not found:
    return ('no run trained on some sequence lengths and tested at others (adding_lengths: '
            f'{FULL_SUITE})')

  def text(g: LengthGap) -> str:
    side = 'shorter' if g.length < g.trained[0] else 'longer'
    return (f'{g.group} (trained on T={g.trained[0]}..{g.trained[1]}) at T={g.length} '
            f'({side}): test {g.metric} worse than at {g.reference} by '
            + _ranked(g.gaps, lambda v: f'{v:.3g}', rules))

  evidence = '; '.join(text(g) for g in found) + ' (the median over seeds)'
  outcomes = [o for o in (_first_family(g.gaps, rules) for g in found) if o is not None]
  if not outcomes:
    return evidence + '. No setting has a convolutional and a recurrent run.'
  return evidence + (
      f'. Rule: per seed, the test {found[0].metric} at a length outside the training range '
      'minus that at the lengths inside it; the convolutional model with the smallest gap '
      f"against the recurrent one with the smallest, Welch's t-test at {rules.significance:g} "
      f'over {rules.min_seeds} seeds or more a side. The recurrent family degrades more at '
      f'{outcomes.count("conv")} of {len(outcomes)} unseen lengths, less at '
      f'{outcomes.count("recurrent")}, and at {outcomes.count(NOT_DISTINGUISHABLE)} the '
      'difference is not beyond the seed spread.')


rnns_adapt_to_lengths_slowly = Check(
    '2.3.1', 'RNNs need many time steps to adapt to sequences of different lengths: trained on '
    'some lengths, they degrade more than the convolutional sequence model (the TCN) at lengths '
    'they never saw.', _length_gaps, decide_length_adaptation, _describe_length_adaptation)


# -- 2.3.2: speed and use of the hardware ----------------------------------------------------------

def achieved_flops(row: dict[str, Any]) -> float:
  """A structure row's achieved training FLOP/s (older rows lack the field: from its parts)."""
  if 'achieved_flops_per_s' in row:
    return float(row['achieved_flops_per_s'])
  return row['flops_train_per_example'] * row['batch'] / row['train_step_s']


@dataclasses.dataclass(frozen=True)
class Speed:
  rates: dict[int, dict[str, float]]  # {T: {sequence model: training time steps per second}}
  peak: dict[str, Any] | None  # the matmul peak, see `Evidence`
  longest: int | None  # the longest T of the structure rows
  fractions: dict[str, float]  # {model: achieved FLOP/s / peak} at the longest T (with a peak)

  @property
  def device(self) -> str:
    return (self.peak or {}).get('device', 'cpu')


def _speed(ev: Evidence, rules: Rules) -> Speed:
  rows = {(r['model'], r['length']): r for r in ev.structure}
  rates = {}
  for t in sorted({t for (m, t) in rows}):
    measured = {m: rows[(m, t)]['time_steps_per_s'] for m in SEQUENCE if (m, t) in rows}
    if measured:
      rates[t] = measured
  longest = max((t for (m, t) in rows), default=None)
  fractions = {}
  if ev.peak and rows:
    fractions = {m: achieved_flops(rows[(m, longest)]) / (ev.peak['gflops'] * 1e9)
                 for m in SEQUENCE if (m, longest) in rows}
  return Speed(rates, ev.peak, longest, fractions)


def _tcn_ahead(values: dict[str, float]) -> bool | None:
  """Whether the TCN's value is above every recurrent model's; None without both."""
  rivals = [v for m, v in values.items() if m in RECURRENT]
  return values['tcn'] > max(rivals) if 'tcn' in values and rivals else None


def decide_speed(speed: Speed, rules: Rules = RULES) -> str:
  """Depends whenever measured: the claim couples speed with how fully a GPU/TPU is used,
  and which family is faster turns on the length and the hardware (the evidence lists both)."""
  return DEPENDS if speed.rates else NOT_MEASURED


def _describe_speed(speed: Speed, verdict: str, rules: Rules) -> str:
  if verdict == NOT_MEASURED:
    return 'no structure rows'
  lines = [f'T={t}: ' + ', '.join(f'{m} {v:.3g}' for m, v in rates.items())
           for t, rates in speed.rates.items()]
  ahead = [a for a in map(_tcn_ahead, speed.rates.values()) if a is not None]
  faster = (f' The TCN is faster than every recurrent model at {sum(ahead)} of {len(ahead)} '
            'lengths (one timing each, the median of repeated steps: no spread over seeds to '
            'test a difference against, so the tally alone decides nothing).' if ahead else '')
  device, peak, use = speed.device, speed.peak, ''
  if peak:
    use = (f" Use of the hardware at the longest T={speed.longest}: achieved training FLOP/s "
           f"as a fraction of a float32 {peak['n']}x{peak['n']} matmul peak of "
           f"{peak['gflops']:.4g} GFLOP/s measured on the same machine ({device}) when the "
           'report was built: ' + ', '.join(f'{m} {f:.1%}' for m, f in speed.fractions.items())
           + '.')
    more = _tcn_ahead(speed.fractions)
    if more is not None:
      use += (' The TCN uses more of it than every recurrent model.' if more else
              ' The TCN does not use more of it than every recurrent model.')
  where = ('Measured on the CPU only: the GPU/TPU half of the claim needs the accelerator '
           'benchmarks, which this report does not have yet.' if device.lower().startswith('cpu')
           else f'Measured on {device}.')
  return (f'training time steps per second on this machine ({device}), TCN vs recurrent: '
          + '; '.join(lines) + '.' + faster + use + ' ' + where)


rnns_train_slower = Check(
    '2.3.2', 'RNNs train slower and cannot use GPUs/TPUs fully; CNNs train faster.',
    _speed, decide_speed, _describe_speed)


# -- 2.3.3: a CNN has fewer parameters -------------------------------------------------------------

def _params_per_task(ev: Evidence, rules: Rules) -> list[tuple[str, list[tuple[str, int, str,
                                                                              float]]]]:
  """[(task setting, [(model, parameters, target metric, its test mean)])] of the settings
  with runs of the cnn and of a recurrent model."""
  out = []
  for group, members in _groups_all(ev.runs).items():
    if 'cnn' in members and any(m in members for m in RECURRENT):
      out.append((group, [(m, rs[0]['params']['total'], rs[0]['target_metric'],
                           _mean(rs, rs[0]['target_metric'])) for m, rs in members.items()]))
  return out


def decide_params(per_task, rules: Rules = RULES) -> str:
  """Depends whenever measured: parameter counts follow the widths a config chooses."""
  return DEPENDS if per_task else NOT_MEASURED


def _describe_params(per_task, verdict: str, rules: Rules) -> str:
  if verdict == NOT_MEASURED:
    return 'no task with runs of the cnn and an rnn'
  parts = [f'{group}: ' + ', '.join(f'{m} {p:,} (test {metric} {value:.3f})'
                                    for m, p, metric, value in items)
           for group, items in per_task]
  return (f'parameters as configured: {"; ".join(parts)}. Parameter counts follow the chosen '
          'widths; neither family needs more parameters by nature.')


cnn_fewer_params = Check(
    '2.3.3', 'A CNN has fewer parameters than an RNN and so saves memory.',
    _params_per_task, decide_params, _describe_params)


# -- 3.1: a fixed input size (from the model code) -------------------------------------------------

def applies_at(name: str, kwargs: dict[str, Any], built_for: int,
               sizes: tuple[int, ...]) -> dict[int, str]:
  """Builds ``name`` (with a 10-way dense head) for inputs of side/length ``built_for`` and
  applies those parameters to each of ``sizes``: {size: 'ok' or the error's type}. Shapes only
  (`jax.eval_shape`): nothing is compiled or run."""
  model = structure_lib.build(name, kwargs)
  shape = lambda n: jax.ShapeDtypeStruct(structure_lib.example_input(name, n, 1).shape,
                                         'float32')
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), shape(built_for))
  out = {}
  for size in sizes:
    try:
      logits = jax.eval_shape(model.apply, variables, shape(size))
      out[size] = 'ok' if logits.shape == (1, 10) else f'output {logits.shape}'
    except Exception as e:  # pylint: disable=broad-except  # any refusal is the measurement
      out[size] = type(e).__name__
  return out


@dataclasses.dataclass(frozen=True)
class FixedSize:
  flatten: dict[int, str]  # `applies_at` of the CNN with global_pool='flatten' + dense head
  pooled: dict[int, str]  # ... with global_pool='avg'
  rnn: dict[int, str]  # ... of the rnn over T steps
  built_for: int


def _all_ok(d: dict[int, str]) -> bool:
  return all(v == 'ok' for v in d.values())


def _none_ok(d: dict[int, str]) -> bool:
  return all(v != 'ok' for v in d.values())


def decide_fixed_size(found: FixedSize, rules: Rules = RULES) -> str:
  """Refuted when both CNN heads take every size, supported when neither takes any, else it
  depends on the head."""
  if _all_ok(found.flatten) and _all_ok(found.pooled):
    return REFUTED
  if _none_ok(found.flatten) and _none_ok(found.pooled):
    return SUPPORTED
  return DEPENDS


def _describe_fixed_size(found: FixedSize, verdict: str, rules: Rules) -> str:
  show = lambda d: ', '.join(f'{n}: {v}' for n, v in sorted(d.items()))
  evidence = (f'parameters built for {found.built_for}, applied to other sizes (shapes only). '
              f"CNN, global_pool='flatten' + dense head: {show(found.flatten)}; CNN, global_pool="
              f"'avg': {show(found.pooled)}; rnn over T steps: {show(found.rnn)}.")
  if verdict == REFUTED:
    return evidence + ' Both CNN heads take every size.'
  if verdict == SUPPORTED:
    return evidence + ' Neither CNN head takes another size.'
  if _none_ok(found.flatten) and _all_ok(found.pooled):
    return evidence + (' The fixed size comes from flattening the last feature map into a dense '
                       'layer, not from the convolutions: a global average pool takes any size '
                       '(above the pooling minimum). ' +
                       ('The rnn reads any sequence length.' if _all_ok(found.rnn) else ''))
  return evidence


def fixed_size_verdict(flatten: dict[int, str], pooled: dict[int, str],
                       rnn: dict[int, str], built_for: int) -> tuple[str, str]:
  """The verdict and evidence of `cnn_needs_fixed_size`, from `applies_at`'s answers."""
  found = FixedSize(flatten, pooled, rnn, built_for)
  verdict = decide_fixed_size(found)
  return verdict, _describe_fixed_size(found, verdict, RULES)


def _fixed_size(ev: Evidence, rules: Rules) -> FixedSize:
  built, sizes, cnn = rules.fixed_size_built_for, rules.fixed_size_tried, dict(widths=(8, 16))
  return FixedSize(applies_at('cnn', dict(cnn, global_pool='flatten'), built, sizes),
                   applies_at('cnn', dict(cnn, global_pool='avg'), built, sizes),
                   applies_at('rnn', dict(hidden=16), built, sizes + rules.fixed_size_rnn_tried),
                   built)


cnn_needs_fixed_size = Check(
    '3.1', 'A CNN takes input of one fixed size (height, width and channels).',
    _fixed_size, decide_fixed_size, _describe_fixed_size)


# -- 2.1: a CNN is invariant to size and position --------------------------------------------------

def _transforms(rules: Rules) -> tuple[tuple[str, str], ...]:
  """(key of `invariance.measure`'s accuracies, how the evidence names it)."""
  return (('shifted', f'shifted {rules.shift_pixels} px'),
          ('rescaled', f'shrunk to {rules.rescaled_size}x{rules.rescaled_size}'))


def _per_run(value) -> np.ndarray:
  """An accuracy of `invariance.measure` (a list, one per run) or a single value (one run)."""
  return np.atleast_1d(np.asarray(value, dtype=float))


def _drops(acc: dict[str, dict[str, Any]], rules: Rules) -> dict[str, dict[str, np.ndarray]]:
  """{model: {transform: each run's drop, original - transformed}}."""
  return {m: {t: _per_run(a['original']) - _per_run(a[t]) for t, _ in _transforms(rules)}
          for m, a in acc.items()}


def _invariance_rivals(acc: dict[str, dict[str, Any]]) -> list[str]:
  return sorted((m for m in acc if m != 'cnn'), key=lambda m: (models.rank(m), m))


SMALLER, LARGER = 'smaller', 'larger'


def _cnn_loses_least(acc, rules: Rules) -> list[tuple[str, str, str, Difference]]:
  """Per transform: (transform, the rival losing least on average, the cnn's drop against
  the rivals': SMALLER than every rival's beyond the seed spread, LARGER than some rival's
  beyond it, else NOT_DISTINGUISHABLE; the cnn against the rival losing least)."""
  drop = _drops(acc, rules)
  out = []
  for t, _ in _transforms(rules):
    rivals = _invariance_rivals(acc)
    against = {m: difference('cnn', drop['cnn'][t], m, drop[m][t], rules) for m in rivals}
    rival = min(rivals, key=lambda m: drop[m][t].mean())
    if all(d.a_smaller for d in against.values()):
      outcome = SMALLER
    elif any(d.b_smaller for d in against.values()):
      outcome = LARGER
    else:
      outcome = NOT_DISTINGUISHABLE
    out.append((t, rival, outcome, against[rival]))
  return out


def decide_invariance(acc: dict[str, dict[str, Any]], rules: Rules = RULES) -> str:
  """Per transform, the CNN "keeps its accuracy better" when its drop (original - transformed)
  is smaller than every other model's by more than the seed spread: supported when so under
  both transforms, refuted when some model's drop is smaller beyond the spread under both,
  not distinguishable when neither transform's difference is beyond the spread, else it
  depends."""
  if 'cnn' not in acc or not _invariance_rivals(acc):
    return NOT_MEASURED
  outcomes = [outcome for _, _, outcome, _ in _cnn_loses_least(acc, rules)]
  for outcome, verdict in ((SMALLER, SUPPORTED), (LARGER, REFUTED),
                           (NOT_DISTINGUISHABLE, NOT_DISTINGUISHABLE)):
    if all(o == outcome for o in outcomes):
      return verdict
  return DEPENDS


def _describe_invariance(acc, verdict: str, rules: Rules) -> str:
  if verdict == NOT_MEASURED:
    return 'needs a digits run of the cnn and of another family'
  drop, names = _drops(acc, rules), dict(_transforms(rules))
  mean = lambda v: float(_per_run(v).mean())
  show = lambda m: (f"{m} {mean(acc[m]['original']):.3f}, " + ', '.join(
      f'{name} {mean(acc[m][t]):.3f} (drop {drop[m][t].mean():+.3f})'
      for t, name in _transforms(rules)))
  said = {SMALLER: "smaller than every other model's",
          LARGER: "larger than another model's",
          NOT_DISTINGUISHABLE: "not distinguishable from the other models'"}
  lines = [f"{names[t]}: the cnn's drop {drop['cnn'][t].mean():.3f} is {said[outcome]} "
           f'(smallest other: {rival} {drop[rival][t].mean():.3f}; against it: '
           f'{spread_text(d, rules)})'
           for t, rival, outcome, d in _cnn_loses_least(acc, rules)]
  several = any(len(_per_run(a['original'])) > 1 for a in acc.values())
  evidence = (f'test accuracy{", mean over seeds" if several else ""}, original / transformed: '
              + '; '.join(show(m) for m in ['cnn'] + _invariance_rivals(acc)) + '. ' +
              '; '.join(lines) + '.')
  worst = max(d.mean() for d in drop['cnn'].values())
  if worst > rules.invariant_max_drop:
    evidence += (" An invariant model would keep its accuracy; the cnn's drops up to "
                 f'{worst:.3f} (more than {rules.invariant_max_drop:g}) say it is not invariant '
                 'here, whichever family loses least.')
  return evidence


def invariance_verdict(acc: dict[str, dict[str, Any]]) -> tuple[str, str]:
  """The verdict and evidence of `cnn_size_position_invariant` from test accuracies
  ``{model: {'original', 'shifted', 'rescaled'}}``, each a list with one value per run (seed)
  or a single value for one run (`decide_invariance`)."""
  verdict = decide_invariance(acc)
  return verdict, _describe_invariance(acc, verdict, RULES)


@dataclasses.dataclass(frozen=True)
class Invariance:
  acc: dict[str, dict[str, Any]]  # `invariance.measure`'s: {model: per-run accuracies, 'runs'}
  skipped: list[str]  # runs without a restorable checkpoint
  ran: bool  # whether the suite had digits runs of the cnn and another family to restore


def _invariance(ev: Evidence, rules: Rules) -> Invariance:
  digits = [r for r in ev.runs if _group(r) == 'digits' and r['model'] in CONV + RECURRENT]
  if not any(r['model'] == 'cnn' for r in digits) or len({r['model'] for r in digits}) < 2:
    return Invariance({}, [], False)
  acc, skipped = invariance.measure(ev.root, digits, rules.shift_pixels, rules.rescaled_size)
  return Invariance(acc, skipped, True)


def _describe_invariance_runs(found: Invariance, verdict: str, rules: Rules) -> str:
  if not found.ran:
    return 'needs finished digits runs of the cnn and of another family'
  how = (f'Finished digits runs (their final checkpoints restored) on their test split: as they '
         f'are, shifted {rules.shift_pixels} pixel up/down/left/right with zero fill (the four '
         f'averaged), and shrunk to {rules.rescaled_size}x{rules.rescaled_size} by area '
         'averaging, centred on the 8x8 canvas. ')
  runs_text = '; '.join(f"{m}: {', '.join(a['runs'])}" for m, a in found.acc.items())
  extra = (f' Left out (no checkpoint restored): {", ".join(found.skipped)}.'
           if found.skipped else '')
  return (how + _describe_invariance(found.acc, verdict, rules) + f' Runs: {runs_text}.'
          + extra)


cnn_size_position_invariant = Check(
    '2.1', ('A CNN is invariant to the size (and position) of what it sees, more than sequence '
            'models.'),
    _invariance, lambda found, rules: decide_invariance(found.acc, rules),
    _describe_invariance_runs)


# -- 3.1: what a CNN reads -------------------------------------------------------------------------

CNN_INPUT_KINDS = ('grayscale images', 'RGB images', 'single-channel multi-frame input',
                   'multi-channel multi-frame input')
SINGLE_FRAME = 'one frame of each clip (control)'


def _chance(task: dict[str, Any], rules: Rules = RULES) -> float:
  """Accuracy of guessing, for the classification tasks a CNN reads."""
  return 1.0 / task['directions'] if task.get('name') == 'moving_digits' else \
      1.0 / rules.image_classes


def _learned(accuracy: float, chance: float, rules: Rules = RULES) -> bool:
  """Read, not guessed: at least `Rules.learned_fraction` of the way from chance to perfect."""
  return accuracy >= chance + rules.learned_fraction * (1.0 - chance)


def cnn_input_kind(task: dict[str, Any]) -> str | None:
  """Which of the article's input kinds a CNN run of this task (``results['task']``) read."""
  name, reading = task.get('name'), task.get('reading', 'auto')
  if name == 'digits' and reading in ('auto', 'image'):
    return CNN_INPUT_KINDS[0]
  if name == 'tfds_images' and reading in ('auto', 'image'):
    return CNN_INPUT_KINDS[1] if task.get('dataset') == 'cifar10' else CNN_INPUT_KINDS[0]
  if name == 'moving_digits':
    if reading in ('auto', 'channels'):  # the frames stacked as the channels of one image
      return CNN_INPUT_KINDS[2] if task.get('channels', 1) == 1 else CNN_INPUT_KINDS[3]
    if reading == 'frame':
      return SINGLE_FRAME
  return None


# {input kind: [(run directory, test accuracy, chance)]}
InputKinds = dict[str, list[tuple[str, float, float]]]


def _input_kinds(ev: Evidence, rules: Rules) -> InputKinds:
  found: InputKinds = {}
  for r in ev.runs:
    if r['model'] != 'cnn' or r.get('target_metric') != 'accuracy':
      continue
    kind = cnn_input_kind(r.get('task', {}))
    if kind is not None:
      found.setdefault(kind, []).append((r['workdir'], r['test']['accuracy'],
                                         _chance(r['task'], rules)))
  return found


def _unread(found: InputKinds, rules: Rules) -> list[str]:
  """The article's input kinds in the suite that some run did not learn to read."""
  return [k for k in CNN_INPUT_KINDS if k in found
          and not all(_learned(acc, chance, rules) for _, acc, chance in found[k])]


def decide_input_kinds(found: InputKinds, rules: Rules = RULES) -> str:
  """Supported when every kind in the suite was read (`_learned`), else it depends."""
  if not any(k in found for k in CNN_INPUT_KINDS):
    return NOT_MEASURED
  return DEPENDS if _unread(found, rules) else SUPPORTED


def _describe_input_kinds(found: InputKinds, verdict: str, rules: Rules) -> str:
  if verdict == NOT_MEASURED:
    return 'no classification run of the cnn on digits, TFDS images or moving digits'
  shown = [k for k in CNN_INPUT_KINDS + (SINGLE_FRAME,) if k in found]
  evidence = '; '.join(f'{kind}: ' + ', '.join(f'{w} test accuracy {acc:.3f} (chance '
                                              f'{chance:.3f})' for w, acc, chance in found[kind])
                       for kind in shown) + '.'
  if SINGLE_FRAME in found:
    evidence += (' The direction of motion is in no single frame, so the single-frame control '
                 'is the chance level the stacked frames must beat.')
  missing = [k for k in CNN_INPUT_KINDS if k not in found]
  if missing:
    evidence += f' Not in this suite: {", ".join(missing)} ({FULL_SUITE}).'
  if verdict == SUPPORTED:
    return 'Read = test accuracy at least halfway from chance to 1. ' + evidence
  return (f'Not read (below halfway from chance to 1): {", ".join(_unread(found, rules))}. '
          + evidence)


cnn_reads_input_kinds = Check(
    '3.1', 'A CNN reads grayscale images, RGB images, and single- and multi-channel multi-frame '
    'input.', _input_kinds, decide_input_kinds, _describe_input_kinds)


# -- 4.1: what a CNN is used for -------------------------------------------------------------------

SCENARIOS = ('image classification', 'object detection', 'image super-resolution',
             'edge detection')


@dataclasses.dataclass(frozen=True)
class ScenarioRun:
  scenario: str  # one of SCENARIOS
  workdir: str
  task: dict[str, Any]  # results['task']
  test: dict[str, float]  # results['test']
  baselines: dict[str, dict[str, float]]  # results['baselines'] (edges: Sobel, Canny)


def _scenario_of(task: dict[str, Any]) -> str | None:
  if cnn_input_kind(task) in CNN_INPUT_KINDS[:2]:
    return SCENARIOS[0]
  return {'detection': SCENARIOS[1], 'super_resolution': SCENARIOS[2],
          'edges': SCENARIOS[3]}.get(task.get('name'))


def _scenario_runs(ev: Evidence, rules: Rules) -> list[ScenarioRun]:
  out = []
  for r in ev.runs:
    scenario = _scenario_of(r.get('task', {})) if r['model'] == 'cnn' else None
    if scenario is not None:
      out.append(ScenarioRun(scenario, r['workdir'], r.get('task', {}), r['test'],
                             r.get('baselines', {})))
  return out


def _works(s: ScenarioRun, rules: Rules) -> bool:
  """Whether the CNN did the job, by its scenario's rule in `Rules`."""
  if s.scenario == SCENARIOS[0]:
    return _learned(s.test['accuracy'], _chance(s.task, rules), rules)
  if s.scenario == SCENARIOS[1]:
    return s.test['mAP50'] >= rules.min_map50
  if s.scenario == SCENARIOS[2]:
    return s.test['psnr_gain'] > rules.min_psnr_gain_db
  baseline = s.baselines.get(rules.edge_baseline, {}).get('ods_f', float('inf'))
  return s.test['ods_f'] > baseline


def _how(s: ScenarioRun, rules: Rules) -> str:
  """The numbers `_works` judged, as the evidence states them."""
  test = s.test
  if s.scenario == SCENARIOS[0]:
    return f"test accuracy {test['accuracy']:.3f} (chance {_chance(s.task, rules):.3f})"
  if s.scenario == SCENARIOS[1]:
    return f"test mAP@0.5 {test['mAP50']:.3f} (works: >= {rules.min_map50})"
  if s.scenario == SCENARIOS[2]:
    return (f"x{s.task.get('scale')} test PSNR {test['psnr']:.2f} dB vs bicubic "
            f"{test['bicubic_psnr']:.2f} dB ({test['psnr_gain']:+.2f} dB)")
  vs = ', '.join(f"{k} {v['ods_f']:.3f}" for k, v in s.baselines.items())
  return (f"test ODS F {test['ods_f']:.3f} (works: above {rules.edge_baseline.capitalize()}; "
          f"baselines by the same evaluation: {vs or 'none recorded'})")


def _failed_scenarios(found: list[ScenarioRun], rules: Rules) -> list[str]:
  """The scenarios (in the order first met) where some run did not work."""
  met = dict.fromkeys(s.scenario for s in found)
  return [x for x in met if not all(_works(s, rules) for s in found if s.scenario == x)]


def decide_scenarios(found: list[ScenarioRun], rules: Rules = RULES) -> str:
  """Supported when every scenario's runs work (`_works`), else it depends."""
  if not found:
    return NOT_MEASURED
  return DEPENDS if _failed_scenarios(found, rules) else SUPPORTED


def _describe_scenarios(found: list[ScenarioRun], verdict: str, rules: Rules) -> str:
  if verdict == NOT_MEASURED:
    return ('no cnn run of a classification, detection, super-resolution or edge-detection '
            'task')
  evidence = '; '.join(f'{scenario}: ' + ', '.join(f'{s.workdir} {_how(s, rules)}'
                                                   for s in found if s.scenario == scenario)
                       for scenario in SCENARIOS if any(s.scenario == scenario for s in found))
  evidence += '.'
  missing = [x for x in SCENARIOS if not any(s.scenario == x for s in found)]
  if missing:
    evidence += f' Not in this suite: {", ".join(missing)} ({FULL_SUITE}).'
  if verdict == DEPENDS:
    return f'Did not work here: {", ".join(_failed_scenarios(found, rules))}. ' + evidence
  return evidence


cnn_vision_scenarios = Check(
    '4.1', 'CNNs are used for image classification, object detection, image super-resolution '
    'and edge detection.', _scenario_runs, decide_scenarios, _describe_scenarios)


# -- 4.2: what an RNN is used for ------------------------------------------------------------------

# The models that read a sequence step by step: the recurrent family and the CNN-encoder +
# recurrent video models (a clip read frame by frame).
READS_STEPWISE = RECURRENT + tuple(models.ordered('conv+recurrent'))


def _higher_is_better(task_name: str) -> bool:
  return tasks.REGISTRY[task_name].higher_is_better


def bars(run: dict[str, Any], rules: Rules = RULES) -> dict[str, float]:
  """{name: test value} a model must beat on ``run``'s task and metric: the baselines the run
  recorded (forecasting, song), else the trivial level of `Rules` (predicting the mean on the
  adding problem, guessing on copy memory, 1 / classes for classification, a uniform byte for
  the character LM); {} where neither is known."""
  metric, task = run['target_metric'], run.get('task', {})
  recorded = {k: v[metric] for k, v in run.get('baselines', {}).items() if metric in v}
  if recorded:
    return recorded
  name = task.get('name')
  if name == 'adding' and metric == 'mse':
    return {'predicting 1': rules.adding_predict_one_mse}
  if name == 'copy_memory' and metric == 'recall_accuracy':
    return {'guessing': rules.copy_guess_recall}
  if name == 'char_lm' and metric == 'bpc':
    return {'uniform bytes': rules.char_uniform_bpc}
  if metric == 'accuracy':
    chance = 1.0 / rules.sentiment_classes if name == 'sentiment' else _chance(task, rules)
    return {'chance': chance}
  return {}


# The kinds of sequence data the article names for RNNs (section 4.2), how a run's task is one,
# and the runs of the full suite that are: what a suite without them says it lacks
SEQUENCE_KINDS = (
    ('text', lambda t: t.get('name') in ('char_lm', 'sentiment'), 'char_lm, sentiment'),
    ('music', lambda t: t.get('name') == 'song', 'song'),
    ('a real series', lambda t: t.get('name') == 'forecasting'
     and t.get('series') in forecasting.REAL_SERIES, 'forecasting_sunspots'),
    ('video', lambda t: t.get('name') == 'moving_digits', 'moving_digits'),
)
# the kinds that experiments/suites/real_data.py runs at quick sizes (wheel data: the chorales
# and statsmodels' sunspots)
REAL_DATA_KINDS = ('music', 'a real series')
REAL_DATA_SUITE = ('experiments/suites/real_data.py runs the song and the sunspots at quick '
                   'sizes (every causal family, 3 seeds)')


def sequence_kind(task: dict[str, Any]) -> str | None:
  """The kind of `SEQUENCE_KINDS` a run's task section is, or None (synthetic or digits)."""
  return next((kind for kind, is_kind, _ in SEQUENCE_KINDS if is_kind(task)), None)


@dataclasses.dataclass(frozen=True)
class SequenceTask:
  group: str  # the task setting
  metric: str
  higher_is_better: bool
  best: str  # the best model reading step by step (mean over its seeds)
  values: dict[str, list[float]]  # {model: per-seed test values} of every model of the setting
  workdirs: dict[str, str]  # {model: its runs}
  bars: dict[str, float]  # `bars`: {} when none is known
  kind: str | None = None  # `sequence_kind` of its task

  def better(self, a: float, b: float) -> bool:
    return a > b if self.higher_is_better else a < b

  @property
  def beats(self) -> bool:
    """Whether the best recurrent model's mean is better than every bar."""
    mean = float(np.mean(self.values[self.best]))
    return all(self.better(mean, bar) for bar in self.bars.values())


def _sequence_tasks(ev: Evidence, rules: Rules) -> list[SequenceTask]:
  """Every task setting with a run of a model reading step by step (`READS_STEPWISE`)."""
  out = []
  for group, members in _groups_all(ev.runs).items():
    readers = [m for m in members if m in READS_STEPWISE]
    first = members[readers[0]][0] if readers else None
    if first is None or first.get('task', {}).get('name') not in tasks.REGISTRY:
      continue
    metric, higher = first['target_metric'], _higher_is_better(first['task']['name'])
    values = {m: [r['test'][metric] for r in rs] for m, rs in members.items()}
    pick = max if higher else min
    best = pick(readers, key=lambda m: float(np.mean(values[m])))
    out.append(SequenceTask(group, metric, higher, best, values,
                            {m: _runs_text(rs) for m, rs in members.items()},
                            bars(first, rules), sequence_kind(first.get('task', {}))))
  return out


def decide_sequence_uses(found: list[SequenceTask], rules: Rules = RULES) -> str:
  """Supported when the best recurrent model beats its task's bars on every task that has
  some, refuted when on none, else it depends; not measured without such a task."""
  measured = [t for t in found if t.bars]
  if not measured:
    return NOT_MEASURED
  beaten = sum(t.beats for t in measured)
  return SUPPORTED if beaten == len(measured) else DEPENDS if beaten else REFUTED


def _against_tcn(t: SequenceTask, rules: Rules) -> str:
  if 'tcn' not in t.values or t.best == 'tcn':
    return 'no tcn run'
  d = difference(t.best, t.values[t.best], 'tcn', t.values['tcn'], rules)
  if d.distinguishable:
    word = 'better than' if t.better(d.mean_a, d.mean_b) else 'worse than'
  else:
    word = 'level with'
  return f'{word} the tcn {d.mean_b:.4g} ({spread_text(d, rules)})'


def _describe_sequence_uses(found: list[SequenceTask], verdict: str, rules: Rules) -> str:
  if not found:
    return 'no run of a recurrent model on a sequence task'
  parts = []
  for t in found:
    mean = float(np.mean(t.values[t.best]))
    seeds = len(t.values[t.best])
    bar = (', '.join(f'{k} {v:.4g}' for k, v in t.bars.items()) if t.bars else
           'no baseline known: not counted')
    beat = ('' if not t.bars else ' (beats them)' if t.beats else ' (does not beat them)')
    parts.append(f"{t.group}: best recurrent {t.best} test {t.metric} {mean:.4g}"
                 f"{f' (mean of {seeds})' if seeds > 1 else ''} ({t.workdirs[t.best]}); "
                 f'to beat: {bar}{beat}; {_against_tcn(t, rules)}')
  measured = [t for t in found if t.bars]
  tally = (f'. The best recurrent model beats the baselines on {sum(t.beats for t in measured)} '
           f'of {len(measured)} tasks with baselines (recorded with the runs where the task '
           'has them, else the trivial level: predicting 1 on the adding problem, guessing on '
           'copy memory, 1 / classes, a uniform byte).')
  missing = [f'{kind} ({runs})' for kind, _, runs in SEQUENCE_KINDS
             if not any(t.kind == kind for t in found)]
  if missing:
    tally += f' Not in this suite: {", ".join(missing)} ({FULL_SUITE}).'
    if any(not any(t.kind == kind for t in found) for kind in REAL_DATA_KINDS):
      tally += f' {REAL_DATA_SUITE}.'
  return '; '.join(parts) + tally


rnns_handle_sequences = Check(
    '4.2', 'RNNs predict and classify sequence data (text, music, series, video, digits read '
    'as sequences).', _sequence_tasks, decide_sequence_uses, _describe_sequence_uses)


# -- 3.2: sequences of vectors in and out ----------------------------------------------------------

IO_PATTERNS = ('many-to-one', 'many-to-many', 'generation')
PER_STEP_TASKS = ('char_lm', 'song', 'copy_memory')  # a prediction at every step


@dataclasses.dataclass(frozen=True)
class IoRun:
  pattern: str  # one of IO_PATTERNS
  workdir: str
  shapes: dict[str, Any] | None  # results['io_shapes'] (one example's, batch axis left out)


def io_pattern(run: dict[str, Any]) -> str:
  """'many-to-many' when the output has a step axis as long as the input's (from the shapes
  the run recorded; older runs without them by the task), else 'many-to-one'."""
  shapes = run.get('io_shapes')
  if isinstance(shapes, dict) and isinstance(shapes.get('output'), list):
    inp, out = shapes['input'], shapes['output']
    return IO_PATTERNS[1] if len(out) >= 2 and out[0] == inp[0] else IO_PATTERNS[0]
  return IO_PATTERNS[1] if run.get('task', {}).get('name') in PER_STEP_TASKS else IO_PATTERNS[0]


def _generated(ev: Evidence, run: dict[str, Any]) -> bool:
  """Whether the run sampled text (the character LM writes samples.txt)."""
  return bool(run.get('samples')) or workdirs.join(ev.root, run['workdir'],
                                                    'samples.txt').exists()  # or gs://...


def _io_runs(ev: Evidence, rules: Rules) -> list[IoRun]:
  out = []
  for r in ev.runs:
    if r['model'] not in READS_STEPWISE:
      continue
    out.append(IoRun(io_pattern(r), r['workdir'], r.get('io_shapes')))
    if _generated(ev, r):
      out.append(IoRun(IO_PATTERNS[2], r['workdir'], r.get('io_shapes')))
  return out


def _missing_patterns(found: list[IoRun]) -> list[str]:
  return [p for p in IO_PATTERNS if not any(r.pattern == p for r in found)]


def decide_io_patterns(found: list[IoRun], rules: Rules = RULES) -> str:
  """Supported when every pattern has a finished recurrent run, else it depends."""
  if not found:
    return NOT_MEASURED
  return DEPENDS if _missing_patterns(found) else SUPPORTED


def _describe_io_patterns(found: list[IoRun], verdict: str, rules: Rules) -> str:
  if not found:
    return 'no finished run of a recurrent model'
  shape = lambda s: 'x'.join(map(str, s)) if s else 'one value'

  def io(r: IoRun) -> str:
    if not isinstance(r.shapes, dict):
      return f'{r.workdir} (shapes not recorded)'
    if r.pattern == IO_PATTERNS[2]:
      return f"{r.workdir} (samples.txt, one step's output {shape(r.shapes['output'][1:])})"
    return f"{r.workdir} ({shape(r.shapes['input'])} -> {shape(r.shapes['output'])})"

  parts = [f'{p}: ' + ', '.join(io(r) for r in found if r.pattern == p)
           for p in IO_PATTERNS if any(r.pattern == p for r in found)]
  text = ('one example in -> out, steps first: ' + '; '.join(parts) + '.')
  missing = _missing_patterns(found)
  return text + (f' No finished recurrent run of: {", ".join(missing)}.' if missing else '')


rnn_sequence_io = Check(
    '3.2', "An RNN's inputs and outputs are sequences of vectors: one output per sequence, one "
    'per step, or a generated sequence.', _io_runs, decide_io_patterns, _describe_io_patterns)


# -- 2.3.3, second half: time to a good result -----------------------------------------------------

def _validation(records: list[dict[str, Any]], metric: str) -> list[tuple[int, float]]:
  """[(step, value)] of the validation records with ``metric``, by step."""
  latest = {m['step']: m[metric] for m in records
            if m['split'] == 'validation' and metric in m}
  return sorted(latest.items())


def seconds_to(records: list[dict[str, Any]], metric: str, target: float,
               higher_is_better: bool) -> float:
  """Training seconds (`training_seconds`) until the first validation value at or past
  ``target``, at the first train record at or after its step; inf when never reached."""
  seconds = training_seconds(records)
  if not seconds:
    return float('inf')
  for step, value in _validation(records, metric):
    if (value >= target) if higher_is_better else (value <= target):
      at = [s for s in sorted(seconds) if s >= step] or [max(seconds)]
      return seconds[at[0]][1]
  return float('inf')


@dataclasses.dataclass(frozen=True)
class TimeToTarget:
  metric: str
  higher_is_better: bool
  target: float
  seconds: dict[str, list[float]]  # {model: per-seed training seconds to the target}


def _times_per_task(ev: Evidence, rules: Rules) -> dict[str, TimeToTarget]:
  """{task setting: `TimeToTarget`} of the settings with learning curves of two models or
  more, the target by `Rules.time_target_fraction`."""
  out = {}
  for group, members in _groups_all(ev.runs).items():
    first = next(iter(members.values()))[0]
    name, metric = first.get('task', {}).get('name'), first['target_metric']
    if name not in tasks.REGISTRY:
      continue
    higher = _higher_is_better(name)
    records = {m: [read_metrics(os.path.join(ev.root, r['workdir'])) for r in rs]
               for m, rs in members.items()}
    logged = [v for runs_of in records.values() for rec in runs_of
              for _, v in _validation(rec, metric)]
    if not logged:
      continue
    best, worst = (max(logged), min(logged)) if higher else (min(logged), max(logged))
    target = worst + rules.time_target_fraction * (best - worst)
    seconds = {m: [seconds_to(rec, metric, target, higher) for rec in runs_of
                   if training_seconds(rec)] for m, runs_of in records.items()}
    seconds = {m: v for m, v in seconds.items() if v}
    if len(seconds) >= 2:
      out[group] = TimeToTarget(metric, higher, target, seconds)
  return out


def decide_time_to_target(per_task: dict[str, TimeToTarget], rules: Rules = RULES) -> str:
  """As `decide_convergence`, on seconds: supported when the fastest convolutional model
  reaches the target first beyond the seed spread in every task with both families."""
  return decide_convergence({g: t.seconds for g, t in per_task.items()}, rules)


def _describe_time_to_target(per_task: dict[str, TimeToTarget], verdict: str,
                             rules: Rules) -> str:
  if not per_task:
    return 'no validation curves'
  show = lambda s: 'never' if s == float('inf') else f'{s:.3g} s'

  def task_text(group: str, t: TimeToTarget) -> str:
    return (f"{group}: training seconds to validation {t.metric} "
            f"{'>=' if t.higher_is_better else '<='} {t.target:.4g}: "
            + _ranked(t.seconds, show, rules))

  evidence = '; '.join(task_text(g, t) for g, t in per_task.items()) + (
      f' (the median over seeds; target: {rules.time_target_fraction:g} of the way from the '
      "worst validation value the task's runs logged to the best any reached; seconds of "
      'training, rebuilt from the logged steps per second, evaluation left out)')
  outcomes = [o for o in (_first_family(t.seconds, rules) for t in per_task.values())
              if o is not None]
  if not outcomes:
    return evidence + '. No task has a convolutional and a recurrent run.'
  return evidence + (
      f'. The fastest convolutional model got there first in {outcomes.count("conv")} of '
      f'{len(outcomes)} tasks, the fastest recurrent one in {outcomes.count("recurrent")}, and in '
      f'{outcomes.count(NOT_DISTINGUISHABLE)} the difference is not beyond the seed spread.')


rnns_take_longer = Check(
    '2.3.3', 'RNNs need more (wall-clock) time to reach a good result.',
    _times_per_task, decide_time_to_target, _describe_time_to_target)


# -- 2.3.2, second half: CNNs suit large datasets --------------------------------------------------

# A task setting trained on part of its training split: `<setting>_frac<fraction>` (full.py).
FRACTION_SUFFIX = re.compile(r'_frac([0-9.]+)$')


def train_subset(run: dict[str, Any]) -> float:
  """The part of its training split a run trained on: its task's recorded ``train_subset``,
  else a ``_frac<value>`` ending of its task setting, else all of it."""
  recorded = (run.get('task') or {}).get('train_subset')
  if recorded is not None:
    return float(recorded)
  match = FRACTION_SUFFIX.search(_group(run))
  return float(match.group(1)) if match else 1.0


def error_of(value: float, higher_is_better: bool, n_test: int | None = None) -> float:
  """What a test metric leaves to learn, on a scale where halving it is the same progress
  anywhere: one minus the metric where higher is better (accuracy), floored at half an example
  of the test split (a run without a test error would otherwise have none left to halve); the
  metric itself where lower is better (MSE, loss, bits per character)."""
  if not higher_is_better:
    return max(float(value), 1e-12)
  return max(1.0 - float(value), 0.5 / n_test if n_test else 1e-4)


def log2_slope(fractions: Sequence[float], values: Sequence[float]) -> float:
  """The least-squares slope of ``values`` against log2 of ``fractions``: the change of the
  metric per doubling of the training set."""
  return float(np.polyfit(np.log2(np.asarray(fractions, float)), np.asarray(values, float),
                          1)[0])


@dataclasses.dataclass(frozen=True)
class DataSize:
  """One task setting at several training-set sizes."""
  task: str  # the setting on all of its data ('digits'); its parts are '<task>_frac<f>'
  settings: tuple[str, ...]  # the task settings read, the full one and its parts
  metric: str
  higher_is_better: bool
  values: dict[str, dict[float, dict[str | None, float]]]  # {model: {fraction: {seed: test}}}
  n_test: int | None = None  # examples in the test split (the same at every fraction)

  def fractions(self, model: str) -> list[float]:
    return sorted(self.values[model])

  def gains(self, model: str, rules: Rules = RULES) -> list[float]:
    """Per seed with runs at `Rules.min_fractions` fractions or more: minus the `log2_slope`
    of log2 of its test error (`error_of`) against log2 of the fraction, the exponent of a
    power law ``error ~ fraction ** -gain``: each doubling of the data divides the error by
    ``2 ** gain``. A ratio, not a difference, so that a model already near a perfect score
    (the digits CNN at 0.996) is not read as gaining little for having little left to gain."""
    by_seed: dict[str | None, dict[float, float]] = {}
    for fraction, seeds in self.values[model].items():
      for seed, value in seeds.items():
        by_seed.setdefault(seed, {})[fraction] = value
    error = lambda v: np.log2(error_of(v, self.higher_is_better, self.n_test))
    return [-log2_slope(list(points), [error(v) for v in points.values()])
            for _, points in sorted(by_seed.items(), key=lambda kv: str(kv[0]))
            if len(points) >= rules.min_fractions]

  def mean_at(self, model: str, fraction: float) -> float:
    return float(np.mean(list(self.values[model][fraction].values())))

  def pair(self, rules: Rules = RULES) -> tuple[str, str] | None:
    """(the convolutional model, the best recurrent one) of those with gains: the first
    convolutional model of the registry's order (the image CNN where it ran, else the TCN),
    and the recurrent model with the best mean test metric at its largest fraction (the one a
    large dataset would pick); None without both."""
    measured = [m for m in self.values if self.gains(m, rules)]
    conv = next((m for m in CONV if m in measured), None)
    rivals = [m for m in RECURRENT if m in measured]
    if conv is None or not rivals:
      return None
    best = lambda m: self.mean_at(m, max(self.values[m]))
    return conv, (max if self.higher_is_better else min)(rivals, key=best)


def _data_sizes(ev: Evidence, rules: Rules) -> list[DataSize]:
  """Every task setting with runs on part of its training split (`train_subset` below 1),
  joined with its runs on all of it; each seed (the ``/seedN`` ending) is followed across the
  fractions."""
  found: dict[str, dict[str, Any]] = {}
  for r in ev.runs:
    name = (r.get('task') or {}).get('name')
    if name not in tasks.REGISTRY:
      continue
    task = FRACTION_SUFFIX.sub('', _group(r))
    seed = selection.SEED_PART.search(r['workdir'].replace(os.sep, '/'))
    t = found.setdefault(task, {'settings': set(), 'metric': r['target_metric'],
                                'higher': _higher_is_better(name), 'values': {},
                                'n_test': (r.get('examples') or {}).get('test')})
    t['settings'].add(_group(r))
    t['values'].setdefault(r['model'], {}).setdefault(train_subset(r), {})[
        seed.group(1) if seed else None] = r['test'][r['target_metric']]
  return [DataSize(task, tuple(sorted(t['settings'], key=lambda g: (g != task, g))),
                   t['metric'], t['higher'], t['values'], t['n_test'])
          for task, t in sorted(found.items())
          if any(f < 1.0 for v in t['values'].values() for f in v)]


def data_size_race(t: DataSize, rules: Rules = RULES) -> Difference | None:
  """The convolutional model's per-seed gains against the best recurrent model's (a = conv);
  None where the setting lacks either at `Rules.min_fractions` fractions."""
  pair = t.pair(rules)
  if pair is None:
    return None
  conv, rival = pair
  return difference(conv, t.gains(conv, rules), rival, t.gains(rival, rules), rules)


def _gains_more(t: DataSize, rules: Rules) -> str | None:
  """'conv' or 'recurrent': whose gain per doubling is larger beyond the seed spread;
  NOT_DISTINGUISHABLE within it; None where not measured."""
  race = data_size_race(t, rules)
  if race is None:
    return None
  if not race.distinguishable:
    return NOT_DISTINGUISHABLE
  return 'conv' if race.b_smaller else 'recurrent'


def decide_data_size(found: list[DataSize], rules: Rules = RULES) -> str:
  """Supported when the convolutional model gains more per doubling of the training set than
  the best recurrent one, beyond the seed spread, on every task setting measured; refuted
  when it gains less beyond the spread on every one; not distinguishable when no setting's
  difference is beyond the spread; else it depends on the task. Not measured without a
  setting that has both at `Rules.min_fractions` fractions."""
  return _family_verdict([_gains_more(t, rules) for t in found])


def _fraction_text(f: float) -> str:
  """1/8 for 0.125, 1 for all of it, else the number."""
  whole = round(1 / f)
  return '1' if f == 1 else f'1/{whole}' if abs(1 / f - whole) < 1e-9 else f'{f:g}'


def _describe_data_size(found: list[DataSize], verdict: str, rules: Rules) -> str:
  needs = (f'runs of a convolutional and a recurrent model at {rules.min_fractions} training-set '
           'sizes or more (task.train_subset); '
           f"{FULL_SUITE}: digits_frac* and seq_digits_frac*, 1/8, 1/4 and 1/2 of the digits' "
           'training split beside all of it')
  if not found:
    return f'no run on part of a training split: the check needs {needs}'

  def task_text(t: DataSize) -> str:
    fractions = sorted({f for v in t.values.values() for f in v})
    table = ', '.join(f'{m} ' + ' / '.join(f'{t.mean_at(m, f):.3f}' if f in t.values[m] else '-'
                                           for f in fractions)
                      for m in sorted(t.values, key=models.rank))
    text = (f"{t.task} ({', '.join(t.settings)}): test {t.metric} at training fractions "
            f"{' / '.join(map(_fraction_text, fractions))} (mean over seeds): {table}")
    gains = {m: t.gains(m, rules) for m in sorted(t.values, key=models.rank)}
    gains = {m: g for m, g in gains.items() if g}
    if gains:
      error = f'1 - {t.metric}' if t.higher_is_better else t.metric
      text += ('; gain per doubling of the data (mean over seeds of each seed\'s exponent: '
               f'minus the slope of log2 of the test error, {error}, against log2 of the '
               'fraction; the error divides by 2 ** gain): '
               + ', '.join(f'{m} {np.mean(g):+.3f}' for m, g in gains.items()))
    race = data_size_race(t, rules)
    if race is None:
      return text + (f' (not measured: no convolutional and recurrent model both at '
                     f'{rules.min_fractions} fractions)')
    said = {'conv': 'larger than', 'recurrent': 'smaller than',
            NOT_DISTINGUISHABLE: 'level with'}[_gains_more(t, rules)]
    return text + (f"; {race.a}'s gain is {said} {race.b}'s (the best recurrent model at the "
                   f'largest fraction): {spread_text(race, rules)}')

  evidence = '; '.join(task_text(t) for t in found)
  outcomes = [o for o in (_gains_more(t, rules) for t in found) if o is not None]
  if not outcomes:
    return evidence + f'. Not measured: the check needs {needs}.'
  return evidence + (
      f'. Rule: per seed, the least-squares slope of log2 of the test error against log2 of '
      'the training fraction (how fast the error falls as the data doubles: a ratio, so a '
      'model near a perfect score is not read as gaining little); the convolutional model (the image CNN where it ran, else the TCN) '
      "against the best recurrent one by Welch's t-test over the per-seed slopes. The "
      f'convolutional model gains more in {outcomes.count("conv")} of {len(outcomes)} task '
      f'settings, less in {outcomes.count("recurrent")}, and in '
      f'{outcomes.count(NOT_DISTINGUISHABLE)} the difference is not beyond the seed spread. '
      'Validation and test are the same at every fraction; each fraction has its own chosen '
      'learning rate.')


cnns_suit_large_data = Check(
    '2.3.2', 'CNNs suit large datasets better than RNNs: they gain more from more training '
    'data.', _data_sizes, decide_data_size, _describe_data_size, reads_parts=True)


CHECKS: tuple[Check, ...] = (
    params_grow_with_steps, gru_only_update_gate, lstm_gates, simple_rnn_previous_step_only,
    rnns_converge_with_difficulty, rnns_adapt_to_lengths_slowly,
    rnns_train_slower, cnn_fewer_params, cnn_needs_fixed_size,
    cnn_size_position_invariant, cnn_reads_input_kinds, cnn_vision_scenarios,
    rnns_handle_sequences, rnn_sequence_io, rnns_take_longer, cnns_suit_large_data)


def audit(runs: list[dict[str, Any]], structure: list[dict[str, Any]], root: str,
          peak: dict[str, Any] | None = None, rules: Rules = RULES) -> list[Verdict]:
  """Every check's verdict on one `Evidence` (``peak``: a measured matmul peak, or None), of
  each (task setting, model) at its chosen learning rate (`selection.chosen_runs`)."""
  evidence = Evidence(selection.chosen_runs(runs, root or None), structure, root, peak)
  return [check(evidence, rules) for check in CHECKS]


def table(verdicts: list[Verdict]) -> str:
  lines = ['| section | claim (restated) | verdict | evidence |', '|---|---|---|---|']
  lines += [f'| {v.section} | {v.claim} | **{v.verdict}** | {v.evidence} |' for v in verdicts]
  return '\n'.join(lines)
