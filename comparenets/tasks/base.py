"""What a task supplies to the one train loop: data, input adapters, head, loss and metrics.

A task knows input kinds ('image', 'sequence', 'video'), never backbones. The train loop asks it:

* ``check_input_kind(kind, model)``: can the task feed this kind of input? (a `ConfigError` if
  not, raised before anything is compiled);
* ``splits()``: the data, ``{split: {name: array}}`` with 'train', 'validation' and 'test';
* ``adapt(batch, kind) -> (x, mask)``: the batch turned into what that kind of backbone reads
  (traced inside the compiled step, so it costs no host work);
* ``head(**config.head)``: the module put on top of the backbone's `Features`;
* ``per_example(outputs, batch) -> {metric: [B]}``: per-example values, 'loss' among them; the
  training objective is the mean of 'loss', evaluation sums every entry over a split;
* ``finalize(sums) -> metrics``: evaluation sums (and 'count') turned into the reported metrics;
* ``split_metrics(predict, split) -> metrics``: optional, metrics that are not sums over
  examples (mAP, a best-threshold F-score), from the predictions of a whole split, on the host.

After training, process 0 asks it for what a person looks at:

* ``write_artifacts(model, variables, workdir, rng)``: files such as generated text, and extra
  results;
* ``figures(predict)``: figures of the trained model's predictions (a confusion matrix, test
  images with their labels, forecasts against the truth, ...), which `comparenets.plots` writes
  to ``<workdir>/plots/<name>.png`` and to TensorBoard as images. A new task (detection,
  super-resolution) plugs its pictures in with this one method.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, ClassVar, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from comparenets.data import pipeline
from comparenets.errors import ConfigError


@dataclasses.dataclass
class Task:
  """Base class; subclasses are dataclasses whose fields are the task's config fields."""

  name: ClassVar[str] = ''
  input_kinds: ClassVar[tuple[str, ...]] = ()
  # The metric that model selection and reports look at, and whether higher is better.
  target_metric: ClassVar[str] = 'loss'
  higher_is_better: ClassVar[bool] = False
  # Per-field rules for `config_utils.check_values` (min, max, choices).
  config_rules: ClassVar[dict[str, dict[str, Any]]] = {}
  # True for tasks that predict what comes next: they need a backbone whose output at step t
  # depends on steps <= t only (no bidirectional RNN).
  requires_causal: ClassVar[bool] = False
  head_rules: ClassVar[dict[str, dict[str, Any]]] = {'dropout': {'max': 1.0}}

  def check_input_kind(self, kind: str, model: str) -> None:
    if kind not in self.input_kinds:
      raise ConfigError(f'task {self.name!r} cannot feed model {model!r}: it reads {kind} '
                        f'input and this task gives {" or ".join(self.input_kinds)}')

  def splits(self) -> Mapping[str, Mapping[str, np.ndarray]]:
    raise NotImplementedError

  def train_sampler(self, batch_size: int, seed: int):
    """An object whose ``batch(step)`` is the training batch of that step, a pure function of
    (seed, step) so that resumed runs see the same data. Default: shuffled epochs over
    ``splits()['train']``; tasks that generate data on the fly override it."""
    return self.streamed(pipeline.EpochSampler(self.splits()['train'], batch_size, seed))

  def streamed(self, sampler):
    """``sampler``, read ahead by grain worker processes where the task has a ``read_workers``
    field above 0 (`pipeline.StreamedSampler`; the same batches)."""
    workers = getattr(self, 'read_workers', 0)
    return pipeline.StreamedSampler(sampler, workers) if workers else sampler

  def stem(self) -> nn.Module | None:
    """A module applied to the adapted input before the backbone (e.g. a token embedding)."""
    return None

  def adapt(self, batch: Mapping[str, jax.Array], kind: str):
    raise NotImplementedError

  def head(self, **kwargs: Any) -> nn.Module:
    raise NotImplementedError

  def head_fields(self) -> dict[str, Any]:
    """The head's config fields and their defaults (the keyword arguments of `head`)."""
    return {name: p.default for name, p in inspect.signature(self.head).parameters.items()}

  def per_example(self, outputs: Any, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    raise NotImplementedError

  def finalize(self, sums: Mapping[str, float]) -> dict[str, float]:
    count = float(sums['count'])
    return {k: float(v) / count for k, v in sums.items() if k != 'count'}

  def split_metrics(self, predict: Callable[[Mapping[str, np.ndarray]], np.ndarray],
                    split: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Metrics of a whole split that are not sums over examples (mAP over every detection of
    the split, an F-score at the one threshold best for the split), from the model's
    predictions (``predict`` as in `figures`). Merged into the split's metrics at every
    evaluation (validation and test), computed on the host by every process; every process
    calls it at the same point, so it may share the work and gather the results
    (`parallel.gather`, as super_resolution does). Default: none, and then the train loop
    never calls it."""
    del predict, split
    return {}

  def score(self, outputs: np.ndarray, split: str) -> dict[str, float]:
    """The task's metrics for given outputs (a model's, or a baseline's in the model's output
    form) on every example of ``splits()[split]``: `per_example` summed over the split, then
    `finalize`, as evaluation scores a model, so baselines and models are scored by one code."""
    batch = {k: jnp.asarray(v) for k, v in self.splits()[split].items()}
    per = self.per_example(jnp.asarray(outputs, jnp.float32), batch)
    sums = {k: float(np.sum(v)) for k, v in per.items()}
    sums['count'] = len(outputs)
    return self.finalize(sums)

  def write_artifacts(self, model: nn.Module, variables: Any, workdir: str, rng) -> dict:
    """Called once after training (process 0): saves samples such as generated text into
    ``workdir`` and returns extra results. Default: nothing."""
    del model, variables, workdir, rng
    return {}

  def figures(self, predict: Callable[[Mapping[str, np.ndarray]], np.ndarray]
              ) -> dict[str, Any]:
    """Figures of the trained model's predictions, ``{name: matplotlib Figure}``.

    ``predict(arrays)`` returns the model's outputs (NumPy) for a dict of arrays shaped like a
    split (e.g. ``{'inputs': images}`` or ``self.splits()['test']``), any number of examples:
    it applies the input adapter and the model in padded batches on one device. Build figures
    with the helpers of `comparenets.figures` (`confusion_matrix`, `image_predictions`,
    `forecasts`, `image_comparison` for super-resolution, `detections` for boxes). Called once
    after training on process 0; keep it to a few seconds. Default: none.
    """
    del predict
    return {}

  def describe(self) -> dict[str, Any]:
    """Fields that identify the task's setting, for results and reports."""
    return {'name': self.name, **dataclasses.asdict(self)}


@dataclasses.dataclass
class GeneratedTask(Task):
  """A task whose data is generated: ``generate(rng, n)`` makes n examples; training batches
  are generated per step (`pipeline.GeneratedSampler`), validation and test sets once, from
  seeds no training batch uses (`pipeline.generated_splits`)."""
  validation_size: int = 1000
  test_size: int = 1000
  data_seed: int = 0

  def generate(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    raise NotImplementedError

  def train_sampler(self, batch_size, seed):
    return pipeline.GeneratedSampler(self.generate, batch_size, seed)

  def splits(self):
    if not hasattr(self, '_splits'):
      self._splits = pipeline.generated_splits(  # pylint: disable=attribute-defined-outside-init
          self.generate, self.data_seed, self.validation_size, self.test_size)
    return self._splits


# The model applied to a task's arrays on the host: `Task.figures` and `Task.split_metrics` get
# such a ``predict``; the train loop builds it after training and at every evaluation.


def make_apply(task, model, input_kind: str):
  """The jitted ``apply(variables, batch) -> outputs`` of `make_predict`: build it once and
  pass it to every `make_predict` of the same model (one compilation per batch shape)."""

  @jax.jit
  def apply(variables, batch):
    x, mask = task.adapt(batch, input_kind)
    return model.apply(variables, x, mask, train=False)

  return apply


def make_predict(task, model, input_kind: str, variables, batch_size: int = 256,
                 apply=None) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
  """``predict(arrays)``: the model's outputs (NumPy) for every example of ``arrays`` (a dict
  of arrays or a split, lazily read ones included), through the task's input adapter, in padded
  batches of ``batch_size`` (one compilation), on this process's first device. ``apply`` is a
  `make_apply` to reuse (one is made otherwise)."""
  apply = apply or make_apply(task, model, input_kind)
  device = jax.local_devices()[0]  # this process's own (only process 0 plots)
  variables = jax.device_put(variables, device)

  def predict(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    n = pipeline.split_size(arrays)
    size = min(batch_size, max(n, 1))
    outputs = []
    for batch in pipeline.eval_batches(arrays, size):
      real = int(batch.pop('weight').sum())
      out = jax.device_get(apply(variables, jax.device_put(batch, device)))
      outputs.append(np.asarray(out)[:real])
    return np.concatenate(outputs)

  return predict
