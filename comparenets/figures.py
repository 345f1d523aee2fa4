"""Figures of a trained model's predictions: the drawing helpers the tasks' ``figures`` hooks use.

`confusion_matrix` and `image_predictions` / `clip_predictions` (classification), `forecasts`,
`scatter_truth` and `token_recall` (sequence outputs), `image_comparison` (e.g. low resolution |
bicubic | model | truth for super-resolution) and `detections` (predicted and true boxes drawn on
the images). `comparenets.plots` writes what they return to a run's ``plots/`` and TensorBoard.

Everything here draws on `matplotlib.figure.Figure` with the Agg canvas: no pyplot, no display,
no global backend switch (safe in a training process and inside a notebook, where a returned
`Figure` is shown inline). matplotlib is imported inside the functions, on first use, so that
importing a task (and so this module) in a training process or a notebook does not load it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
  from matplotlib.figure import Figure

_RIGHT, _WRONG = '#1a7f37', '#cf222e'


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1,
               squeeze: bool = False, **kwargs: Any):
  """A detached Agg-backed figure and its axes (a 2-D array unless ``squeeze``)."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top,redefined-outer-name
  fig = Figure(figsize=(width, height))
  axes = fig.subplots(rows, cols, squeeze=squeeze, **kwargs)
  return fig, axes


