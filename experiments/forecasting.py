"""Multi-step forecasting of Mackey-Glass (tau = 17) or the Lorenz-63 system, generated offline.
Sequence models only; results.json compares the model with persistence and a least-squares
linear autoregression at every horizon step.

    python -m comparenets.main --config=experiments/forecasting.py:model=gru --workdir=/tmp/mg
    python -m comparenets.main --config=experiments/forecasting.py:model=tcn,series=lorenz \
        --workdir=/tmp/lorenz

Arguments: ``model`` (tcn, rnn, lstm, gru), ``series`` (mackey_glass, lorenz), ``quick``.
"""

from comparenets.experiment import experiment_config, parse_arg
from comparenets.models.conv import tcn_levels_for

CONTEXT = 32
MODELS = {
    'tcn': dict(channels=64, levels=tcn_levels_for(CONTEXT, 3), kernel_size=3),
    'rnn': dict(hidden=128, layers=1),
    'lstm': dict(hidden=128, layers=1),
    'gru': dict(hidden=128, layers=1),
}


def get_config(arg=None):
  arg = parse_arg(arg, model='gru', series='mackey_glass', quick=False)
  return experiment_config(
      arg, MODELS, what='forecasting',
      task=dict(name='forecasting', series=arg.series, sample_every=0.0, length=6000,
                context=CONTEXT, horizon=12, stride=1, train_fraction=0.7,
                validation_fraction=0.1),
      head=dict(hidden=(128,)),
      train=dict(steps=5000, eval_batch_size=512, optimizer='adam', learning_rate=2e-3,
                 warmup_steps=100, grad_clip=1.0, eval_every=1000, checkpoint_every=1000),
      quick_task=dict(length=1500))
