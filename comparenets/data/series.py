"""Time series: two benchmark systems generated offline, Mackey-Glass (univariate) and Lorenz-63
(3 variables), and one real series, the yearly sunspot numbers that ship with statsmodels.

The generated ones are integrated with the classical fourth-order Runge-Kutta method at a small
internal step and then sampled every ``sample_every`` time units.
"""

from __future__ import annotations

import functools

import numpy as np

from comparenets.errors import DatasetNotFoundError

STATSMODELS_INSTALL = "pip install 'statsmodels>=0.14.2,<0.16'"


@functools.lru_cache(maxsize=8)
def mackey_glass(n: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1,
                 power: float = 10.0, dt: float = 0.1, sample_every: float = 1.0,
                 x0: float = 1.2, discard: int = 1000) -> np.ndarray:
  """``n`` samples of dx/dt = beta x(t - tau) / (1 + x(t - tau)^power) - gamma x(t).

  The history before t = 0 is the constant ``x0``. RK4 needs the delayed value at half steps;
  it is interpolated linearly between the stored grid values (tau / dt must be an integer).
  The first ``discard`` samples (the transient) are dropped. Returns float64 ``[n, 1]``.
  """
  lag = tau / dt
  if abs(lag - round(lag)) > 1e-9:
    raise ValueError(f'tau / dt must be an integer, got {tau} / {dt}')
  lag = int(round(lag))
  every = int(round(sample_every / dt))
  steps = (n + discard) * every
  x = np.empty(steps + 1)
  x[0] = x0

  def delayed(i: float) -> float:  # x at grid position i - lag (possibly half-integer)
    j = i - lag
    if j < 0:
      return x0
    lo = int(np.floor(j))
    frac = j - lo
    return x[lo] if frac == 0 else (1 - frac) * x[lo] + frac * x[lo + 1]

  f = lambda xt, xd: beta * xd / (1.0 + xd ** power) - gamma * xt
  for i in range(steps):
    d0, dh, d1 = delayed(i), delayed(i + 0.5), delayed(i + 1)
    k1 = f(x[i], d0)
    k2 = f(x[i] + 0.5 * dt * k1, dh)
    k3 = f(x[i] + 0.5 * dt * k2, dh)
    k4 = f(x[i] + dt * k3, d1)
    x[i + 1] = x[i] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
  return x[::every][discard:discard + n, None].copy()


@functools.lru_cache(maxsize=8)
def lorenz(n: int, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
           dt: float = 0.01, sample_every: float = 0.05, discard: int = 500) -> np.ndarray:
  """``n`` samples of the Lorenz-63 system from (1, 1, 1); returns float64 ``[n, 3]``."""
  def f(s):
    x, y, z = s
    return np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])
  every = int(round(sample_every / dt))
  s = np.ones(3)
  out = np.empty((n + discard, 3))
  for i in range((n + discard) * every):
    k1 = f(s)
    k2 = f(s + 0.5 * dt * k1)
    k3 = f(s + 0.5 * dt * k2)
    k4 = f(s + dt * k3)
    s = s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    if (i + 1) % every == 0:
      out[(i + 1) // every - 1] = s
  return out[discard:].copy()


@functools.lru_cache(maxsize=1)
def sunspots() -> np.ndarray:
  """The yearly mean sunspot numbers of 1700 to 2008 (statsmodels' ``sunspots`` dataset, from
  the Solar Influences Data Analysis Center and NOAA): float64 ``[309, 1]``, one value a year,
  no gaps (checked)."""
  try:
    # statsmodels (with pandas) takes over a second to import; only this series needs it
    from statsmodels.datasets import sunspots as dataset  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DatasetNotFoundError(f'the sunspots series ships with statsmodels, which is not '
                               f'installed: {STATSMODELS_INSTALL}') from None
  frame = dataset.load().data
  years = frame['YEAR'].to_numpy()
  if len(years) < 2 or np.any(np.diff(years) != 1):
    raise ValueError('statsmodels\' sunspots series is not one value a year without gaps')
  return frame['SUNACTIVITY'].to_numpy(np.float64)[:, None]
