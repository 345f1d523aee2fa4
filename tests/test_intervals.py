"""Intervals and significance (comparenets.metrics.intervals) against hand-worked values and
scipy.stats' own implementations."""

import math

import numpy as np
import pytest
from scipy import stats

from comparenets.metrics import intervals

Z = 1.959963984540054  # the two-sided 95 % normal quantile
T2 = 4.302652729749464  # the two-sided 95 % Student-t quantile at 2 degrees of freedom


def test_mean_interval_of_three_seeds_by_hand():
  iv = intervals.mean_interval([0.7, 0.8, 0.9])
  assert iv.n == 3 and iv.mean == pytest.approx(0.8) and iv.std == pytest.approx(0.1)
  half = T2 * 0.1 / math.sqrt(3)  # 0.2484
  assert (iv.low, iv.high) == (pytest.approx(0.8 - half), pytest.approx(0.8 + half))
  assert round(iv.low, 4) == 0.5516


def test_mean_interval_matches_scipy_and_narrows_with_more_seeds():
  rng = np.random.default_rng(0)
  for n in (2, 3, 5, 20):
    values = rng.normal(1.0, 0.3, n)
    iv = intervals.mean_interval(values)
    low, high = stats.t.interval(0.95, n - 1, loc=values.mean(), scale=stats.sem(values))
    assert (iv.low, iv.high) == (pytest.approx(low), pytest.approx(high))
  wide = intervals.mean_interval([1.0, 2.0])
  narrow = intervals.mean_interval([1.0, 2.0] * 5)
  assert narrow.high - narrow.low < (wide.high - wide.low) / 5
  assert intervals.mean_interval([1, 2, 3], confidence=0.99).high > \
      intervals.mean_interval([1, 2, 3]).high


def test_one_value_has_a_mean_and_no_interval():
  iv = intervals.mean_interval([0.95])
  assert iv == intervals.MeanInterval(1, 0.95, None, None, None)
  same = intervals.mean_interval([0.5, 0.5, 0.5])  # no spread: a zero-width interval
  assert (same.std, same.low, same.high) == (0.0, 0.5, 0.5)
  with pytest.raises(ValueError, match='at least one value'):
    intervals.mean_interval([])


def test_wilson_by_hand():
  # 269 of 269 (the digits test split): the lower end n / (n + z^2), the upper end 1
  low, high = intervals.wilson(269, 269)
  assert low == pytest.approx(269 / (269 + Z * Z)) and high == 1.0
  assert round(low, 3) == 0.986
  # 0 of 10: the upper end (z^2 / n) / (1 + z^2 / n)
  assert intervals.wilson(0, 10) == (0.0, pytest.approx((Z * Z / 10) / (1 + Z * Z / 10)))
  # 5 of 10: symmetric around 1/2, half-width z / (1 + z^2/n) * sqrt(1/4n + z^2 / 4n^2)
  half = Z / (1 + Z * Z / 10) * math.sqrt(0.25 / 10 + Z * Z / 400)
  assert intervals.wilson(5, 10) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
  assert round(0.5 - half, 4) == 0.2366


def test_wilson_matches_the_score_test_inversion():
  """Wilson's interval is the set of p whose score test does not reject k of n: at each end
  the z statistic of the observed proportion is exactly the quantile."""
  for k, n in ((3, 7), (250, 269), (1, 1000), (999, 1000)):
    low, high = intervals.wilson(k, n)
    score = lambda p: (k / n - p) / math.sqrt(p * (1 - p) / n)
    assert score(low) == pytest.approx(Z) and score(high) == pytest.approx(-Z)


def test_wilson_rejects_impossible_counts():
  with pytest.raises(ValueError, match='trials > 0'):
    intervals.wilson(0, 0)
  with pytest.raises(ValueError, match=r'successes must be in \[0, 10\]'):
    intervals.wilson(11, 10)


def test_welch_by_hand():
  a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
  # squared standard errors (5/3) / 4 and 10 / 5; t = -3.5 / sqrt(2.41667)
  se2a, se2b = (5 / 3) / 4, 10 / 5
  result = intervals.welch(a, b)
  assert result.t == pytest.approx(-3.5 / math.sqrt(se2a + se2b))
  assert result.df == pytest.approx((se2a + se2b) ** 2 / (se2a ** 2 / 3 + se2b ** 2 / 4))
  assert round(result.df, 4) == 5.5208 and round(result.p, 4) == 0.0691


@pytest.mark.parametrize('seed', range(5))
def test_welch_matches_scipy(seed):
  rng = np.random.default_rng(seed)
  a = rng.normal(0.0, 1.0, rng.integers(2, 8))
  b = rng.normal(rng.uniform(0, 2), rng.uniform(0.2, 3), rng.integers(2, 8))
  ours, theirs = intervals.welch(a, b), stats.ttest_ind(a, b, equal_var=False)
  assert ours.t == pytest.approx(theirs.statistic)
  assert ours.p == pytest.approx(theirs.pvalue)
  assert ours.df == pytest.approx(theirs.df)


def test_welch_without_spread_and_with_too_few_values():
  assert intervals.welch([1.0, 1.0], [1.0, 1.0]).p == 1.0
  apart = intervals.welch([1.0, 1.0], [2.0, 2.0])
  assert apart.t == -math.inf and apart.p == 0.0 and math.isnan(apart.df)
  with pytest.raises(ValueError, match='two values or more a side, not 1 and 3'):
    intervals.welch([1.0], [1.0, 2.0, 3.0])