def render(fig: 'Figure') -> np.ndarray:
  """The figure drawn once by Agg: ``uint8 [H, W, 4]`` RGBA."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba()).copy()


def png_bytes(rgba: np.ndarray) -> bytes:
  """An RGBA image encoded as PNG (no second rendering)."""
  from matplotlib import image as mpimg  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  mpimg.imsave(buffer, rgba, format='png')
  return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Classification


def confusion_counts(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """``counts[true, predicted]``, int64 ``[num_classes, num_classes]``."""
  counts = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(counts, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
  return counts


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     class_names: Sequence[str] | None = None, title: str = '') -> 'Figure':
  """Counts of (true, predicted) pairs, coloured by the share of each true class."""
  counts = confusion_counts(labels, predictions, num_classes)
  names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
  shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
  side = 1.6 + 0.42 * num_classes
  fig, axes = new_figure(side + 1.0, side)
  ax = axes[0, 0]
  im = ax.imshow(shares, cmap='Blues', vmin=0.0, vmax=1.0)
  for (i, j), n in np.ndenumerate(counts):
    if n:
      ax.text(j, i, str(n), ha='center', va='center', fontsize=8,
              color='white' if shares[i, j] > 0.5 else 'black')
  ax.set_xticks(range(num_classes), names, fontsize=8)
  ax.set_yticks(range(num_classes), names, fontsize=8)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  accuracy = np.trace(counts) / max(counts.sum(), 1)
  ax.set_title(f'{title} (accuracy {accuracy:.3f}, {counts.sum()} examples)'.strip(),
               fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='share of the true class')
  fig.tight_layout()
  return fig


def _show_image(ax, image: np.ndarray) -> None:
  image = np.asarray(image, np.float32)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    ax.imshow(image, cmap='gray', vmin=0.0, vmax=1.0, interpolation='nearest')
  else:
    ax.imshow(np.clip(image, 0.0, 1.0), interpolation='nearest')
  ax.set_xticks([])
  ax.set_yticks([])


def pick_examples(labels: np.ndarray, predictions: np.ndarray, n: int) -> np.ndarray:
  """Up to ``n`` example indices: the misclassified first (at most half), then correct ones,
  each group in split order."""
  wrong = np.flatnonzero(labels != predictions)
  right = np.flatnonzero(labels == predictions)
  take_wrong = wrong[:min(len(wrong), max(n // 2, n - len(right)))]
  return np.concatenate([take_wrong, right[:n - len(take_wrong)]]).astype(np.int64)


def image_predictions(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                      class_names: Sequence[str] | None = None, n: int = 24,
                      cols: int = 8, title: str = '') -> 'Figure':
  """A grid of the first ``n`` images ``[N, H, W, C]`` in [0, 1], each titled 'predicted /
  true' (red when wrong). `pick_examples` chooses which to show, errors first."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  idx = np.arange(min(n, len(images)))
  name = (lambda c: class_names[c]) if class_names else str
  rows = max(1, -(-len(idx) // cols))
  fig, axes = new_figure(1.25 * cols, 1.4 * rows + 0.4, rows, cols)
  for ax in axes.ravel():
    ax.axis('off')
  for ax, i in zip(axes.ravel(), idx):
    ax.axis('on')
    _show_image(ax, images[i])
    wrong = labels[i] != predictions[i]
    ax.set_title(f'{name(int(predictions[i]))} / {name(int(labels[i]))}', fontsize=8,
                 color=_WRONG if wrong else _RIGHT)
  fig.suptitle(f'{title}: predicted / true label, misclassified in red'.lstrip(': '),
               fontsize=9)
  fig.tight_layout()
  return fig


def clip_predictions(clips: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                     class_names: Sequence[str] | None = None, n: int = 6,
                     title: str = '') -> 'Figure':
  """Video clips ``[N, T, H, W, C]`` in [0, 1] as strips of frames, one row per clip (the
  first ``n``), each row labelled 'predicted / true' (red when wrong) and the columns by frame.
  `pick_examples` chooses which to show, errors first."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  rows = max(1, min(n, len(clips)))
  frames = clips.shape[1]
  name = (lambda c: class_names[c]) if class_names else str
  fig, axes = new_figure(1.1 * frames + 1.2, 1.15 * rows + 0.5, rows, frames)
  for ax in axes.ravel():
    ax.axis('off')
  for i in range(min(n, len(clips))):
    wrong = labels[i] != predictions[i]
    for t in range(frames):
      ax = axes[i, t]
      ax.axis('on')
      _show_image(ax, clips[i, t])
      if i == 0:
        ax.set_title(f'frame {t + 1}', fontsize=8)
    axes[i, 0].set_ylabel(f'{name(int(predictions[i]))}\n/ {name(int(labels[i]))}', fontsize=8,
                          color=_WRONG if wrong else _RIGHT, rotation=0, ha='right',
                          va='center')
  fig.suptitle(f'{title}: predicted / true label, misclassified in red'.lstrip(': '),
               fontsize=9)
  fig.tight_layout()
  return fig


# ---------------------------------------------------------------------------------------------
# Regression and sequence prediction


def forecasts(context: np.ndarray, truth: np.ndarray, predictions: Mapping[str, np.ndarray],
              variable_names: Sequence[str] | None = None, title: str = '') -> 'Figure':
  """Forecast windows side by side: ``context [N, C, D]`` then ``truth [N, H, D]`` against
  each ``predictions[label] [N, H, D]``; one column per window, one row per variable."""
  n, c, d = context.shape
  h = truth.shape[1]
  names = list(variable_names) if variable_names else [f'x{k}' for k in range(d)]
  fig, axes = new_figure(3.6 * n, 2.3 * d + 0.5, d, n)
  past, future = np.arange(-c + 1, 1), np.arange(1, h + 1)
  for w in range(n):
    for k in range(d):
      ax = axes[k, w]
      ax.plot(past, context[w, :, k], color='0.35', lw=1.2, label='context')
      ax.plot(np.r_[0, future], np.r_[context[w, -1, k], truth[w, :, k]], color='black',
              lw=1.6, label='truth')
      for i, (label, pred) in enumerate(predictions.items()):
        ax.plot(np.r_[0, future], np.r_[context[w, -1, k], pred[w, :, k]], color=f'C{i}',
                lw=1.4, linestyle='-' if i == 0 else '--', marker='.', markersize=4,
                label=label)
      ax.axvline(0.5, color='0.8', lw=0.8)
      if w == 0:
        ax.set_ylabel(names[k])
      if k == d - 1:
        ax.set_xlabel('step (forecast after the line)')
      ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=7, loc='best')
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def piano_roll(truth: np.ndarray, probabilities: np.ndarray, lowest_key: int,
               steps_per_quarter: int, title: str = '') -> 'Figure':
  """A piano roll against a model's next-step probabilities: ``truth [T, K]`` (0/1) and
  ``probabilities [T, K]``, key ``k`` being MIDI ``lowest_key + k``; time runs left to right in
  quarter notes, the true notes outlined on the probabilities."""
  t, k = truth.shape
  fig, axes = new_figure(max(6.0, min(16.0, 0.06 * t + 2.0)), 5.2, 2, 1, sharex=True)
  extent = (0, t / steps_per_quarter, lowest_key - 0.5, lowest_key + k - 0.5)
  for ax, image, label in ((axes[0, 0], truth, 'truth'),
                           (axes[1, 0], probabilities, 'predicted probability')):
    im = ax.imshow(np.asarray(image, float).T, origin='lower', aspect='auto', extent=extent,
                   cmap='Greys' if label == 'truth' else 'magma_r', vmin=0.0, vmax=1.0,
                   interpolation='nearest')
    ax.set_ylabel(f'{label}\nMIDI key')
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
  steps, keys = np.nonzero(truth)
  axes[1, 0].scatter((steps + 0.5) / steps_per_quarter, lowest_key + keys, s=6, marker='s',
                     facecolors='none', edgecolors='#1f77b4', linewidths=0.5, label='true notes')
  axes[1, 0].legend(fontsize=7, loc='upper right')
  axes[1, 0].set_xlabel('quarter notes')
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def scatter_truth(truth: np.ndarray, predicted: np.ndarray, quantity: str = 'value',
                  title: str = '') -> 'Figure':
  """Predicted against true values, with the diagonal."""
  truth, predicted = np.ravel(truth), np.ravel(predicted)
  fig, axes = new_figure(4.2, 4.0)
  ax = axes[0, 0]
  ax.scatter(truth, predicted, s=6, alpha=0.5)
  lo, hi = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
  ax.plot([lo, hi], [lo, hi], color='black', lw=1, label='predicted = true')
  ax.set_xlabel(f'true {quantity}')
  ax.set_ylabel(f'predicted {quantity}')
  mse = float(np.mean((truth - predicted) ** 2))
  ax.set_title(f'{title} (MSE {mse:.3g}, {len(truth)} examples)'.strip(), fontsize=9)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return fig


def token_recall(truth: np.ndarray, predicted: np.ndarray, n: int = 8,
                 title: str = '') -> 'Figure':
  """Recalled sequences ``[N, K]`` of small integers against the truth: for each of ``n``
  examples a row of true tokens and, below it, the predicted ones (green where right, red where
  wrong)."""
  truth, predicted = np.asarray(truth)[:n], np.asarray(predicted)[:n]
  rows, k = truth.shape
  grid = np.full((3 * rows - 1, k), np.nan)
  grid[1::3] = (predicted == truth)
  fig, axes = new_figure(0.42 * k + 1.4, 0.3 * (3 * rows - 1) + 0.6)
  ax = axes[0, 0]
  from matplotlib.colors import ListedColormap  # pylint: disable=g-import-not-at-top
  ax.imshow(grid, cmap=ListedColormap(['#f8d0d0', '#cfeccf']), vmin=0, vmax=1, aspect='auto')
  for i in range(rows):
    for j in range(k):
      ax.text(j, 3 * i, str(truth[i, j]), ha='center', va='center', fontsize=8)
      ax.text(j, 3 * i + 1, str(predicted[i, j]), ha='center', va='center', fontsize=8,
              color=_RIGHT if predicted[i, j] == truth[i, j] else _WRONG)
  ax.set_yticks([3 * i + r for i in range(rows) for r in (0, 1)],
                ['true', 'recalled'] * rows, fontsize=7)
  ax.set_xticks(range(k), [str(j + 1) for j in range(k)], fontsize=7)
  ax.set_xlabel('position')
  accuracy = float(np.mean(predicted == truth)) if truth.size else 0.0
  ax.set_title(f'{title} ({accuracy:.2f} of these recalled)'.strip(), fontsize=9)
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  fig.tight_layout()
  return fig


# ---------------------------------------------------------------------------------------------
# Dense and detection outputs (for image-to-image and detection tasks)


def image_comparison(columns: Mapping[str, np.ndarray], n: int = 4, title: str = '') -> 'Figure':
  """Rows of examples, one column per entry, e.g. ``{'low resolution': lr, 'bicubic': up,
  'model': sr, 'truth': hr}``; each entry ``[N, H, W, C]`` in [0, 1] (sizes may differ)."""
  n = min(n, *(len(v) for v in columns.values()))
  fig, axes = new_figure(2.2 * len(columns), 2.2 * n + 0.3, n, len(columns))
  for j, (label, images) in enumerate(columns.items()):
    for i in range(n):
      _show_image(axes[i, j], images[i])
      if i == 0:
        axes[i, j].set_title(label, fontsize=9)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def _boxes(ax, boxes: np.ndarray, color: str, labels=None, scores=None, linestyle='-') -> None:
  from matplotlib.patches import Rectangle  # pylint: disable=g-import-not-at-top
  for b, (y0, x0, y1, x1) in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4)):
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                           edgecolor=color, lw=1.5, linestyle=linestyle))
    text = '' if labels is None else str(labels[b])
    if scores is not None:
      text = f'{text} {scores[b]:.2f}'.strip()
    if text:
      ax.text(x0 - 0.5, y0 - 0.5, text, color='white', fontsize=7, va='bottom',
              bbox=dict(facecolor=color, edgecolor='none', pad=1))


def detections(images: np.ndarray, predicted: Sequence[Mapping[str, np.ndarray]],
               truth: Sequence[Mapping[str, np.ndarray]] | None = None, n: int = 6,
               cols: int = 3, title: str = '') -> 'Figure':
  """Images with boxes drawn on them: predicted (solid) and true (dashed).

  ``predicted[i]`` / ``truth[i]``: ``{'boxes': [K, 4] (y0, x0, y1, x1) in pixels, 'labels':
  [K] (optional), 'scores': [K] (optional, predictions)}``.
  """
  n = min(n, len(images))
  rows = max(1, -(-n // cols))
  fig, axes = new_figure(3.0 * cols, 3.0 * rows + 0.3, rows, cols)
  for ax in axes.ravel():
    ax.axis('off')
  for i, ax in zip(range(n), axes.ravel()):
    ax.axis('on')
    _show_image(ax, images[i])
    if truth is not None:
      _boxes(ax, truth[i]['boxes'], _RIGHT, truth[i].get('labels'), linestyle='--')
    _boxes(ax, predicted[i]['boxes'], 'C0', predicted[i].get('labels'),
           predicted[i].get('scores'))
  fig.suptitle(f'{title}: predicted (solid) and true (dashed) boxes'.lstrip(': '), fontsize=9)
  fig.tight_layout()
  return fig
