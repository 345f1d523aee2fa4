"""Multi-step forecasting of a generated benchmark series or a real one (sequence prediction).

Windows of ``context`` steps predict the next ``horizon`` steps. The series is split
chronologically into train / validation / test parts (no window crosses a boundary) and
normalised with the mean and standard deviation of the training part only.

Metrics per horizon step h: ``nrmse_h`` (RMSE of the normalised series, i.e. RMSE divided by the
training part's standard deviation, averaged over variables as mean squared error) and
``rmse_h`` (in the series' own units); ``nrmse`` over all steps is the target metric. After
training, two baselines are scored by the same evaluation on the test windows: persistence
(repeat the last observed value) and a linear autoregression fitted by least squares on the
training windows. ``results.json`` gets them under 'baselines' and, per horizon step, whether
the model beat both.
"""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np

from comparenets import figures
from comparenets.data import series as series_data
from comparenets.models.heads import ClassificationHead
from comparenets.tasks.base import Task
from comparenets import workdir as workdirs

# Generated: ``f(length, sample_every)``; real: the whole recorded series (``length`` and
# ``sample_every`` do not apply).
SERIES = {'mackey_glass': series_data.mackey_glass, 'lorenz': series_data.lorenz}
REAL_SERIES = {'sunspots': series_data.sunspots}
# Sampling interval (time units) when ``sample_every`` is 0. Mackey-Glass sampled every time
# unit is so smooth that a linear autoregression predicts the next sample with NRMSE 0.0005;
# every 3 time units (32 samples of context span ~5.6 delays) leaves it 0.088 (measured with
# Forecasting.baselines()).
DEFAULT_SAMPLE_EVERY = {'mackey_glass': 3.0, 'lorenz': 0.05}


