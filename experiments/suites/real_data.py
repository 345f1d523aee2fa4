"""The recurrent side's real data, at quick sizes, on their own.

Every causal family (tcn, rnn, lstm, gru), three seeds each, on J. S. Bach's chorales from
music21's corpus (the song task: next-step piano-roll prediction, NLL per step against the
previous-frame and key-frequency baselines) and on statsmodels' yearly sunspot numbers
(forecasting 6 years from 12, NRMSE against persistence and a linear autoregression). The
quick suite has both too, the song on 4-bar windows for 300 steps; here it trains on 16-bar
windows for 500; the full suite runs both at full length. Its report has both result tables
with their baselines, and claim 4.2 reads music and a real series from them.

    python -m comparenets.compare --suite=real_data --workdir=runs/real_data

Song runs 500 steps (the experiment: 3,000) on 128-step windows; sunspots its experiment's own
1,000 steps (its models are 32 units wide: 168 training windows).
"""

SEQUENCE = ('tcn', 'rnn', 'lstm', 'gru')
SEEDS = {'sweep.seeds': 3}


def get_suite():
  runs = []
  for model in SEQUENCE:
    runs.append((f'song/{model}', 'song.py', f'model={model}',
                 {'train.steps': 500, 'train.eval_every': 250, **SEEDS}))
    runs.append((f'forecasting_sunspots/{model}', 'forecasting.py',
                 f'model={model},series=sunspots', {**SEEDS}))
  return runs
