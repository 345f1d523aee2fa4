"""Intervals and significance for numbers measured over a few seeds or a finite test split.

* `mean_interval`: the mean over seeds with its sample standard deviation and Student-t
  interval. With one value there is no spread to estimate, so the interval is undefined (None),
  never a zero-width interval that would look certain.
* `wilson`: the Wilson score interval of a proportion (k successes in n trials), e.g. a test
  accuracy on n test examples. Unlike the normal approximation it stays inside [0, 1] and is
  not zero-width at 0 % or 100 %: 269 of 269 correct gives about [0.986, 1].
* `welch`: Welch's t-test of two samples' means (unequal variances, Welch-Satterthwaite
  degrees of freedom, two-sided p): whether a difference between two models is larger than
  their seed spread. Seeds are few and their variances differ between families, which is what
  Welch's test is for (Student's pooled test assumes equal variances).

The t and normal quantiles come from scipy.stats; everything else is the closed form, written
out so the tests can check it by hand.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class MeanInterval:
  """A mean over n values; ``std`` (sample, ddof=1), ``low`` and ``high`` are None for n = 1."""
  n: int
  mean: float
  std: float | None
  low: float | None
  high: float | None


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanInterval:
  """Mean, sample standard deviation and the Student-t interval ``mean +- t * std / sqrt(n)``
  (t the two-sided quantile at n - 1 degrees of freedom). One value: mean only (std and the
  interval None). No values: a ValueError."""
  values = np.asarray(values, dtype=float)
  n = len(values)
  if n == 0:
    raise ValueError('an interval needs at least one value')
  mean = float(values.mean())
  if n == 1:
    return MeanInterval(1, mean, None, None, None)
  std = float(values.std(ddof=1))
  half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
  return MeanInterval(n, mean, std, mean - half, mean + half)


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
  """The Wilson score interval of the proportion ``successes / trials``:
  ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``, z the two-sided normal
  quantile. Clipped to [0, 1] against rounding."""
  if trials <= 0:
    raise ValueError(f'a proportion needs trials > 0, not {trials}')
  if not 0 <= successes <= trials:
    raise ValueError(f'successes must be in [0, {trials}], not {successes}')
  z = float(stats.norm.ppf(0.5 + confidence / 2))
  n, p = float(trials), successes / trials
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  return max(0.0, centre - half), min(1.0, centre + half)


@dataclasses.dataclass(frozen=True)
class Welch:
  """Welch's t statistic (mean of a minus mean of b over the standard error), its
  Welch-Satterthwaite degrees of freedom and the two-sided p-value."""
  t: float
  df: float
  p: float


def welch(a: Sequence[float], b: Sequence[float]) -> Welch:
  """Welch's t-test of mean(a) = mean(b). Each sample needs two values or more (a ValueError
  otherwise: one value has no spread). Both samples without any spread (every value of each
  the same, e.g. deterministic runs): equal means give t = 0, p = 1; different means t = +-inf,
  p = 0 (the difference is certain at that spread); df is then undefined (nan)."""
  a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
  if len(a) < 2 or len(b) < 2:
    raise ValueError(f"Welch's t-test needs two values or more a side, not {len(a)} and "
                     f'{len(b)}')
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)  # squared standard errors
  diff = float(a.mean() - b.mean())
  if va + vb == 0:
    if diff == 0:
      return Welch(0.0, math.nan, 1.0)
    return Welch(math.copysign(math.inf, diff), math.nan, 0.0)
  t = diff / math.sqrt(va + vb)
  df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
  return Welch(float(t), float(df), float(2 * stats.t.sf(abs(t), df)))
