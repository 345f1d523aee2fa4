"""Learned edge maps on synthetic shapes, against Sobel and Canny (issue 4).

    python -m comparenets.main --config=experiments/edges.py --workdir=/tmp/edges/cnn
    python -m comparenets.main --config=experiments/edges.py:quick --workdir=/tmp/edges/quick
    python -m comparenets.main --config=experiments/edges.py --workdir=/tmp/edges/tol2 \\
        --config.task.tolerance=2 --config.task.noise=0.15

A full-resolution CNN (``pool='none'``: one logit per pixel) learns HED's class-balanced
cross-entropy on generated images; results.json's validation and test sections hold its ODS F
('ods_f', the target), OIS F and AP next to 'sobel_ods_f' and 'canny_ods_f' on the same
images (Canny's setting chosen on validation). plots/ holds test edge maps, the test
precision-recall curves and the photographs (qualitative: no ground truth).

Arguments: ``model`` (cnn only: the task reads whole images and predicts every pixel) and
``quick`` (a seconds-long run on 32x32 images for CPU debugging).

Measured (seed 0, 2 CPU cores, 32,513 parameters; 2.9 min wall with training 138 s at a load
of about 2, 8.3 min under heavier load): test ODS F 0.907 (OIS 0.925, AP 0.879) against Canny 0.873 (sigma 2, chosen on
validation) and Sobel 0.533. With ``--config.task.noise=0.2``: 0.794, Canny 0.746, Sobel 0.366.
"""

from comparenets.experiment import experiment_config, parse_arg

MODELS = {
    # six 5x5 layers of 16 channels at full resolution: a 25-pixel receptive field, which
    # beat four 3x3 layers of 32 (9 pixels) and four 5x5 of 16 (17) on validation ODS F
    'cnn': dict(widths=(16,) * 6, convs_per_block=1, kernel_size=5, pool='none', norm='none',
                dropout=0.0, global_pool='avg'),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='cnn', quick=False)
  return experiment_config(
      arg, MODELS, what='edges',
      task=dict(name='edges', size=64, noise=0.1, tolerance=1.0, validation_size=256,
                test_size=256),
      quick_task=dict(size=32, validation_size=16, test_size=16),
      train=dict(steps=1000, batch_size=16, learning_rate=2e-3, warmup_steps=50,
                 weight_decay=1e-4, grad_clip=1.0, log_every=50, eval_every=500,
                 checkpoint_every=500))
