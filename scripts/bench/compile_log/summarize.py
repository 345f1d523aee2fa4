"""Sums a compile log of `sitecustomize.py` (this directory): seconds by event, the functions
that took the most compilation time, and the tests and test files whose programs did.

    python scripts/bench/compile_log/summarize.py /tmp/compiles.log [--top=25]
"""

import argparse
import collections


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('log')
  parser.add_argument('--top', type=int, default=25)
  args = parser.parse_args()
  events = collections.defaultdict(lambda: [0, 0.0])
  functions = collections.defaultdict(lambda: [0, 0.0])
  tests = collections.defaultdict(float)
  files = collections.defaultdict(float)
  with open(args.log) as f:
    for line in f:
      _, event, function, seconds, test = line.rstrip('\n').split('\t')
      seconds = float(seconds)
      events[event][0] += 1
      events[event][1] += seconds
      if event.endswith('backend_compile_duration'):
        functions[function][0] += 1
        functions[function][1] += seconds
      if not event.startswith('/jax/compilation_cache'):
        test = test.split(' ')[0]
        tests[test] += seconds
        files[test.split('::')[0]] += seconds
  print('seconds  count  event')
  for event, (n, s) in sorted(events.items(), key=lambda kv: -kv[1][1]):
    print(f'{s:7.1f} {n:6d}  {event}')
  print('\nseconds  count  XLA compilations of')
  for function, (n, s) in sorted(functions.items(), key=lambda kv: -kv[1][1])[:args.top]:
    print(f'{s:7.1f} {n:6d}  {function}')
  for title, table in (('test', tests), ('test file', files)):
    print(f'\nseconds  traced, lowered and compiled in this {title}')
    for name, s in sorted(table.items(), key=lambda kv: -kv[1])[:args.top]:
      print(f'{s:7.1f}  {name}')


if __name__ == '__main__':
  main()
