"""Which runs the report and the claims audit read: each model at its tuned learning rate.

A (task setting, model) may have runs at several learning rates (a sweep writes its members as
``<task>/<model>/lr<value>/seed<N>``). The learning rate kept is the one with the best mean
VALIDATION target metric over its seeds, in the task's direction (`Task.higher_is_better`);
the test split is never looked at to choose, so the test numbers reported at that rate are an
honest estimate. Runs at the other rates are left out of the tables, plots and claims, and
`Choice` records what was swept and what was chosen for the report to say.

With one learning rate per (task setting, model), as in a suite without a sweep, every run is
kept and nothing changes.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import re
from typing import Any, Sequence

import numpy as np

from comparenets import tasks
from comparenets import workdir as workdirs
from comparenets.errors import ConfigError

SEED_PART = re.compile(r'/seed(\d+)$')
LR_PART = re.compile(r'/lr([^/]+)(?=/|$)')


def _path(run: dict[str, Any]) -> str:
  return run['workdir'].replace(os.sep, '/')


def base(run: dict[str, Any]) -> str:
  """The run's directory without its ``/seedN`` ending and ``/lr<value>`` part: the
  (task setting, model) whose learning rates are compared."""
  return LR_PART.sub('', SEED_PART.sub('', _path(run)))


def learning_rate(run: dict[str, Any], root: str | None = None) -> float | None:
  """The run's peak learning rate: the ``lr<value>`` part of its directory (how a sweep names
  its members), else ``train.learning_rate`` of its config.json under ``root``, else None."""
  match = LR_PART.search(_path(run))
  if match:
    try:
      return float(match.group(1))
    except ValueError:
      pass  # a directory named like 'lrfoo' is no learning rate: ask the config
  if root is not None:
    text = workdirs.read_text(workdirs.join(root, run['workdir'], 'config.json'))
    if text is not None:
      rate = (json.loads(text).get('train') or {}).get('learning_rate')
      if rate is not None:
        return float(rate)
  return None


def higher_is_better(run: dict[str, Any]) -> bool:
  """The direction of the run's target metric, from its task's registry entry."""
  name = (run.get('task') or {}).get('name')
  if name not in tasks.REGISTRY:
    raise ConfigError(f"run {run['workdir']}: task {name!r} is not in the task registry, so "
                      f"whether a higher {run['target_metric']} is better is unknown; cannot "
                      'choose its learning rate')
  return tasks.REGISTRY[name].higher_is_better


@dataclasses.dataclass(frozen=True)
class Choice:
  """One (task setting, model): ``swept`` is {learning rate (None: unknown): (mean validation
  target metric over its seeds, number of seeds)} in increasing order; ``chosen`` the rate
  kept. ``higher_is_better`` is None when one rate was all there was (nothing to compare)."""
  base: str
  model: str
  metric: str
  swept: dict[float | None, tuple[float, int]]
  chosen: float | None
  higher_is_better: bool | None

  @property
  def was_swept(self) -> bool:
    return len(self.swept) > 1


def _order(rate: float | None) -> tuple[bool, float]:
  return rate is None, rate or 0.0


def choose(runs: Sequence[dict[str, Any]], root: str | None = None
           ) -> tuple[list[dict[str, Any]], list[Choice]]:
  """(the runs kept, in their order; one `Choice` per (task setting, model)).

  Where a (task setting, model) has several learning rates, the kept one has the best mean
  validation target metric over its seeds; a rate whose mean is NaN or infinite is never
  chosen over a finite one, and of equal means the smallest rate is kept."""
  by_base: dict[str, dict[float | None, list[dict[str, Any]]]] = collections.OrderedDict()
  for r in runs:
    by_base.setdefault(base(r), {}).setdefault(learning_rate(r, root), []).append(r)
  keep, choices = set(), []
  for name, rates in by_base.items():
    first = next(iter(rates.values()))[0]
    metric = first['target_metric']
    rates = dict(sorted(rates.items(), key=lambda kv: _order(kv[0])))
    # (a run without a validation record, as synthetic ones in tests, counts as NaN)
    swept = {rate: (float(np.mean([(r.get('validation') or {}).get(metric, math.nan)
                                   for r in members])), len(members))
             for rate, members in rates.items()}
    if len(rates) == 1:
      chosen, higher = next(iter(rates)), None
    else:
      higher = higher_is_better(first)
      sign = 1.0 if higher else -1.0
      score = lambda rate: sign * swept[rate][0] if math.isfinite(swept[rate][0]) else -math.inf
      chosen = max(rates, key=score)  # max keeps the first (smallest rate) of equal scores
    keep.update(id(r) for r in rates[chosen])
    choices.append(Choice(name, first['model'], metric, swept, chosen, higher))
  return [r for r in runs if id(r) in keep], choices


def chosen_runs(runs: Sequence[dict[str, Any]], root: str | None = None) -> list[dict[str, Any]]:
  """The runs `choose` keeps: each (task setting, model) at its chosen learning rate only."""
  return choose(runs, root)[0]