@dataclasses.dataclass
class Forecasting(Task):
  series: str = 'mackey_glass'
  sample_every: float = 0.0      # time units between samples; 0: the series' default above
  length: int = 6000              # samples generated (a real series is used whole)
  context: int = 32
  horizon: int = 12
  stride: int = 1
  train_fraction: float = 0.7
  validation_fraction: float = 0.1

  name = 'forecasting'
  input_kinds = ('sequence',)
  target_metric = 'nrmse'
  higher_is_better = False
  config_rules = {
      'series': {'choices': tuple(SERIES) + tuple(REAL_SERIES)},
      'length': {'min': 100},
      'train_fraction': {'min': 0.1, 'max': 0.9},
      'validation_fraction': {'min': 0.05, 'max': 0.5},
  }

  def _raw(self) -> np.ndarray:
    if self.series in REAL_SERIES:
      return REAL_SERIES[self.series]()
    every = self.sample_every or DEFAULT_SAMPLE_EVERY[self.series]
    return SERIES[self.series](self.length, sample_every=every)

  def _parts(self):
    x = self._raw()
    n_train = int(len(x) * self.train_fraction)
    n_val = int(len(x) * self.validation_fraction)
    parts = {'train': x[:n_train], 'validation': x[n_train:n_train + n_val],
             'test': x[n_train + n_val:]}
    mean, std = parts['train'].mean(0), parts['train'].std(0)
    return parts, mean, std

  def scale(self) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the training part (per variable)."""
    _, mean, std = self._parts()
    return mean, std

  def _windows(self, part: np.ndarray) -> dict[str, np.ndarray]:
    total = self.context + self.horizon
    starts = np.arange(0, len(part) - total + 1, self.stride)
    if not len(starts):
      raise ValueError(f'a part of {len(part)} steps is too short for context + horizon = '
                       f'{total}; use a longer series')
    idx = starts[:, None] + np.arange(total)[None]
    w = part[idx].astype(np.float32)
    return {'inputs': w[:, :self.context], 'target': w[:, self.context:]}

  def splits(self):
    if not hasattr(self, '_splits'):
      parts, mean, std = self._parts()
      self._splits = {  # pylint: disable=attribute-defined-outside-init
          k: self._windows((v - mean) / std) for k, v in parts.items()}
    return self._splits

  def adapt(self, batch, kind):
    return batch['inputs'], None

  def head(self, hidden: tuple[int, ...] = ()):
    variables = self._raw().shape[1]
    return ClassificationHead(self.horizon * variables, tuple(hidden))

  def per_example(self, outputs, batch):
    target = batch['target']
    pred = outputs.reshape(target.shape)
    sq = (pred - target) ** 2                       # [B, H, D], normalised units
    _, std = self.scale()
    sq_units = sq * jnp.asarray(std, sq.dtype) ** 2
    out = {'loss': sq.mean((1, 2))}
    for h in range(self.horizon):
      out[f'sq_h{h + 1}'] = sq[:, h].mean(-1)
      out[f'sq_units_h{h + 1}'] = sq_units[:, h].mean(-1)
    return out

  def finalize(self, sums):
    count = float(sums['count'])
    out = {'loss': float(sums['loss']) / count}
    per_step = []
    for h in range(1, self.horizon + 1):
      mse = float(sums[f'sq_h{h}']) / count
      per_step.append(mse)
      out[f'nrmse_h{h}'] = mse ** 0.5
      out[f'rmse_h{h}'] = (float(sums[f'sq_units_h{h}']) / count) ** 0.5
    out['nrmse'] = float(np.mean(per_step)) ** 0.5
    return out

  def baseline_predictions(self, split: str = 'test') -> dict[str, np.ndarray]:
    """Persistence and least-squares linear autoregression: ``{name: [N, horizon, D]}``,
    normalised like the split's windows."""
    data, train = self.splits()[split], self.splits()['train']
    persistence = np.repeat(data['inputs'][:, -1:], self.horizon, axis=1)
    design = lambda x: np.concatenate([x.reshape(len(x), -1), np.ones((len(x), 1))], 1)
    coef, *_ = np.linalg.lstsq(design(train['inputs']).astype(np.float64),
                               train['target'].reshape(len(train['target']), -1), rcond=None)
    linear = (design(data['inputs']) @ coef).reshape(data['target'].shape)
    return {'persistence': persistence, 'linear_ar': linear}

  def baselines(self, split: str = 'test') -> dict[str, dict[str, float]]:
    """Persistence and least-squares linear autoregression, scored like the models."""
    return {name: self.score(pred, split)
            for name, pred in self.baseline_predictions(split).items()}

  def write_artifacts(self, model, variables, workdir, rng):
    del rng
    base = self.baselines('test')
    test = self.splits()['test']
    preds = []
    for start in range(0, len(test['inputs']), 1024):
      out = model.apply(variables, jnp.asarray(test['inputs'][start:start + 1024]), None)
      preds.append(np.asarray(out).reshape(-1, self.horizon, test['target'].shape[-1]))
    model_metrics = self.score(np.concatenate(preds), 'test')
    beats = {f'h{h}': all(model_metrics[f'nrmse_h{h}'] < b[f'nrmse_h{h}'] for b in base.values())
             for h in range(1, self.horizon + 1)}
    workdirs.write_text(workdirs.join(workdir, 'forecast_baselines.json'),
                        json.dumps({'model': model_metrics, **base}, indent=2))
    return {'baselines': base, 'beats_baselines': beats,
            'beats_baselines_everywhere': all(beats.values())}

  def figures(self, predict, windows: int = 3):
    """Test windows, evenly spread: the context, the truth, the model's forecast and the
    linear-AR baseline's, in the series' own units."""
    test = self.splits()['test']
    idx = np.linspace(0, len(test['inputs']) - 1, windows).round().astype(int)
    shape = test['target'][idx].shape
    model = predict({'inputs': test['inputs'][idx]}).reshape(shape)
    linear = self.baseline_predictions('test')['linear_ar'][idx]
    mean, std = self.scale()
    units = lambda x: x * std + mean
    names = ('x', 'y', 'z') if self.series == 'lorenz' else (self.series,)
    return {'forecasts': figures.forecasts(
        units(test['inputs'][idx]), units(test['target'][idx]),
        {'model': units(model), 'linear AR': units(linear)}, names,
        title=f'{self.series}: {self.horizon}-step forecasts of test windows')}
