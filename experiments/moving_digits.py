"""Moving digits (video, 8 directions of motion) with any family.

    python -m comparenets.main --config=experiments/moving_digits.py:model=cnn3d --workdir=/tmp/m
    python -m comparenets.main --config=experiments/moving_digits.py:model=cnn_lstm \
        --workdir=/tmp/m/cnn_lstm
    python -m comparenets.main --config=experiments/moving_digits.py:model=cnn,reading=frame \
        --workdir=/tmp/m/frame
    python -m comparenets.main --config=experiments/moving_digits.py:model=lstm,quick \
        --workdir=/tmp/q

Arguments: ``model`` (cnn, cnn3d, cnn_rnn, cnn_lstm, cnn_gru, tcn, rnn, lstm, gru), ``reading``
(auto: video backbones read the clip, the CNN reads the frames stacked as channels, sequence
models read one flattened frame per step; or frame: the CNN sees only the last frame, which
carries no information about the direction, so it stays at chance, 1/8), ``channels`` (1:
grayscale, 3: random colours per clip, which hides the motion from models that read raw pixel
values linearly and takes longer to learn, so it trains 1500 steps instead of 600) and ``quick``
(a seconds-long run for CPU debugging).
"""

from comparenets.experiment import experiment_config, parse_arg

_ENCODER = dict(widths=(16, 32), convs_per_block=1, kernel_size=3, pool='max', norm='none',
                global_pool='flatten')
MODELS = {
    'cnn': dict(widths=(32, 64), convs_per_block=1, kernel_size=3, pool='max', norm='none',
                dropout=0.0),
    'cnn3d': dict(widths=(16, 32), kernel_size=3, time_kernel_size=3, pool='max',
                  time_pool_size=2, norm='none', dropout=0.0),
    'cnn_rnn': dict(_ENCODER, hidden=128, layers=1),
    'cnn_lstm': dict(_ENCODER, hidden=128, layers=1),
    'cnn_gru': dict(_ENCODER, hidden=128, layers=1),
    'tcn': dict(channels=64, levels=2, kernel_size=3, dropout=0.0),
    'rnn': dict(hidden=128, layers=1),
    'lstm': dict(hidden=128, layers=1),
    'gru': dict(hidden=128, layers=1),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='cnn3d', reading='auto', channels=1, quick=False)
  return experiment_config(
      arg, MODELS, what='moving_digits',
      task=dict(name='moving_digits', reading=arg.reading, channels=arg.channels, frames=8,
                canvas=16, scale=1, directions=8, max_speed=2, num_train=4000, num_eval=1000,
                split_seed=0),
      head=dict(hidden=(128,), dropout=0.0),
      train=dict(steps=600 if arg.channels == 1 else 1500, learning_rate=2e-3, warmup_steps=50, weight_decay=1e-4,
                 grad_clip=1.0, eval_every=200, checkpoint_every=600),
      quick_task=dict(num_train=256, num_eval=128))
