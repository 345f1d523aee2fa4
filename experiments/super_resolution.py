"""x2 / x3 / x4 super-resolution of real photographs with an ESPCN-style CNN, against bicubic.

    python -m comparenets.main --config=experiments/super_resolution.py --workdir=/tmp/sr/x2
    python -m comparenets.main --config=experiments/super_resolution.py:scale=4 --workdir=/tmp/x4
    python -m comparenets.main --config=experiments/super_resolution.py:quick --workdir=/tmp/q
    python -m comparenets.main --config=experiments/super_resolution.py:dataset=div2k \
        --config.task.data_dir=DIR --workdir=/tmp/sr/div2k

The CNN keeps the low resolution of its input (``pool='none'``) and the task's `SubPixelHead`
turns its features into a residual over bicubic upscaling at ``scale`` times the resolution
(see `comparenets.tasks.super_resolution`). Trained on patches of scikit-image's bundled
photographs, tested on held-out whole photos (astronaut, camera, chelsea); results hold PSNR and
SSIM on luminance of the model and of bicubic, and their difference 'psnr_gain' (dB).

Arguments: ``model`` (cnn: the only family that reads images and keeps their layout),
``scale`` (2, 3 or 4), ``dataset`` (skimage, or div2k when prepared with TFDS) and ``quick`` (a
seconds-long run for CPU debugging).
"""

from comparenets.experiment import experiment_config, parse_arg

MODELS = {
    'cnn': dict(widths=(64, 64, 32), convs_per_block=1, kernel_size=3, pool='none',
                norm='none', activation='relu', dropout=0.0, global_pool='avg'),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='cnn', scale=2, dataset='skimage', quick=False)
  return experiment_config(
      arg, MODELS, what='super_resolution',
      task=dict(name='super_resolution', scale=arg.scale, patch=24 * arg.scale,
                dataset=arg.dataset),
      head=dict(kernel_size=3, zero_init=True),
      train=dict(steps=3000, batch_size=16, eval_batch_size=64, learning_rate=1e-3,
                 warmup_steps=100, grad_clip=1.0, log_every=250, eval_every=1000,
                 checkpoint_every=1000),
      quick_task=dict(eval_tile=48),
      quick_train=dict(batch_size=8))
